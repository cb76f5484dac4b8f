//! Validation of `filter:` entries: every match checked and turned into the form the
//! renderer prints, lists kept as lists (the renderer decides what one kernel rule holds).

use super::filter_values::{parse_addr_match, parse_icmp_type, parse_limit};
use super::span::{Spanned, at};
use super::validate::Validator;
use super::yaml as spec;
use crate::error::Location;
use crate::model::*;

/// `-m multiport` holds at most 15 ports, a range counting as two.
const MULTIPORT_SLOTS: u32 = 15;
/// An entry whose lists multiply into more kernel rules than this is a mistake, not a rule.
const MAX_RULES_PER_ENTRY: usize = 256;

impl Validator {
    // Just over 60 lines: one line per key of a filter entry, each checked on its own so that
    // every error of the entry is reported together.
    pub(crate) fn filter(&mut self, r: &Spanned<spec::FilterSpec>) -> Option<FilterRule> {
        let before = self.diags.len();
        let chain = match r.chain.value {
            spec::FilterChainSpec::Input => FilterChain::Input,
            spec::FilterChainSpec::Forward => FilterChain::Forward,
            spec::FilterChainSpec::Output => FilterChain::Output,
        };
        let proto = match r.proto.as_ref().map(|p| p.value) {
            Some(spec::FilterProtoSpec::Tcp) => Some(FilterProto::Tcp),
            Some(spec::FilterProtoSpec::Udp) => Some(FilterProto::Udp),
            Some(spec::FilterProtoSpec::Icmp) => Some(FilterProto::Icmp),
            Some(spec::FilterProtoSpec::All) | None => None,
        };
        let sports = self.ports(&r.sport, "sport", true);
        let dports = self.ports(&r.dport, "dport", true);
        let original_ports = self.ports(&r.original_port, "original_port", false);
        self.ports_need_a_protocol(r, proto);
        let sources = self.addr_matches(&r.source);
        let destinations = self.addr_matches(&r.destination);
        let original_addresses: Vec<ipnet::IpNet> = r
            .original_address
            .0
            .iter()
            .filter_map(|n| self.network(n))
            .collect();
        let (in_interface, out_interface) = self.filter_interfaces(r, chain);
        let families = self.filter_families(r, &sources, &destinations, &original_addresses);
        let icmp_types = self.icmp_types(r, proto, &families);
        let limit = r.limit.as_ref().and_then(|l| {
            let burst = l.burst.as_ref().map(|b| b.value);
            parse_limit(&l.rate, burst)
                .map_err(|e| self.err(at(&l.rate), e))
                .ok()
        });
        let action = r.action.value;
        let log_prefix = self.log_prefix(r, action);
        if self.diags.len() != before {
            return None;
        }
        let rule = FilterRule {
            name: r.name.value.clone(),
            chain,
            families,
            proto,
            sports,
            dports,
            sources,
            destinations,
            in_interface,
            out_interface,
            states: states(r),
            icmp_types,
            limit,
            original_ports,
            original_addresses,
            action,
            log_prefix,
        };
        self.check_expansion(r, &rule);
        (self.diags.len() == before).then_some(rule)
    }

    /// Ports of one key; `several` when a list fits one rule (`-m multiport`), else each value
    /// becomes its own rule.
    fn ports(
        &mut self,
        list: &spec::OneOrMany<Spanned<spec::PortSpec>>,
        key: &str,
        several: bool,
    ) -> Vec<PortRange> {
        let ports: Vec<PortRange> = list.0.iter().filter_map(|p| self.port(p)).collect();
        let slots: u32 = ports
            .iter()
            .map(|p| if p.is_single() { 1 } else { 2 })
            .sum();
        if several && ports.len() > 1 && slots > MULTIPORT_SLOTS {
            self.err(
                at(&list.0[0]),
                format!(
                    "`{key}` lists {slots} port slots but one rule matches at most \
                     {MULTIPORT_SLOTS} (a range counts as two); split the list over two entries"
                ),
            );
        }
        ports
    }

    fn ports_need_a_protocol(&mut self, r: &spec::FilterSpec, proto: Option<FilterProto>) {
        if matches!(proto, Some(FilterProto::Tcp | FilterProto::Udp)) {
            return;
        }
        let first = [&r.dport, &r.sport, &r.original_port]
            .into_iter()
            .find_map(|l| l.0.first().map(at));
        if let Some(loc) = first {
            self.err(
                loc,
                "ports need `proto: tcp` or `proto: udp` in the same entry",
            );
        }
    }

    fn addr_matches(&mut self, list: &spec::OneOrMany<Spanned<String>>) -> Vec<AddrMatch> {
        list.0
            .iter()
            .filter_map(|a| parse_addr_match(a).map_err(|e| self.err(at(a), e)).ok())
            .collect()
    }

    fn filter_interfaces(
        &mut self,
        r: &spec::FilterSpec,
        chain: FilterChain,
    ) -> (Option<String>, Option<String>) {
        let in_interface = r.in_interface.as_ref().and_then(|i| self.interface(i));
        let out_interface = r.out_interface.as_ref().and_then(|i| self.interface(i));
        if let (FilterChain::Input, Some(o)) = (chain, &r.out_interface) {
            self.err(at(o), "out_interface cannot be matched in the input chain");
        }
        if let (FilterChain::Output, Some(i)) = (chain, &r.in_interface) {
            self.err(at(i), "in_interface cannot be matched in the output chain");
        }
        (in_interface, out_interface)
    }

    fn filter_families(
        &mut self,
        r: &Spanned<spec::FilterSpec>,
        sources: &[AddrMatch],
        destinations: &[AddrMatch],
        originals: &[ipnet::IpNet],
    ) -> Vec<Family> {
        let mut seen: Vec<Family> = sources
            .iter()
            .chain(destinations)
            .map(AddrMatch::family)
            .collect();
        seen.extend(originals.iter().map(|n| Family::of(&n.addr())));
        seen.dedup();
        if seen.iter().any(|f| *f != seen[0]) {
            self.err(
                at(r),
                "the addresses of this entry mix IPv4 and IPv6; write one entry per family",
            );
            return vec![];
        }
        let wanted = r.family.as_ref().map(|f| (f.value, at(f)));
        match (wanted, seen.first()) {
            (Some((spec::FamilySpec::Ipv4, loc)), Some(Family::V6))
            | (Some((spec::FamilySpec::Ipv6, loc)), Some(Family::V4)) => {
                self.err(loc, "family does not match the addresses of the rule");
                vec![]
            }
            (_, Some(f)) => vec![*f],
            (Some((spec::FamilySpec::Ipv4, _)), None) => vec![Family::V4],
            (Some((spec::FamilySpec::Ipv6, _)), None) => vec![Family::V6],
            (Some((spec::FamilySpec::Both, _)) | None, None) => vec![Family::V4, Family::V6],
        }
    }

    fn icmp_types(
        &mut self,
        r: &spec::FilterSpec,
        proto: Option<FilterProto>,
        families: &[Family],
    ) -> Vec<IcmpMatch> {
        let Some(first) = r.icmp_type.0.first() else {
            return vec![];
        };
        if proto != Some(FilterProto::Icmp) {
            self.err(at(first), "icmp_type needs `proto: icmp` in the same entry");
            return vec![];
        }
        r.icmp_type
            .0
            .iter()
            .filter_map(|t| {
                parse_icmp_type(&t.0, families)
                    .map_err(|e| self.err(at(t), e))
                    .ok()
            })
            .collect()
    }

    fn log_prefix(&mut self, r: &spec::FilterSpec, action: Action) -> Option<String> {
        let p = r.log_prefix.as_ref()?;
        if action != Action::Log {
            self.err(at(p), "log_prefix goes with `action: log`");
        }
        let printable = p
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"'\\".contains(c) || c == ' ');
        if p.is_empty() || p.len() > 29 || !printable {
            self.err(
                at(p),
                "log_prefix must be 1 to 29 printable characters without quotes or backslashes",
            );
        }
        Some(p.value.clone())
    }

    fn check_expansion(&mut self, r: &Spanned<spec::FilterSpec>, rule: &FilterRule) {
        let n = rule.expansion();
        let loc: Location = at(r);
        if n > MAX_RULES_PER_ENTRY {
            self.err(
                loc,
                format!(
                    "this entry's lists combine into {n} rules (at most {MAX_RULES_PER_ENTRY}); \
                     split it, or use a network or a range instead of a list of addresses"
                ),
            );
        }
        if let (Some(l), true) = (&r.limit, n > 1) {
            self.err(
                at(l),
                format!(
                    "a limit counts per rule, and the lists of this entry make {n} rules, each \
                     with its own count; write one entry per listed address or type"
                ),
            );
        }
    }
}

fn states(r: &spec::FilterSpec) -> Vec<&'static str> {
    let mut states: Vec<spec::StateSpec> = r.state.0.iter().map(|s| s.value).collect();
    states.sort();
    states.dedup();
    states.into_iter().map(state_name).collect()
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

#[cfg(test)]
#[path = "validate_filter_tests.rs"]
mod tests;
