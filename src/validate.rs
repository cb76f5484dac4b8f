//! Spec -> Model: every check that can be made without the machine, all errors collected.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Diagnostic, Location, SpecError};
use crate::model::*;
use crate::names;
use crate::spec::{self, Spanned, at};

/// Parse and validate a file's text.
pub fn load_str(file: &str, text: &str) -> Result<Model, SpecError> {
    let spec = spec::parse(file, text)?;
    let mut v = Validator {
        diags: Vec::new(),
        interfaces: BTreeMap::new(),
    };
    let model = v.model(&spec);
    if v.diags.is_empty() {
        Ok(model)
    } else {
        v.diags.sort_by_key(|d| d.location);
        Err(SpecError {
            file: file.to_string(),
            diagnostics: v.diags,
        })
    }
}

struct Validator {
    diags: Vec<Diagnostic>,
    interfaces: BTreeMap<String, String>,
}

const MAX_BACKENDS: usize = 256;
const MAX_WEIGHT: i64 = 1000;
/// Round-robin expands weights into slots, one rule each: keep that readable and bounded.
const MAX_ROUND_ROBIN_SLOTS: u32 = 256;

impl Validator {
    fn err(&mut self, location: Location, message: impl Into<String>) {
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
        for (alias, device) in &spec.interfaces.0 {
            if names::entry_name_problem(alias).is_some() {
                self.err(
                    at(alias),
                    format!(
                        "interface alias `{}` must be lowercase letters, digits, '-' or '_'",
                        alias.escape_debug()
                    ),
                );
            }
            if let Some(p) = names::interface_problem(device) {
                self.err(at(device), p);
            }
            self.interfaces
                .insert(alias.value.clone(), device.value.clone());
        }
        let mut seen: HashMap<String, Location> = HashMap::new();
        let mut check_name = |v: &mut Validator, name: &Spanned<String>| {
            if let Some(p) = names::entry_name_problem(name) {
                v.err(at(name), p);
            } else if let Some(first) = seen.get(&name.value) {
                v.err(
                    at(name),
                    format!(
                        "name `{}` is already used at line {}; names must be unique",
                        name.value, first.line
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
    fn interface(&mut self, s: &Spanned<String>) -> Option<String> {
        if let Some(dev) = self.interfaces.get(&s.value) {
            return Some(dev.clone());
        }
        if let Some(p) = names::interface_problem(s) {
            let hint = crate::suggest::closest(s, self.interfaces.keys().map(String::as_str))
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
        let hairpin = match f.hairpin.as_ref().map(|h| &h.value) {
            None | Some(spec::Hairpin::Flag(false)) => Hairpin::Off,
            Some(spec::Hairpin::Flag(true)) => Hairpin::Auto,
            Some(spec::Hairpin::Networks(nets)) => {
                let nets: Vec<IpNet> = nets
                    .iter()
                    .filter_map(|n| self.network_of(n, family))
                    .collect();
                Hairpin::Networks(nets)
            }
        };
        let via = f.via.as_ref().and_then(|v| self.interface(v));
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
                self.err(loc, format!("forward `{}` listens on the same port as forward `{}` (line {}); give them different ports, addresses, interfaces or sources", f.name, g.name, first_loc.line));
            }
        }
    }

    fn port(&mut self, p: &Spanned<spec::PortSpec>) -> Option<PortRange> {
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
    fn network(&mut self, n: &Spanned<String>) -> Option<IpNet> {
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

    fn network_of(&mut self, n: &Spanned<String>, family: Option<Family>) -> Option<IpNet> {
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

    fn filter(&mut self, r: &Spanned<spec::FilterSpec>) -> Option<FilterRule> {
        let before = self.diags.len();
        let chain = match r.chain.value {
            spec::FilterChainSpec::Input => FilterChain::Input,
            spec::FilterChainSpec::Forward => FilterChain::Forward,
            spec::FilterChainSpec::Output => FilterChain::Output,
        };
        let proto = r.proto.as_ref().and_then(|p| match p.value.as_str() {
            "tcp" => Some(Some(FilterProto::Tcp)),
            "udp" => Some(Some(FilterProto::Udp)),
            "icmp" | "icmpv6" | "ipv6-icmp" => Some(Some(FilterProto::Icmp)),
            "all" | "any" => Some(None),
            other => {
                self.err(
                    at(p),
                    format!(
                        "proto `{}` is not one of tcp, udp, icmp, all",
                        other.escape_debug()
                    ),
                );
                None
            }
        });
        let proto = proto.flatten();
        let sport = r.sport.as_ref().and_then(|p| self.port(p));
        let dport = r.dport.as_ref().and_then(|p| self.port(p));
        if (sport.is_some() || dport.is_some())
            && !matches!(proto, Some(FilterProto::Tcp | FilterProto::Udp))
        {
            let loc = r
                .dport
                .as_ref()
                .map(at)
                .or(r.sport.as_ref().map(at))
                .unwrap_or(at(r));
            self.err(loc, "ports need `proto: tcp` or `proto: udp`");
        }
        let source = r.source.as_ref().and_then(|n| self.network(n));
        let destination = r.destination.as_ref().and_then(|n| self.network(n));
        let in_interface = r.in_interface.as_ref().and_then(|i| self.interface(i));
        let out_interface = r.out_interface.as_ref().and_then(|i| self.interface(i));
        if chain == FilterChain::Input && out_interface.is_some() {
            self.err(
                at(r.out_interface.as_ref().unwrap()),
                "out_interface cannot be matched in the input chain",
            );
        }
        if chain == FilterChain::Output && in_interface.is_some() {
            self.err(
                at(r.in_interface.as_ref().unwrap()),
                "in_interface cannot be matched in the output chain",
            );
        }
        let addr_families: Vec<Family> = [source, destination]
            .iter()
            .flatten()
            .map(|n| Family::of(&n.addr()))
            .collect();
        if addr_families.windows(2).any(|w| w[0] != w[1]) {
            self.err(
                at(r),
                "source and destination are of different address families",
            );
        }
        let families = match (r.family.as_ref().map(|f| f.value), addr_families.first()) {
            (Some(spec::FamilySpec::Ipv4), Some(Family::V6))
            | (Some(spec::FamilySpec::Ipv6), Some(Family::V4)) => {
                self.err(
                    at(r.family.as_ref().unwrap()),
                    "family does not match the addresses of the rule",
                );
                vec![]
            }
            (_, Some(f)) => vec![*f],
            (Some(spec::FamilySpec::Ipv4), None) => vec![Family::V4],
            (Some(spec::FamilySpec::Ipv6), None) => vec![Family::V6],
            (Some(spec::FamilySpec::Both) | None, None) => vec![Family::V4, Family::V6],
        };
        let mut states: Vec<spec::StateSpec> = r.state.0.iter().map(|s| s.value).collect();
        states.sort();
        states.dedup();
        let states = states.into_iter().map(state_name).collect();
        let action = match r.action.value {
            spec::ActionSpec::Accept => Action::Accept,
            spec::ActionSpec::Drop => Action::Drop,
            spec::ActionSpec::Reject => Action::Reject,
            spec::ActionSpec::Log => Action::Log,
            spec::ActionSpec::Return => Action::Return,
        };
        let log_prefix = r.log_prefix.as_ref().map(|p| {
            if action != Action::Log {
                self.err(at(p), "log_prefix goes with `action: log`");
            }
            if p.is_empty()
                || p.len() > 29
                || !p
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"\"'\\".contains(c) || c == ' ')
            {
                self.err(
                    at(p),
                    "log_prefix must be 1 to 29 printable characters without quotes or backslashes",
                );
            }
            p.value.clone()
        });
        if self.diags.len() != before {
            return None;
        }
        Some(FilterRule {
            name: r.name.value.clone(),
            chain,
            families,
            proto,
            sport,
            dport,
            source,
            destination,
            in_interface,
            out_interface,
            states,
            action,
            log_prefix,
        })
    }

    fn sysctls(
        &mut self,
        spec: &spec::Spec,
        forwards: &[Forward],
        snats: &[OutboundSnat],
    ) -> Vec<Sysctl> {
        let forwarding = |fam: Family| {
            forwards.iter().any(|f| f.family == fam) || snats.iter().any(|s| s.family == fam)
        };
        let mut out: Vec<Sysctl> = Vec::new();
        for (key, value) in &spec.sysctl.0 {
            if let Some(problem) = sysctl_key_problem(key) {
                self.err(at(key), problem);
                continue;
            }
            if !value.0.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                || value.0.is_empty()
                || value.0.len() > 256
            {
                self.err(
                    at(value),
                    format!(
                        "sysctl value `{}` must be 1 to 256 printable characters on one line",
                        value.0.escape_debug()
                    ),
                );
                continue;
            }
            let k = SysctlKey::parse(key);
            if out.iter().any(|s| s.key == k) {
                self.err(at(key), format!("sysctl `{}` is given twice", key.value));
                continue;
            }
            let implied_on = match k.dotted().as_str() {
                "net.ipv4.ip_forward" | "net.ipv4.conf.all.forwarding" => forwarding(Family::V4),
                "net.ipv6.conf.all.forwarding" => forwarding(Family::V6),
                _ => false,
            };
            if implied_on && value.0.trim() != "1" {
                self.err(at(value), format!("{} must be 1 because forwards or snat entries need forwarding; remove this line or set it to 1", key.value));
                continue;
            }
            out.push(Sysctl {
                key: k,
                value: value.0.trim().to_string(),
            });
        }
        out
    }
}

fn state_name(s: spec::StateSpec) -> &'static str {
    match s {
        spec::StateSpec::Invalid => "INVALID",
        spec::StateSpec::New => "NEW",
        spec::StateSpec::Related => "RELATED",
        spec::StateSpec::Established => "ESTABLISHED",
        spec::StateSpec::Untracked => "UNTRACKED",
        spec::StateSpec::Snat => "SNAT",
        spec::StateSpec::Dnat => "DNAT",
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

/// Top-level directories of /proc/sys. Anything else is not a kernel parameter.
const SYSCTL_ROOTS: &[&str] = &[
    "abi", "crypto", "debug", "dev", "fs", "kernel", "net", "sunrpc", "user", "vm",
];

/// Why a sysctl key cannot be used, or `None`. Keys end up as paths below /proc/sys and as
/// lines of a sysctl.d file, so they must not climb out (`..`) or break a line.
pub fn sysctl_key_problem(key: &str) -> Option<String> {
    let k = SysctlKey::parse(key);
    let well_formed = !k.0.is_empty()
        && k.0.len() <= 8
        && key.len() <= 200
        && k.0.iter().all(|c| {
            c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.@+".contains(ch))
        });
    if !well_formed {
        return Some(format!(
            "`{}` is not a sysctl key (such as net.ipv4.ip_forward)",
            key.escape_debug()
        ));
    }
    if !SYSCTL_ROOTS.contains(&k.0[0].as_str()) || k.0.len() < 2 {
        return Some(format!(
            "`{}` is outside the kernel's sysctl tree (keys start with one of {})",
            key.escape_debug(),
            SYSCTL_ROOTS.join(", ")
        ));
    }
    None
}

/// A port number out of range or not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPort;

fn parse_port_number(n: i64) -> Result<u16, BadPort> {
    u16::try_from(n).ok().filter(|p| *p != 0).ok_or(BadPort)
}

fn parse_port_text(t: &str) -> Result<u16, BadPort> {
    let t = t.trim();
    if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadPort);
    }
    parse_port_number(t.parse::<i64>().map_err(|_| BadPort)?)
}

/// `80`, `8000-8010` (also `8000:8010`, as iptables writes it).
pub fn parse_port_range(t: &str) -> Result<PortRange, BadPort> {
    match t.split_once(['-', ':']) {
        Some((lo, hi)) => {
            let (lo, hi) = (parse_port_text(lo)?, parse_port_text(hi)?);
            if lo > hi {
                return Err(BadPort);
            }
            Ok(PortRange { lo, hi })
        }
        None => parse_port_text(t).map(PortRange::single),
    }
}

/// `10.0.0.2`, `10.0.0.2:8080`, `10.0.0.2:9000-9010`, `[2001:db8::2]:8080`, `2001:db8::2`.
pub fn parse_backend(text: &str) -> Result<(IpAddr, Option<PortRange>), String> {
    let text = text.trim();
    let (addr, port) = if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address in brackets needs the closing ]")?;
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or("write [IPv6]:PORT")?)),
        }
    } else if text.matches(':').count() > 1 {
        (text, None) // a bare IPv6 address
    } else {
        match text.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        }
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{}` is not an IP address", addr.escape_debug()))?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a backend"));
    }
    if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        return Err(format!("{ip} cannot be a backend"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            parse_port_range(p)
                .map_err(|_| format!("`{}` is not a port or range (1-65535)", p.escape_debug()))?,
        ),
    };
    Ok((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse() {
        assert_eq!(
            parse_backend("10.0.0.2").unwrap(),
            ("10.0.0.2".parse().unwrap(), None)
        );
        assert_eq!(
            parse_backend("10.0.0.2:80").unwrap().1,
            Some(PortRange::single(80))
        );
        assert_eq!(
            parse_backend("10.0.0.2:9000-9010").unwrap().1,
            Some(PortRange { lo: 9000, hi: 9010 })
        );
        assert_eq!(
            parse_backend("[2001:db8::2]:8080").unwrap().0,
            "2001:db8::2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(parse_backend("2001:db8::2").unwrap().1, None);
        for bad in [
            "10.0.0.256",
            "10.0.0.2:0",
            "10.0.0.2:70000",
            "[::1",
            "0.0.0.0",
            "x:80",
            "10.0.0.2:90-80",
            "10.0.0.2:-1",
        ] {
            assert!(parse_backend(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn sysctl_keys() {
        assert_eq!(sysctl_key_problem("net.ipv4.ip_forward"), None);
        assert_eq!(sysctl_key_problem("net/ipv4/conf/eth0.100/rp_filter"), None);
        for bad in [
            "foo.bar",
            "net",
            "net.ipv4.ip_forward\nkernel.x",
            "net/../../etc",
            "net.ipv4 = 1",
            "",
        ] {
            assert!(sysctl_key_problem(bad).is_some(), "{bad:?} accepted");
        }
    }
}
