//! Spec -> Model: every check that can be made without the machine, all errors collected.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use super::span::{Spanned, at};
use super::values::{parse_port_number, parse_port_range};
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

impl Validator {
    /// Where `there` is, seen from an error at `here`: `line 7`, or `a.yaml:7` in another file.
    pub(super) fn place(&self, here: Location, there: Location) -> String {
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

    // Over 60 lines on purpose: the top-level keys in the order the spec documents them, each
    // checked and collected; the entry lists are handed to their own validators.
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
        let forwards = self.forwards(&spec.forwards, &mut check_name);
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
            watch: spec.watch.as_ref().is_none_or(|w| w.value),
            interfaces: self.interfaces.clone(),
            sysctls,
            forwards,
            snats,
            filters,
            defaults: defaults(spec),
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

    pub(super) fn address(&mut self, a: &Spanned<String>) -> Option<IpAddr> {
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

    pub(super) fn network_of(
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

/// `default: {input: drop, forward: reject}`, in that order.
fn defaults(spec: &spec::Spec) -> Vec<(FilterChain, Verdict)> {
    let verdict = |v: &Spanned<spec::VerdictSpec>| match v.value {
        spec::VerdictSpec::Accept => Verdict::Accept,
        spec::VerdictSpec::Drop => Verdict::Drop,
        spec::VerdictSpec::Reject => Verdict::Reject,
    };
    let d = &spec.default;
    [
        (FilterChain::Input, &d.input),
        (FilterChain::Forward, &d.forward),
    ]
    .into_iter()
    .filter_map(|(chain, v)| v.as_ref().map(|v| (chain, verdict(v))))
    .collect()
}
