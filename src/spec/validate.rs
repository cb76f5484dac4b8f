//! Spec -> Model: every check that can be made without the machine, all errors collected.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use super::span::{Spanned, at};
use super::values::{parse_backend, parse_port_number, parse_port_range};
use super::yaml as spec;
use crate::error::{Diagnostic, Location, SpecError};
use crate::model::*;
use crate::names;

/// Parse and validate a file's text.
pub fn load_str(file: &str, text: &str) -> Result<Model, SpecError> {
    let spec = spec::parse(file, text)?;
    check(&spec, &[file.to_string()])
}

/// Validate a parsed state; `files` names the file(s) its locations are in (see
/// `Location::file`).
pub fn check(spec: &spec::Spec, files: &[String]) -> Result<Model, SpecError> {
    let mut v = Validator {
        diags: Vec::new(),
        interfaces: BTreeMap::new(),
        files: files.to_vec(),
        networks: BTreeMap::new(),
    };
    let model = v.model(spec);
    if v.diags.is_empty() {
        Ok(model)
    } else {
        v.diags.sort_by_key(|d| d.location);
        Err(SpecError {
            file: files.first().cloned().unwrap_or_default(),
            diagnostics: v.diags,
            more_files: files.iter().skip(1).cloned().collect(),
        })
    }
}

pub(crate) struct Validator {
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) interfaces: BTreeMap<String, String>,
    /// The networks an alias states (`lan: {name: eth1, networks: [...]}`), by alias.
    pub(crate) networks: BTreeMap<String, Vec<IpNet>>,
    files: Vec<String>,
}

const MAX_BACKENDS: usize = 256;
const MAX_WEIGHT: i64 = 1000;
/// Round-robin expands weights into slots, one rule each: keep that readable and bounded.
const MAX_ROUND_ROBIN_SLOTS: u32 = 256;

impl Validator {
    /// Where `there` is, seen from an error at `here`: `line 7`, or `a.yaml:7` in another file.
    fn place(&self, here: Location, there: Location) -> String {
        match self.files.get(usize::from(there.file)) {
            Some(name) if here.file != there.file => format!("{name}:{}", there.line),
            _ => format!("line {}", there.line),
        }
    }

    pub(crate) fn err(&mut self, location: Location, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            location,
            message: message.into(),
        });
    }

    fn model(&mut self, spec: &spec::Spec) -> Model {
        if *spec.version != 1 {
            self.err(
                at(&spec.version),
                format!(
                    "unsupported version {}; this pfstate reads version 1",
                    *spec.version
                ),
            );
        }
        let prefix = match &spec.prefix {
            Some(p) => {
                if let Some(problem) = names::prefix_problem(p) {
                    self.err(at(p), problem);
                }
                p.value.clone()
            }
            None => names::DEFAULT_PREFIX.to_string(),
        };
        let host = spec.host.as_ref().map(|h| {
            if h.is_empty()
                || h.len() > 64
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                self.err(
                    at(h),
                    "host must be 1 to 64 letters, digits, '-', '_' or '.'",
                );
            }
            h.value.clone()
        });
        self.aliases(&spec.interfaces);
        let mut seen: HashMap<String, Location> = HashMap::new();
        let mut check_name = |v: &mut Validator, name: &Spanned<String>| {
            if let Some(p) = names::entry_name_problem(name) {
                v.err(at(name), p);
            } else if let Some(first) = seen.get(&name.value) {
                let place = v.place(at(name), *first);
                v.err(
                    at(name),
                    format!(
                        "name `{}` is already used at {place}; names must be unique",
                        name.value
                    ),
                );
            } else {
                seen.insert(name.value.clone(), at(name));
            }
        };
        let mut forwards = Vec::new();
        let mut listens = ListenIndex::default();
        for f in &spec.forwards {
            check_name(self, &f.name);
            if let Some(fw) = self.forward(f) {
                self.check_listen_conflicts(&listens, &forwards, at(&f.listen), &fw);
                listens.add(forwards.len(), at(&f.listen), &fw);
                forwards.push(fw);
            }
        }
        let mut snats = Vec::new();
        for s in &spec.snat {
            check_name(self, &s.name);
            if let Some(sn) = self.snat(s) {
                snats.push(sn);
            }
        }
        let mut filters = Vec::new();
        for r in &spec.filter {
            check_name(self, &r.name);
            if let Some(fr) = self.filter(r) {
                filters.push(fr);
            }
        }
        let sysctls = self.sysctls(spec, &forwards, &snats);
        Model {
            host,
            prefix,
            interfaces: self.interfaces.clone(),
            sysctls,
            forwards,
            snats,
            filters,
        }
    }

    /// An interface field: an alias from `interfaces:` or a device name.
    pub(crate) fn interface(&mut self, s: &Spanned<String>) -> Option<String> {
        if let Some(dev) = self.interfaces.get(&s.value) {
            return Some(dev.clone());
        }
        if let Some(p) = names::interface_problem(s) {
            let hint = super::suggest::closest(s, self.interfaces.keys().map(String::as_str))
                .map(|c| format!("; did you mean the alias `{c}`?"))
                .unwrap_or_default();
            self.err(at(s), format!("{p}{hint}"));
            return None;
        }
        Some(s.value.clone())
    }

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
        for (i, first_loc) in index.overlapping(f) {
            let g = &earlier[i];
            let same = g.family == f.family
                && g.protos.iter().any(|p| f.protos.contains(p))
                && g.port.overlaps(f.port)
                && (g.address.is_none() || f.address.is_none() || g.address == f.address)
                && (g.interface.is_none() || f.interface.is_none() || g.interface == f.interface)
                && (g.from.is_empty()
                    || f.from.is_empty()
                    || g.from
                        .iter()
                        .any(|a| f.from.iter().any(|b| a.contains(b) || b.contains(a))));
            if same {
                let place = self.place(loc, first_loc);
                self.err(loc, format!("forward `{}` listens on the same port as forward `{}` ({place}); give them different ports, addresses, interfaces or sources", f.name, g.name));
            }
        }
    }

    pub(crate) fn port(&mut self, p: &Spanned<spec::PortSpec>) -> Option<PortRange> {
        let parsed = match &p.value {
            spec::PortSpec::Number(n) => parse_port_number(*n).map(PortRange::single),
            spec::PortSpec::Text(t) => parse_port_range(t),
        };
        if parsed.is_err() {
            let shown = match &p.value {
                spec::PortSpec::Number(n) => n.to_string(),
                spec::PortSpec::Text(t) => format!("\"{}\"", t.escape_debug()),
            };
            self.err(at(p), format!("{shown} is not a port: write 1 to 65535, or a range like \"8000-8010\" (low end first)"));
        }
        parsed.ok()
    }

    fn address(&mut self, a: &Spanned<String>) -> Option<IpAddr> {
        match a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    at(a),
                    format!("`{}` is not an IP address", a.escape_debug()),
                );
                None
            }
        }
    }

    /// A CIDR (or a bare address, meaning a host route). Host bits must be zero: iptables would
    /// silently widen `10.1.2.3/8` to `10.0.0.0/8`, which is rarely what was meant.
    pub(crate) fn network(&mut self, n: &Spanned<String>) -> Option<IpNet> {
        let text = n.value.as_str();
        let net = match text.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match text.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    self.err(
                        at(n),
                        format!(
                            "`{}` is not an address or network (CIDR such as 203.0.113.0/24)",
                            text.escape_debug()
                        ),
                    );
                    return None;
                }
            },
        };
        if net.trunc() != net {
            self.err(
                at(n),
                format!("{net} has host bits set; did you mean {}?", net.trunc()),
            );
            return None;
        }
        Some(net)
    }

    pub(crate) fn network_of(
        &mut self,
        n: &Spanned<String>,
        family: Option<Family>,
    ) -> Option<IpNet> {
        let net = self.network(n)?;
        if let Some(family) = family
            && Family::of(&net.addr()) != family
        {
            self.err(
                at(n),
                format!(
                    "{net} is {} but the backends are {family}",
                    Family::of(&net.addr())
                ),
            );
            return None;
        }
        Some(net)
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

    fn source_nat(
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

    fn snat(&mut self, s: &Spanned<spec::SnatSpec>) -> Option<OutboundSnat> {
        let before = self.diags.len();
        let source = self.network(&s.source);
        let family = source.map(|n| Family::of(&n.addr()));
        let out_interface = s.out_interface.as_ref().and_then(|i| self.interface(i));
        let to = match &s.to {
            None => SourceNat::Masquerade,
            Some(t) => self.source_nat(t, family, true),
        };
        if self.diags.len() != before {
            return None;
        }
        Some(OutboundSnat {
            name: s.name.value.clone(),
            family: family?,
            source: source?,
            out_interface,
            to,
            accept: s.accept.as_ref().is_none_or(|a| a.value),
        })
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

    /// Earlier forwards sharing a protocol with `f` whose ports overlap, in file order.
    fn overlapping(&self, f: &Forward) -> Vec<(usize, Location)> {
        let mut out: Vec<(usize, Location)> = Vec::new();
        for p in &f.protos {
            let Some(w) = self.widest.get(&(f.family, *p)) else {
                continue;
            };
            let from = u32::from(f.port.lo).saturating_sub(w - 1) as u16;
            let window = (f.family, *p, from)..=(f.family, *p, f.port.hi);
            out.extend(
                self.by_start
                    .range(window)
                    .flat_map(|(_, l)| l.iter().copied()),
            );
        }
        out.sort_by_key(|(i, _)| *i);
        out.dedup_by_key(|(i, _)| *i);
        out
    }
}
