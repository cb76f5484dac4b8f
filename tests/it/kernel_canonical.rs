//! Every rule shape pfstate renders, loaded into a real kernel in a throwaway network namespace
//! and read back with `iptables-save`: the render must equal what the kernel prints, so that a
//! plan against the live host is a plain text comparison (and a second apply writes nothing).

use pfstate::lab::{Netns, NetnsOptions};
use pfstate::model::Family;
use pfstate::plan;
use pfstate::render::{self, Desired};
use pfstate::ruleset::dump;
use pfstate::spec::validate;

fn desired(yaml: &str) -> Desired {
    let model = validate::load_str("shape.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    render::render(&model)
}

/// Load the render into a fresh namespace and assert the kernel prints exactly the render.
fn round_trip(name: &str, yaml: &str) {
    let d = desired(yaml);
    let ns = Netns::create(
        "canon",
        NetnsOptions {
            ipv6: true,
            ..NetnsOptions::default()
        },
    )
    .expect("netns");
    let mut loaded_any = false;
    for family in Family::ALL {
        let (save, restore) = match family {
            Family::V4 => ("iptables-save", "iptables-restore"),
            Family::V6 => ("ip6tables-save", "ip6tables-restore"),
        };
        let rs = d.ruleset(family);
        let first = plan::plan_family(&d.prefix, rs, &Default::default());
        if first.is_empty() {
            continue;
        }
        loaded_any = true;
        let payload = first.payload();
        let out = ns
            .exec_output(
                "sh",
                &[
                    "-c",
                    &format!("{restore} --noflush <<'PAYLOAD'\n{payload}PAYLOAD\n"),
                ],
            )
            .expect("restore");
        assert!(
            out.status.success(),
            "{restore} refused the render:\n{}\n{payload}",
            String::from_utf8_lossy(&out.stderr)
        );
        let live = dump::parse(&ns.exec(save, &[]).expect("save"));
        let again = plan::plan_family(&d.prefix, rs, &live);
        assert!(
            again.is_empty(),
            "{name} ({family}): the kernel prints the rules differently from the render\n--- render\n{}\n--- kernel\n{}\npayload of a second apply:\n{}",
            again.desired_view,
            again.live_view,
            again.payload()
        );
    }
    assert!(loaded_any, "{name}: the shape rendered no rules");
}

macro_rules! shape {
    ($name:ident, $yaml:expr) => {
        root_test!($name, || {
            round_trip(
                stringify!($name),
                concat!(
                    "version: 1\ninterfaces: {wan: wan0, lan: {name: lan0, networks: [10.77.0.0/24]}}\n",
                    $yaml
                ),
            );
        });
    };
}

shape!(
    dnat_local_addresses,
    "forwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}\n"
);
shape!(
    dnat_listen_address_interface_sources,
    "forwards:\n  - name: web\n    proto: udp\n    listen: {port: 53, address: 192.0.2.1, interface: wan, from: [203.0.113.0/24, 198.51.100.7]}\n    to: 10.77.0.11\n"
);
shape!(
    dnat_port_range_identity,
    "forwards:\n  - {name: games, proto: both, listen: {port: \"27000-27015\"}, to: 10.77.0.20}\n"
);
shape!(
    dnat_port_range_shifted,
    "forwards:\n  - {name: games, listen: {port: \"27000-27015\"}, to: \"10.77.0.20:37000-37015\"}\n"
);
shape!(
    dnat_port_range_to_one_port,
    "forwards:\n  - {name: games, listen: {port: \"27000-27015\"}, to: \"10.77.0.20:9000\"}\n"
);
shape!(
    snat_masquerade_and_address,
    "forwards:\n  - {name: a, listen: {port: 80}, to: 10.77.0.11:8080, snat: masquerade, via: lan}\n  - {name: b, listen: {port: 81}, to: 10.77.0.12:8080, snat: 10.77.0.1}\n"
);
shape!(
    random_two_three_and_weighted,
    "forwards:\n  - {name: two, listen: {port: 80}, to: [10.77.0.11:8080, 10.77.0.12:8080]}\n  - {name: three, listen: {port: 81}, to: [10.77.0.11:8080, 10.77.0.12:8080, 10.77.0.13:8080]}\n  - name: weighted\n    listen: {port: 82}\n    to: [{address: \"10.77.0.11:8080\", weight: 5}, {address: \"10.77.0.12:8080\", weight: 3}, 10.77.0.13:8080]\n"
);
shape!(
    round_robin_weighted,
    "forwards:\n  - name: rr\n    balance: round-robin\n    listen: {port: 80}\n    to: [{address: \"10.77.0.11:8080\", weight: 2}, 10.77.0.12:8080, 10.77.0.13:8080]\n"
);
shape!(
    hairpin_networks_and_local,
    "forwards:\n  - {name: web, listen: {port: 80, address: 192.0.2.1}, to: 10.77.0.11:8080, hairpin: [10.77.0.0/24], local: true, via: lan}\n"
);
shape!(
    hairpin_with_wan_interface,
    "forwards:\n  - {name: web, listen: {port: 80, interface: wan}, to: 10.77.0.11:8080, hairpin: true, via: lan}\n"
);
shape!(
    no_accept,
    "forwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, accept: false}\n"
);
shape!(
    outbound_snat,
    "snat:\n  - {name: lan-out, source: 10.77.0.0/24, out_interface: wan}\n  - {name: dmz-out, source: 10.78.0.0/24, out_interface: wan, to: 192.0.2.1, accept: false}\n"
);
shape!(
    ipv6_forward_and_snat,
    "forwards:\n  - {name: v6, proto: both, listen: {port: 80, address: \"2001:db8::1\", from: [\"2001:db8:1::/48\"]}, to: \"[fd00:77::11]:8080\", snat: masquerade, hairpin: [\"fd00:77::/64\"], local: true, via: lan}\n  - {name: v6r, listen: {port: \"8000-8010\"}, to: \"fd00:77::12\"}\nsnat:\n  - {name: v6-out, source: \"fd00:77::/64\", out_interface: wan}\n"
);
shape!(
    filter_every_field,
    "filter:\n  - {name: ssh, chain: input, proto: tcp, dport: 22, source: 10.0.0.0/8, in_interface: lan, state: [new, established], action: accept}\n  - {name: dns, chain: input, proto: udp, sport: \"1024-65535\", dport: 53, action: drop}\n  - {name: ping, chain: input, proto: icmp, action: accept}\n  - {name: rej, chain: forward, proto: tcp, dport: 25, in_interface: lan, out_interface: wan, destination: 192.0.2.0/24, action: reject}\n  - {name: log, chain: output, log_prefix: \"pfstate out: \", action: log}\n  - {name: back, chain: forward, state: [invalid], action: drop}\n  - {name: ret, chain: input, source: \"2001:db8::/32\", action: return}\n"
);
shape!(
    filter_both_families_reject,
    "filter:\n  - {name: closed, chain: input, proto: tcp, dport: 23, action: reject}\n  - {name: ping6, chain: input, proto: icmp, family: ipv6, action: accept}\n"
);
shape!(
    filter_port_lists_and_ranges,
    "filter:\n  - {name: web, chain: input, proto: tcp, dport: [80, 443, \"8000-8010\"], action: accept}\n  - {name: both, chain: input, proto: udp, sport: [53, 123], dport: [\"1024-2000\", 3000], action: accept}\n  - {name: mixed, chain: forward, proto: tcp, sport: 1000, dport: [22, 2222], action: drop}\n  - {name: one, chain: input, proto: tcp, sport: \"1-1023\", dport: 22, action: accept}\n"
);
shape!(
    filter_address_lists_and_ranges,
    "filter:\n  - {name: admins, chain: input, source: [10.0.0.5, 10.1.0.0/16, \"10.2.0.10-10.2.0.20\"], destination: [192.0.2.1, \"192.0.2.10-192.0.2.12\"], action: accept}\n  - {name: v6, chain: input, source: [\"2001:db8::1-2001:db8::9\", \"2001:db8:1::/48\"], action: drop}\n"
);
shape!(
    filter_icmp_types_v4,
    "filter:\n  - {name: ping, chain: input, proto: icmp, family: ipv4, icmp_type: [echo-reply, destination-unreachable, port-unreachable, fragmentation-needed, redirect, echo-request, router-advertisement, router-solicitation, time-exceeded, parameter-problem, any, \"3/4\", 13], action: accept}\n"
);
shape!(
    filter_icmp_types_v6,
    "filter:\n  - {name: ping, chain: input, proto: icmp, family: ipv6, icmp_type: [echo-reply, destination-unreachable, port-unreachable, packet-too-big, redirect, echo-request, router-advertisement, router-solicitation, time-exceeded, parameter-problem, neighbour-solicitation, neighbor-advertisement, any, \"1/4\", 143], action: accept}\n"
);
shape!(
    filter_icmp_names_in_both_families,
    "filter:\n  - {name: ping, chain: input, proto: icmp, icmp_type: [echo-request, time-exceeded], state: [new], action: accept}\n"
);
shape!(
    filter_rate_limits,
    "filter:\n  - {name: a, chain: input, proto: tcp, dport: 22, state: [new], limit: 60/minute, action: accept}\n  - {name: b, chain: input, limit: {rate: 7/hour, burst: 5}, action: log}\n  - {name: c, chain: input, limit: {rate: 100/second, burst: 10}, action: accept}\n  - {name: d, chain: input, limit: 3/day, action: accept}\n  - {name: e, chain: input, limit: 2000/min, action: accept}\n  - {name: f, chain: input, limit: 10000/s, action: accept}\n"
);
shape!(
    filter_original_destination,
    "filter:\n  - {name: pub, chain: forward, proto: tcp, source: [198.51.100.0/24, 203.0.113.7], original_port: [8080, \"9000-9010\"], state: [new], action: accept}\n  - {name: pub-addr, chain: forward, proto: udp, original_address: [192.0.2.1, 192.0.2.128/25], original_port: 53, action: drop}\n  - {name: pub6, chain: forward, proto: tcp, original_address: \"2001:db8::1\", original_port: 443, limit: 5/second, action: accept}\n"
);
shape!(
    default_verdicts,
    "filter:\n  - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}\ndefault: {input: drop, forward: reject}\n"
);
shape!(default_accept_only, "default: {forward: accept}\n");
shape!(
    long_names_and_prefix,
    "prefix: EDGEGATEWAY1\nforwards:\n  - {name: a-rather-long-forward-name-for-a-balancer, listen: {port: 80}, to: [10.77.0.11:8080, 10.77.0.12:8080]}\n"
);
