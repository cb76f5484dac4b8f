//! The rule text for each lesson of the SPEC's semantics section (where the seeds are wrong),
//! compared line by line, as kube-proxy's tests compare expected rule text.

use pfstate::model::Family;
use pfstate::render::{self, Desired};
use pfstate::ruleset::{TABLES, Table};
use pfstate::spec::validate;

fn render(yaml: &str) -> Desired {
    let model = validate::load_str(
        "t.yaml",
        &format!("version: 1\ninterfaces: {{wan: wan0, lan: lan0}}\n{yaml}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    render::render(&model)
}

fn chain(d: &Desired, family: Family, table: &str, name: &str) -> Vec<String> {
    let table = TABLES
        .into_iter()
        .find(|t| t.name() == table)
        .expect("table");
    d.ruleset(family)
        .table(table)
        .and_then(|t| t.chains.iter().find(|c| c.name == name))
        .map(|c| c.rules.clone())
        .unwrap_or_default()
}

fn sysctls(d: &Desired) -> Vec<String> {
    d.sysctls
        .iter()
        .map(|s| format!("{} = {}", s.key, s.value))
        .collect()
}

#[test]
fn dnat_is_limited_to_the_gateways_own_addresses() {
    // The seeds' bare `--dport 80` also hijacks traffic passing through to other hosts.
    let d = render("forwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}\n");
    assert_eq!(
        chain(&d, Family::V4, "nat", "PFSTATE-PREROUTING"),
        [
            "-A PFSTATE-PREROUTING -p tcp -m tcp --dport 80 -m addrtype --dst-type LOCAL -m comment --comment \"pfstate:web\" -j DNAT --to-destination 10.77.0.11:8080"
        ]
    );
    let d = render(
        "forwards:\n  - {name: web, listen: {port: 80, address: 192.0.2.1}, to: 10.77.0.11:8080}\n",
    );
    assert_eq!(
        chain(&d, Family::V4, "nat", "PFSTATE-PREROUTING"),
        [
            "-A PFSTATE-PREROUTING -d 192.0.2.1/32 -p tcp -m tcp --dport 80 -m comment --comment \"pfstate:web\" -j DNAT --to-destination 10.77.0.11:8080"
        ]
    );
}

#[test]
fn forward_accepts_cover_both_directions_of_translated_connections() {
    // FORWARD sees the translated destination; the reply direction needs accepting too.
    let d = render("forwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}\n");
    assert_eq!(
        chain(&d, Family::V4, "filter", "PFSTATE-FORWARD"),
        [
            "-A PFSTATE-FORWARD -p tcp -m conntrack --ctstate DNAT --ctreplsrc 10.77.0.11 --ctorigdstport 80 --ctreplsrcport 8080 -m comment --comment \"pfstate:web\" -j ACCEPT"
        ]
    );
    let d = render(
        "forwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, accept: false}\n",
    );
    assert!(chain(&d, Family::V4, "filter", "PFSTATE-FORWARD").is_empty());
    assert!(
        d.ruleset(Family::V4)
            .table(Table::Filter)
            .unwrap()
            .jumps
            .is_empty(),
        "no jump into an empty chain"
    );
}

#[test]
fn local_access_uses_output_masquerade_and_per_interface_route_localnet_with_guard() {
    let d = render(
        "forwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, local: true, via: lan}\n",
    );
    assert_eq!(
        chain(&d, Family::V4, "nat", "PFSTATE-OUTPUT"),
        [
            "-A PFSTATE-OUTPUT -p tcp -m tcp --dport 80 -m addrtype --dst-type LOCAL -m comment --comment \"pfstate:web\" -j DNAT --to-destination 10.77.0.11:8080"
        ]
    );
    assert_eq!(
        chain(&d, Family::V4, "nat", "PFSTATE-POSTROUTING"),
        [
            "-A PFSTATE-POSTROUTING -d 10.77.0.11/32 -o lan0 -p tcp -m addrtype --src-type LOCAL -m tcp --dport 8080 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment \"pfstate:web\" -j MASQUERADE"
        ]
    );
    assert_eq!(
        chain(&d, Family::V4, "filter", "PFSTATE-INPUT"),
        [
            "-A PFSTATE-INPUT ! -s 127.0.0.0/8 -d 127.0.0.0/8 -i lan0 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment \"pfstate:web\" -j DROP"
        ]
    );
    let s = sysctls(&d);
    assert!(
        s.contains(&"net.ipv4.conf.lan0.route_localnet = 1".to_string()),
        "{s:?}"
    );
    assert!(
        !s.iter().any(|l| l.contains("conf.all.route_localnet")),
        "never on all: {s:?}"
    );
}

#[test]
fn random_balancing_uses_one_over_n_then_a_catch_all() {
    let d = render(
        "forwards:\n  - {name: lb, listen: {port: 80}, to: [10.77.0.11:8080, 10.77.0.12:8080, 10.77.0.13:8080]}\n",
    );
    assert_eq!(
        chain(&d, Family::V4, "nat", "PFSTATE-LB-lb"),
        [
            "-A PFSTATE-LB-lb -p tcp -m statistic --mode random --probability 0.33333333349 -m comment --comment \"pfstate:lb\" -j DNAT --to-destination 10.77.0.11:8080",
            "-A PFSTATE-LB-lb -p tcp -m statistic --mode random --probability 0.50000000000 -m comment --comment \"pfstate:lb\" -j DNAT --to-destination 10.77.0.12:8080",
            "-A PFSTATE-LB-lb -p tcp -m comment --comment \"pfstate:lb\" -j DNAT --to-destination 10.77.0.13:8080",
        ]
    );
    // Weights 2:1:1 -> 2/4, then 1/2, then the rest.
    let d = render(
        "forwards:\n  - name: lb\n    listen: {port: 80}\n    to: [{address: \"10.77.0.11:8080\", weight: 2}, 10.77.0.12:8080, 10.77.0.13:8080]\n",
    );
    let rules = chain(&d, Family::V4, "nat", "PFSTATE-LB-lb");
    assert!(
        rules[0].contains("--probability 0.50000000000")
            && rules[1].contains("--probability 0.50000000000"),
        "{rules:?}"
    );
}

#[test]
fn round_robin_counts_connections_with_nth_in_nat_and_never_marks() {
    let d = render(
        "forwards:\n  - {name: rr, balance: round-robin, listen: {port: 80}, to: [10.77.0.11:8080, 10.77.0.12:8080, 10.77.0.13:8080]}\n",
    );
    let rules = chain(&d, Family::V4, "nat", "PFSTATE-LB-rr");
    assert!(
        rules[0].contains("-m statistic --mode nth --every 3 --packet 0"),
        "{rules:?}"
    );
    assert!(
        rules[1].contains("-m statistic --mode nth --every 2 --packet 0"),
        "{rules:?}"
    );
    assert!(!rules[2].contains("statistic"), "{rules:?}");
    for rs in &d.rulesets {
        for (_, t) in &rs.tables {
            for c in &t.chains {
                assert!(
                    c.rules
                        .iter()
                        .all(|r| !r.contains("MARK") && !r.contains("-m mark")),
                    "per-packet marks: {c:?}"
                );
            }
        }
    }
}

#[test]
fn hairpin_masquerade_is_limited_to_dnat_connections_from_the_lan() {
    let d = render(
        "forwards:\n  - {name: web, listen: {port: 80, address: 192.0.2.1}, to: 10.77.0.11:8080, hairpin: [10.77.0.0/24], via: lan}\n",
    );
    assert_eq!(
        chain(&d, Family::V4, "nat", "PFSTATE-POSTROUTING"),
        [
            "-A PFSTATE-POSTROUTING -s 10.77.0.0/24 -d 10.77.0.11/32 -o lan0 -p tcp -m tcp --dport 8080 -m conntrack --ctstate DNAT --ctorigdst 192.0.2.1 --ctorigdstport 80 -m comment --comment \"pfstate:web\" -j MASQUERADE"
        ]
    );
}

#[test]
fn forwarding_is_implied_per_family() {
    let d = render(
        "forwards:\n  - {name: v6, listen: {port: 80}, to: \"[fd00::2]:80\"}\nsnat:\n  - {name: out, source: 10.0.0.0/24, out_interface: wan}\n",
    );
    assert_eq!(
        sysctls(&d),
        [
            "net.ipv4.ip_forward = 1",
            "net.ipv6.conf.all.forwarding = 1"
        ]
    );
    let d =
        render("filter:\n  - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}\n");
    assert!(
        sysctls(&d).is_empty(),
        "a firewall alone implies no forwarding"
    );
}

#[test]
fn every_owned_rule_names_its_entry_and_every_jump_is_commented() {
    let d = render(
        "forwards:\n  - {name: a, proto: both, listen: {port: 80}, to: [10.77.0.11:80, 10.77.0.12:80], snat: masquerade, local: true, via: lan}\nsnat:\n  - {name: b, source: 10.77.0.0/24}\nfilter:\n  - {name: c, chain: forward, action: drop}\n",
    );
    for rs in &d.rulesets {
        for (_, t) in &rs.tables {
            for c in &t.chains {
                assert!(c.name.starts_with("PFSTATE-") && c.name.len() <= 28);
                for r in &c.rules {
                    assert!(r.contains("--comment \"pfstate:"), "{r}");
                    let target = r
                        .split(" -j ")
                        .nth(1)
                        .unwrap_or_default()
                        .split(' ')
                        .next()
                        .unwrap_or_default();
                    if target.starts_with("PFSTATE-") {
                        assert!(
                            t.chains.iter().any(|c| c.name == target),
                            "jump to missing chain {target}"
                        );
                    }
                }
            }
            for j in &t.jumps {
                assert_eq!(
                    j.line(),
                    format!("-A {} -m comment --comment pfstate -j {}", j.from, j.to)
                );
            }
        }
    }
}
