//! Filter entries -> rules in the form `iptables-save` prints. A list one iptables rule can
//! hold (ports, through `-m multiport`) stays in one rule; every other list (addresses, ICMP
//! types, original destinations) multiplies into one rule per combination, in file order.

use ipnet::IpNet;

use super::builder::{Builder, comment};
use crate::model::*;
use crate::names;
use crate::ruleset::Jump;
use crate::ruleset::rule::{Rule, save_string};

/// One combination of the listed values: what a single kernel rule matches.
#[derive(Clone, Copy, Default)]
struct Pick<'a> {
    source: Option<&'a AddrMatch>,
    destination: Option<&'a AddrMatch>,
    icmp: Option<&'a IcmpMatch>,
    original_address: Option<&'a IpNet>,
    original_port: Option<&'a PortRange>,
}

pub fn filter_rules(chain: &str, r: &FilterRule, family: Family) -> Vec<Rule> {
    picks(r)
        .into_iter()
        .map(|p| filter_rule(chain, r, family, p))
        .collect()
}

/// Every combination, sources varying slowest, so rules read in the order of the file.
fn picks(r: &FilterRule) -> Vec<Pick<'_>> {
    fn each<T>(list: &[T]) -> Vec<Option<&T>> {
        if list.is_empty() {
            vec![None]
        } else {
            list.iter().map(Some).collect()
        }
    }
    let mut out = Vec::with_capacity(r.expansion());
    for source in each(&r.sources) {
        for destination in each(&r.destinations) {
            for icmp in each(&r.icmp_types) {
                for original_address in each(&r.original_addresses) {
                    for original_port in each(&r.original_ports) {
                        out.push(Pick {
                            source,
                            destination,
                            icmp,
                            original_address,
                            original_port,
                        });
                    }
                }
            }
        }
    }
    out
}

fn filter_rule(chain: &str, r: &FilterRule, family: Family, p: Pick) -> Rule {
    let mut rule = Rule::new(chain)
        .maybe_in_interface(r.in_interface.as_deref())
        .maybe_out_interface(r.out_interface.as_deref());
    let mut ranges = Vec::new();
    if let Some(s) = p.source {
        match s {
            AddrMatch::Net(n) => rule = rule.source(*n),
            AddrMatch::Range(a, b) => ranges.push(format!("--src-range {a}-{b}")),
        }
    }
    if let Some(d) = p.destination {
        match d {
            AddrMatch::Net(n) => rule = rule.destination(*n),
            AddrMatch::Range(a, b) => ranges.push(format!("--dst-range {a}-{b}")),
        }
    }
    if let Some(proto) = r.proto {
        rule = protocol(rule, r, proto, family, p.icmp);
    }
    if !ranges.is_empty() {
        rule = rule.m("iprange", &ranges.join(" "));
    }
    if let Some(original) = original(p) {
        rule = rule.m("conntrack", &original);
    }
    if !r.states.is_empty() {
        rule = rule.m("conntrack", &format!("--ctstate {}", r.states.join(",")));
    }
    if let Some(l) = &r.limit {
        let burst = l
            .burst
            .map(|b| format!(" --limit-burst {b}"))
            .unwrap_or_default();
        rule = rule.m("limit", &format!("--limit {}{burst}", l.rate));
    }
    rule.comment(&comment(&r.name)).target(&target(r, family))
}

/// `-p` and its port or ICMP match: single ports in the protocol's own match, lists in
/// `-m multiport` (one per direction, as iptables allows one list per match).
fn protocol(
    mut rule: Rule,
    r: &FilterRule,
    proto: FilterProto,
    family: Family,
    icmp: Option<&IcmpMatch>,
) -> Rule {
    let name = match (proto, family) {
        (FilterProto::Tcp, _) => "tcp",
        (FilterProto::Udp, _) => "udp",
        (FilterProto::Icmp, Family::V4) => "icmp",
        (FilterProto::Icmp, Family::V6) => "ipv6-icmp",
    };
    rule = rule.proto(name);
    if let Some(t) = icmp {
        return match (family, t.v4.as_deref(), t.v6.as_deref()) {
            (Family::V4, Some(v4), _) => rule.m("icmp", &format!("--icmp-type {v4}")),
            // ip6tables has no `any`: every ICMPv6 type is `-p ipv6-icmp` alone.
            (Family::V6, _, Some(v6)) if v6 != "any" => {
                rule.m("icmp6", &format!("--icmpv6-type {v6}"))
            }
            _ => rule,
        };
    }
    let mut single = Vec::new();
    let mut lists = Vec::new();
    for (ports, one, many) in [
        (&r.sports, "--sport", "--sports"),
        (&r.dports, "--dport", "--dports"),
    ] {
        match ports.as_slice() {
            [] => {}
            [p] => single.push(format!("{one} {}", p.match_text())),
            _ => {
                let text: Vec<String> = ports.iter().map(|p| p.match_text()).collect();
                lists.push(format!("{many} {}", text.join(",")));
            }
        }
    }
    if !single.is_empty() {
        rule = rule.m(name, &single.join(" "));
    }
    for list in lists {
        rule = rule.m("multiport", &list);
    }
    rule
}

/// `--ctorigdst ADDR --ctorigdstport PORT`; iptables prints a host address without `/32`.
fn original(p: Pick) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(a) = p.original_address {
        let text = if a.prefix_len() == a.max_prefix_len() {
            a.addr().to_string()
        } else {
            a.to_string()
        };
        parts.push(format!("--ctorigdst {text}"));
    }
    if let Some(port) = p.original_port {
        parts.push(format!("--ctorigdstport {}", port.match_text()));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn target(r: &FilterRule, family: Family) -> String {
    match r.action {
        Action::Accept => "ACCEPT".to_string(),
        Action::Drop => "DROP".to_string(),
        Action::Return => "RETURN".to_string(),
        Action::Reject => match family {
            Family::V4 => "REJECT --reject-with icmp-port-unreachable".to_string(),
            Family::V6 => "REJECT --reject-with icmp6-port-unreachable".to_string(),
        },
        Action::Log => match &r.log_prefix {
            Some(p) => format!("LOG --log-prefix {}", save_string(p)),
            None => "LOG".to_string(),
        },
    }
}

/// The default-verdict chains (`default:`), their rules pushed into `filter`, and the jumps
/// that join them to the END of their built-in chains. A drop or reject still lets through
/// what a default-deny host needs to stay reachable: loopback, replies of established
/// connections, and (IPv6 input) router and neighbour discovery.
pub(super) fn default_chains(model: &Model, family: Family, filter: &mut Builder) -> Vec<Jump> {
    let mut jumps = Vec::new();
    for (chain, verdict) in &model.defaults {
        let hook = match chain {
            FilterChain::Input => "INPUT",
            FilterChain::Forward => "FORWARD",
            FilterChain::Output => continue,
        };
        let name = names::default_chain(&model.prefix, hook);
        let c = comment(&format!("default-{}", hook.to_ascii_lowercase()));
        if *verdict != Verdict::Accept {
            for rule in keep_reachable(&name, *chain, family) {
                filter.push(&name, rule.comment(&c).target("ACCEPT"));
            }
        }
        let target = match (verdict, family) {
            (Verdict::Accept, _) => "ACCEPT",
            (Verdict::Drop, _) => "DROP",
            (Verdict::Reject, Family::V4) => "REJECT --reject-with icmp-port-unreachable",
            (Verdict::Reject, Family::V6) => "REJECT --reject-with icmp6-port-unreachable",
        };
        filter.push(&name, Rule::new(&name).comment(&c).target(target));
        jumps.push(Jump {
            from: hook.to_string(),
            to: name,
        });
    }
    jumps
}

fn keep_reachable(name: &str, chain: FilterChain, family: Family) -> Vec<Rule> {
    let mut rules = Vec::new();
    if chain == FilterChain::Input {
        rules.push(Rule::new(name).in_interface("lo"));
    }
    rules.push(Rule::new(name).m("conntrack", "--ctstate RELATED,ESTABLISHED"));
    if chain == FilterChain::Input && family == Family::V6 {
        for t in [133, 134, 135, 136] {
            let r = Rule::new(name).proto("ipv6-icmp");
            rules.push(r.m("icmp6", &format!("--icmpv6-type {t}")));
        }
    }
    rules
}
