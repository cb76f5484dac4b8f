//! The checks of one forward entry: protocols, listen port and address, backends, source NAT,
//! hairpin; and the index that finds two forwards listening on the same port.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::span::{Spanned, at};
use super::validate::Validator;
use super::values::parse_backend;
use super::yaml as spec;
use crate::error::Location;
use crate::model::*;

const MAX_BACKENDS: usize = 256;
const MAX_WEIGHT: i64 = 1000;
/// Round-robin expands weights into slots, one rule each: keep that readable and bounded.
const MAX_ROUND_ROBIN_SLOTS: u32 = 256;

impl Validator {
    /// Every forward: each checked, then compared with those before it for listen conflicts.
    pub(super) fn forwards(
        &mut self,
        specs: &[Spanned<spec::ForwardSpec>],
        check_name: &mut dyn FnMut(&mut Validator, &Spanned<String>),
    ) -> Vec<Forward> {
        let mut forwards = Vec::new();
        let mut listens = ListenIndex::default();
        for f in specs {
            check_name(self, &f.name);
            if let Some(fw) = self.forward(f) {
                self.check_listen_conflicts(&listens, &forwards, at(&f.listen), &fw);
                listens.add(forwards.len(), at(&f.listen), &fw);
                forwards.push(fw);
            }
        }
        forwards
    }

    // Over 60 lines on purpose: one check per key of a forward entry, in the order the spec
    // documents them; each records its diagnostic and goes on, so that every problem of the
    // file is reported at once. Split, the half-built entry would travel between functions.
    fn forward(&mut self, f: &Spanned<spec::ForwardSpec>) -> Option<Forward> {
        let before = self.diags.len();
        let protos = match f.proto.as_ref().map(|p| p.value) {
            None | Some(spec::ProtoSpec::Tcp) => vec![Proto::Tcp],
            Some(spec::ProtoSpec::Udp) => vec![Proto::Udp],
            Some(spec::ProtoSpec::Both) => vec![Proto::Tcp, Proto::Udp],
        };
        let listen = &f.listen;
        let port = self.port(&listen.port);
        let address = listen.address.as_ref().and_then(|a| self.address(a));
        let interface = listen.interface.as_ref().and_then(|i| self.interface(i));
        let from: Vec<(Location, IpNet)> = listen
            .from
            .0
            .iter()
            .filter_map(|n| self.network(n).map(|net| (at(n), net)))
            .collect();
        let backends = self.backends(&f.to);
        if backends.is_empty() && self.diags.len() == before {
            self.err(at(&f.to), "a forward needs at least one backend");
        }
        let family = backends.first().map(|(_, b)| Family::of(&b.addr));
        if let Some(family) = family {
            for (loc, b) in &backends {
                if Family::of(&b.addr) != family {
                    self.err(*loc, format!("backend {} is {} but the first backend is {family}; one forward holds one address family", b.addr, Family::of(&b.addr)));
                }
            }
            if let Some(a) = address.filter(|a| Family::of(a) != family) {
                self.err(
                    at(listen.address.as_ref().unwrap()),
                    format!(
                        "listen address {a} is {} but the backends are {family}",
                        Family::of(&a)
                    ),
                );
            }
            for (loc, net) in &from {
                if Family::of(&net.addr()) != family {
                    self.err(
                        *loc,
                        format!(
                            "source {net} is {} but the backends are {family}",
                            Family::of(&net.addr())
                        ),
                    );
                }
            }
        }
        if let Some(port) = port {
            for (loc, b) in &backends {
                if let Some(bp) = b.port
                    && !bp.is_single()
                    && bp.width() != port.width()
                {
                    self.err(*loc, format!("backend port range {bp} has {} ports but the listen range {port} has {}; give ranges of the same size, one port, or none", bp.width(), port.width()));
                }
            }
        }
        let balance = match f.balance.as_ref().map(|b| b.value) {
            Some(spec::BalanceSpec::RoundRobin) => Balance::RoundRobin,
            _ => Balance::Random,
        };
        if balance == Balance::RoundRobin {
            let slots: u32 = backends.iter().map(|(_, b)| b.weight).sum();
            if slots > MAX_ROUND_ROBIN_SLOTS {
                self.err(at(&f.to), format!("round-robin over weights summing to {slots} needs one rule per unit of weight; keep the sum at most {MAX_ROUND_ROBIN_SLOTS} (divide the weights by a common factor)"));
            }
        }
        let snat = match &f.snat {
            None => SourceNat::None,
            Some(s) => self.source_nat(s, family, false),
        };
        let via = f
            .via
            .as_ref()
            .and_then(|v| self.concrete_interface(v, "via"));
        let hairpin = self.hairpin(f, family, via.is_some());
        if let Some(family) = family {
            self.check_needs_via(f, family);
        }
        if self.diags.len() != before {
            return None;
        }
        Some(Forward {
            name: f.name.value.clone(),
            family: family?,
            protos,
            port: port?,
            address,
            interface,
            from: from.into_iter().map(|(_, n)| n).collect(),
            backends: backends.into_iter().map(|(_, b)| b).collect(),
            balance,
            snat,
            hairpin,
            local: f.local.as_ref().is_some_and(|l| l.value),
            via,
            accept: f.accept.as_ref().is_none_or(|a| a.value),
        })
    }

    /// Two forwards must not claim the same packets: the first DNAT would always win.
    fn check_listen_conflicts(
        &mut self,
        index: &ListenIndex,
        earlier: &[Forward],
        loc: Location,
        f: &Forward,
    ) {
        let same = |g: &Forward| {
            g.family == f.family
                && g.protos.iter().any(|p| f.protos.contains(p))
                && g.port.overlaps(f.port)
                && (g.address.is_none() || f.address.is_none() || g.address == f.address)
                && (g.interface.is_none() || f.interface.is_none() || g.interface == f.interface)
                && (g.from.is_empty()
                    || f.from.is_empty()
                    || g.from
                        .iter()
                        .any(|a| f.from.iter().any(|b| a.contains(b) || b.contains(a))))
        };
        // One error per forward, naming the first (in file order) it collides with: n forwards
        // on one port are n errors found in O(n), not n² (8 million lines at 4,000 forwards).
        // Each group is in file order, so its scan stops at its first collision.
        let first = index
            .overlapping(f)
            .filter_map(|group| group.iter().find(|(i, _)| same(&earlier[*i])))
            .min_by_key(|(i, _)| *i);
        if let Some((i, first_loc)) = first {
            let g = &earlier[*i];
            let place = self.place(loc, *first_loc);
            self.err(loc, format!("forward `{}` listens on the same port as forward `{}` ({place}); give them different ports, addresses, interfaces or sources", f.name, g.name));
        }
    }

    fn backends(&mut self, to: &Spanned<spec::Backends>) -> Vec<(Location, Backend)> {
        let items: Vec<(Location, &str, Option<&Spanned<i64>>)> = match &to.value {
            spec::Backends::One(s) => vec![(at(to), s.as_str(), None)],
            spec::Backends::Many(items) => items
                .iter()
                .map(|i| (at(i), i.address.as_str(), i.weight.as_ref()))
                .collect(),
        };
        if items.len() > MAX_BACKENDS {
            self.err(
                at(to),
                format!(
                    "{} backends; at most {MAX_BACKENDS} per forward",
                    items.len()
                ),
            );
            return Vec::new();
        }
        let mut out = Vec::new();
        for (loc, text, weight) in items {
            let weight = match weight {
                None => 1,
                Some(w) if (1..=MAX_WEIGHT).contains(&w.value) => w.value as u32,
                Some(w) => {
                    self.err(
                        at(w),
                        format!(
                            "weight {} must be a whole number from 1 to {MAX_WEIGHT}",
                            w.value
                        ),
                    );
                    continue;
                }
            };
            match parse_backend(text) {
                Ok((addr, port)) => out.push((loc, Backend { addr, port, weight })),
                Err(why) => self.err(loc, format!("backend `{}`: {why}", text.escape_debug())),
            }
        }
        out
    }

    pub(super) fn source_nat(
        &mut self,
        s: &Spanned<String>,
        family: Option<Family>,
        default_masquerade: bool,
    ) -> SourceNat {
        match s.value.as_str() {
            "none" if !default_masquerade => SourceNat::None,
            "masquerade" => SourceNat::Masquerade,
            other => match other.parse::<IpAddr>() {
                Ok(ip) => {
                    if let Some(f) = family.filter(|f| *f != Family::of(&ip)) {
                        self.err(
                            at(s),
                            format!(
                                "SNAT address {ip} is {} but the entry is {f}",
                                Family::of(&ip)
                            ),
                        );
                    }
                    SourceNat::To(ip)
                }
                Err(_) => {
                    let choices = if default_masquerade {
                        "masquerade or an address"
                    } else {
                        "none, masquerade or an address"
                    };
                    self.err(
                        at(s),
                        format!("`{}` is not {choices}", other.escape_debug()),
                    );
                    SourceNat::None
                }
            },
        }
    }
}

/// The forwards seen so far by family, protocol and first port, so that finding the ones whose
/// ports overlap a new forward costs a range lookup, not a scan of every forward.
#[derive(Default)]
struct ListenIndex {
    by_start: std::collections::BTreeMap<(Family, Proto, u16), Vec<(usize, Location)>>,
    /// The widest range seen per family and protocol: how far below a port to look.
    widest: HashMap<(Family, Proto), u32>,
}

impl ListenIndex {
    fn add(&mut self, i: usize, loc: Location, f: &Forward) {
        for p in &f.protos {
            self.by_start
                .entry((f.family, *p, f.port.lo))
                .or_default()
                .push((i, loc));
            let w = self.widest.entry((f.family, *p)).or_default();
            *w = (*w).max(f.port.width());
        }
    }

    /// Earlier forwards sharing a protocol with `f` whose ports may overlap: groups by first
    /// port, each in file order.
    fn overlapping<'a>(&'a self, f: &'a Forward) -> impl Iterator<Item = &'a [(usize, Location)]> {
        f.protos.iter().flat_map(move |p| {
            let w = self.widest.get(&(f.family, *p)).copied();
            let from = u32::from(f.port.lo).saturating_sub(w.unwrap_or(1) - 1) as u16;
            let window = (f.family, *p, from)..=(f.family, *p, f.port.hi);
            w.into_iter()
                .flat_map(move |_| self.by_start.range(window.clone()))
                .map(|(_, l)| l.as_slice())
        })
    }
}
