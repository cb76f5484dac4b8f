//! Validation of `filter:` rules and `sysctl:` entries (the rest of the file is in
//! `validate.rs`): separate because their checks share nothing with forwards.

use super::span::{Spanned, at};
use super::validate::Validator;
use super::values::sysctl_key_problem;
use super::yaml as spec;
use crate::model::*;

impl Validator {
    // Over 60 lines on purpose: one check per key of a filter entry, in the order the spec
    // documents them; each records its diagnostic and goes on, so that every problem of the
    // file is reported at once. Split, the half-built entry would travel between functions.
    pub(crate) fn filter(&mut self, r: &Spanned<spec::FilterSpec>) -> Option<FilterRule> {
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

    pub(crate) fn sysctls(
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
