//! End-to-end traffic tests: every seed scenario (shared/seeds, shared/notes/traffic-tests.md)
//! applied by `pfstate apply` from the files in examples/ inside a namespace lab, and proven with
//! real TCP/UDP connections.
//!
//! The harness only builds the topology (namespaces, veths, bridges, servers, pinned sysctls,
//! the FORWARD policy and bridge-port hairpin mode where a scenario calls for them); every rule
//! and every sysctl pfstate implies comes from `ip netns exec <gw> pfstate --root <tmp> apply`.
//! So a renderer change that stops carrying traffic fails here.
//!
//! Root only (namespaces); without root each test prints SKIPPED and passes. Each test builds
//! its own uniquely named namespaces, so they run in parallel; probes expected to fail use a
//! short timeout.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use pfstate::lab::root_state;
use pfstate::lab::{
    GatewayOptions, LanMode, Netns, ProbeResult, Proto, Topology, hold_tcp, probe_tcp, probe_udp,
    sample_tcp,
};

mod balancing;
mod filter;
mod forwards;
mod lab;

use lab::*;

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
/// Timeout of probes expected to succeed (they return as soon as the reply is there).
const T: Duration = Duration::from_millis(1500);
/// Timeout of probes expected to be dropped.
const SHORT: Duration = Duration::from_millis(600);
/// Connections per load-balancing sample.
const LB_N: usize = 300;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

const PUBLIC: std::net::Ipv4Addr = Topology::GW_WAN;
const GW_LAN: std::net::Ipv4Addr = Topology::GW_LAN;
const CLIENT: std::net::Ipv4Addr = Topology::CLIENT;

// S1 + S3 (seeds 000, 002): DNAT + masquerade to the gateway; the backend has no default
// route, so only the source NAT makes it answerable. ip_forward starts at 0 and is implied.
root_test!(port_forward_with_snat, || {
    let lab = Lab::switch(false);
    let public = sa(PUBLIC, 80);
    assert_eq!(probe_tcp(lab.client(), public, T), ProbeResult::Refused);
    assert_eq!(lab.sysctl("net.ipv4.ip_forward"), "0");
    lab.apply(&example("seed-port-forward.yaml"));
    assert_eq!(lab.sysctl("net.ipv4.ip_forward"), "1", "implied by apply");
    assert_eq!(lab.sysctl("net.ipv4.conf.wan0.forwarding"), "1");
    assert_eq!(lab.sysctl("net.ipv4.conf.lan0.forwarding"), "1");
    let r = probe_tcp(lab.client(), public, T);
    assert_reached(&lab, &r, "be1", GW_LAN.into(), "client -> public:80");
    // A tcp forward does not carry UDP: the gateway answers port unreachable.
    assert_blocked(
        &probe_udp(lab.client(), public, None, T),
        &ProbeResult::Refused,
        "udp to a tcp forward",
    );
    // A second apply changes nothing.
    let again = lab.apply(&example("seed-port-forward.yaml"));
    assert!(again.contains("in sync"), "{again}");
    lab.done();
});

// S1 without source NAT (seed 000's first form): the backend routes via the gateway and
// sees the client's own address.
root_test!(port_forward_keeps_client_address, || {
    let lab = Lab::switch(true);
    lab.apply(&example("seed-port-forward-keep-source.yaml"));
    let r = probe_tcp(lab.client(), sa(PUBLIC, 80), T);
    assert_reached(&lab, &r, "be1", CLIENT.into(), "client ip preserved");
    // The DNAT is limited to the listen address: a LAN host's :80 to another address is routed
    // out untouched (the client has no route back to the LAN, so it times out), never answered
    // by be1 (the seeds' bare `--dport 80` hijacks it).
    assert_blocked(
        &probe_tcp(lab.lan(), sa(CLIENT, 80), SHORT),
        &ProbeResult::Timeout,
        "lan -> client:80 not hijacked",
    );
    lab.done();
});

// S2 (seeds 000, 004; 002 accepts both directions): FORWARD policy DROP set by someone else; pfstate accepts both
// directions of its own translated connections and leaves the policy alone.
root_test!(forward_policy_drop, || {
    let lab = Lab::switch(false);
    lab.iptables(&["-P", "FORWARD", "DROP"]);
    let file = example("seed-forward-policy-drop.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    // Without the accepts the forward is dropped: proves the accept rules carry it.
    lab.apply_text(
        "no-accept.yaml",
        &text.replace("accept: true", "accept: false"),
    );
    assert_blocked(
        &probe_tcp(lab.client(), sa(PUBLIC, 80), SHORT),
        &ProbeResult::Timeout,
        "accept: false under FORWARD DROP",
    );
    lab.apply(&file);
    let r = probe_tcp(lab.client(), sa(PUBLIC, 80), T);
    assert_reached(&lab, &r, "be1", GW_LAN.into(), "forward under policy DROP");
    let policy = lab.gw().exec("iptables", &["-S", "FORWARD"]).unwrap();
    assert!(policy.starts_with("-P FORWARD DROP"), "{policy}");
    lab.done();
});

// S4 (seeds 000, 001): the gateway itself reaches the forward through its LAN address, its
// public address and 127.0.0.1; backends have no default route.
root_test!(local_access_from_the_gateway, || {
    let lab = Lab::switch(false);
    for dst in [GW_LAN, PUBLIC, std::net::Ipv4Addr::LOCALHOST] {
        assert_eq!(
            probe_tcp(lab.gw(), sa(dst, 80), T),
            ProbeResult::Refused,
            "before apply, {dst}"
        );
    }
    lab.apply(&example("seed-local-access.yaml"));
    for dst in [GW_LAN, PUBLIC, std::net::Ipv4Addr::LOCALHOST] {
        let r = probe_tcp(lab.gw(), sa(dst, 80), T);
        assert_reached(&lab, &r, "be1", GW_LAN.into(), &format!("gw -> {dst}:80"));
    }
    assert_eq!(lab.sysctl("net.ipv4.conf.lan0.route_localnet"), "1");
    assert_eq!(lab.sysctl("net.ipv4.conf.all.route_localnet"), "0");
    lab.assert_in_sync(&example("seed-local-access.yaml"));
    // With a listen address: that address and 127.0.0.1, not the gateway's other addresses.
    let text = std::fs::read_to_string(example("seed-local-access.yaml"))
        .unwrap()
        .replace(
            "      port: 80\n",
            "      port: 80\n      address: 192.0.2.1\n",
        );
    assert!(text.contains("address: 192.0.2.1"), "{text}");
    lab.apply_text("local-address.yaml", &text);
    for dst in [PUBLIC, std::net::Ipv4Addr::LOCALHOST] {
        let r = probe_tcp(lab.gw(), sa(dst, 80), T);
        assert_reached(
            &lab,
            &r,
            "be1",
            GW_LAN.into(),
            &format!("gw -> {dst}:80 (address)"),
        );
    }
    assert_blocked(
        &probe_tcp(lab.gw(), sa(GW_LAN, 80), T),
        &ProbeResult::Refused,
        "not the listen address",
    );
    // The OUTPUT DNAT does not hijack the gateway's own :80 connections to other hosts.
    assert_blocked(
        &probe_tcp(lab.gw(), sa(CLIENT, 80), T),
        &ProbeResult::Refused,
        "gw -> client:80 goes to the client",
    );
    lab.done();
});

// Two forwards sharing a backend: the source NAT of one must not leak onto the connections of
// the other (the backend of `direct` sees the client; the one of `masq` sees the gateway).
root_test!(source_nat_stays_with_its_forward, || {
    let lab = Lab::switch(true);
    lab.apply_text(
        "shared-backend.yaml",
        "version: 1\n\
         interfaces: {wan: wan0, lan: lan0}\n\
         forwards:\n\
         \x20 - name: direct\n\
         \x20   listen: {port: 80, address: 192.0.2.1}\n\
         \x20   to: 10.77.0.11:8080\n\
         \x20 - name: masq\n\
         \x20   listen: {port: 81, address: 192.0.2.1}\n\
         \x20   to: 10.77.0.11:8080\n\
         \x20   snat: masquerade\n\
         \x20 - name: masq-range\n\
         \x20   listen: {port: \"7000-7001\"}\n\
         \x20   to: 10.77.0.11:8080\n\
         \x20   snat: masquerade\n",
    );
    for _ in 0..3 {
        let r = probe_tcp(lab.client(), sa(PUBLIC, 80), T);
        assert_reached(&lab, &r, "be1", CLIENT.into(), "direct keeps the client");
        let r = probe_tcp(lab.client(), sa(PUBLIC, 81), T);
        assert_reached(&lab, &r, "be1", GW_LAN.into(), "masq masquerades");
        let r = probe_tcp(lab.client(), sa(PUBLIC, 7001), T);
        assert_reached(&lab, &r, "be1", GW_LAN.into(), "masq-range masquerades");
    }
    let again = lab.apply(&lab.root.path().join("shared-backend.yaml"));
    assert!(again.contains("in sync"), "{again}");
    lab.done();
});

// Seed 004's forward bound to the WAN interface (`-i wan0`) never matches LAN clients; with
// hairpin pfstate also catches them on the LAN interface (`via`), so the LAN client and the
// backend itself reach it too.
root_test!(hairpin_with_a_wan_bound_forward, || {
    let lab = Lab::switch(true);
    let text = std::fs::read_to_string(example("seed-conntrack.yaml"))
        .unwrap()
        .replace(
            "      interface: wan\n",
            "      interface: wan\n    hairpin: true\n    via: lan\n",
        )
        .replace("lan: lan0", "lan: {name: lan0, networks: [10.77.0.0/24]}");
    assert!(text.contains("networks: [10.77.0.0/24]"), "{text}");
    lab.apply_text("wan-bound-hairpin.yaml", &text);
    let public = sa(PUBLIC, 80);
    let r = probe_tcp(lab.client(), public, T);
    assert_reached(&lab, &r, "be1", CLIENT.into(), "WAN client");
    let r = probe_tcp(lab.lan(), public, T);
    assert_reached(&lab, &r, "be1", GW_LAN.into(), "LAN client (hairpin)");
    let r = probe_tcp(lab.be(1), public, T);
    assert_reached(&lab, &r, "be1", GW_LAN.into(), "be1 -> itself");
    lab.done();
});

// Seed 003's filter rules: INPUT accept for a trusted host, log + reject for the rest, a drop
// on the LAN interface, and a FORWARD reject of one LAN host next to the LAN masquerade.
root_test!(filter_rules, || {
    let lab = Lab::switch(true);
    lab.gw().serve("gw-ssh", Proto::Tcp, 2222).unwrap();
    lab.gw().serve("gw-web", Proto::Tcp, 8081).unwrap();
    let ssh_wan = sa(PUBLIC, 2222);
    let ssh_lan = sa(GW_LAN, 2222);
    let web_lan = sa(GW_LAN, 8081);
    // Everything open before.
    assert!(probe_tcp(lab.lan(), ssh_lan, T).is_ok());
    lab.apply(&example("seed-filter.yaml"));
    let r = probe_tcp(lab.client(), ssh_wan, T);
    assert_reached(
        &lab,
        &r,
        "gw-ssh",
        CLIENT.into(),
        "trusted host reaches ssh",
    );
    assert_blocked(
        &probe_tcp(lab.lan(), ssh_lan, T),
        &ProbeResult::Refused,
        "others are rejected",
    );
    assert_blocked(
        &probe_tcp(lab.lan(), web_lan, SHORT),
        &ProbeResult::Timeout,
        "web dropped on the LAN interface",
    );
    let r = probe_tcp(lab.client(), sa(PUBLIC, 8081), T);
    assert_reached(&lab, &r, "gw-web", CLIENT.into(), "web open on the WAN");
    let to_client = sa(CLIENT, Topology::CLIENT_PORT);
    let r = probe_tcp(lab.lan(), to_client, T);
    assert_reached(&lab, &r, "client", PUBLIC.into(), "lan goes out");
    assert!(
        matches!(
            probe_tcp(lab.be(3), to_client, T),
            ProbeResult::Refused | ProbeResult::Unreachable(_)
        ),
        "be3 is rejected in FORWARD"
    );
    lab.assert_in_sync(&example("seed-filter.yaml"));
    lab.done();
});

// On a Docker-like host (LAN bridge in the gateway, bridge-nf-call-iptables=1): access from
// the gateway itself (127.0.0.1 through route_localnet on the bridge) and a balanced UDP+TCP
// hairpin where every backend may be sent to itself.
root_test!(local_and_balanced_hairpin_on_a_bridge, || {
    let Some(lab) = Lab::bridged("local_and_balanced_hairpin_on_a_bridge", false) else {
        return;
    };
    lab.apply(&example("seed-local-access.yaml"));
    for dst in [GW_LAN, PUBLIC, std::net::Ipv4Addr::LOCALHOST] {
        let r = probe_tcp(lab.gw(), sa(dst, 80), T);
        assert_reached(&lab, &r, "be1", GW_LAN.into(), &format!("gw -> {dst}:80"));
    }
    // Topology for the hairpin part: backends route via the gateway, bridge ports in hairpin
    // mode (as Docker sets them) so a backend can be sent back to itself.
    let (br, ns) = lab.t().lan_bridge();
    for (i, p) in ["p-be1", "p-be2", "p-be3"].into_iter().enumerate() {
        br.set_hairpin(ns, p, true).unwrap();
        lab.be(i + 1).route_add("default", GW_LAN.into()).unwrap();
    }
    lab.apply_text(
        "lb-hairpin.yaml",
        "version: 1\n\
         interfaces: {wan: wan0, lan: {name: lan0, networks: [10.77.0.0/24]}}\n\
         forwards:\n\
         \x20 - name: web\n\
         \x20   proto: both\n\
         \x20   listen: {port: 80, address: 192.0.2.1}\n\
         \x20   to: [10.77.0.11:8080, 10.77.0.12:8080, 10.77.0.13:8080]\n\
         \x20   balance: round-robin\n\
         \x20   hairpin: true\n\
         \x20   via: lan\n",
    );
    for host in [lab.be(1), lab.be(2), lab.be(3), lab.lan()] {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let r = probe_tcp(host, sa(PUBLIC, 80), T);
            assert_reached(&lab, &r, &r.label(), GW_LAN.into(), "tcp hairpin");
            seen.insert(r.label());
            let r = probe_udp(host, sa(PUBLIC, 80), None, T);
            assert_reached(&lab, &r, &r.label(), GW_LAN.into(), "udp hairpin");
        }
        assert_eq!(seen.len(), 3, "round-robin reaches all three: {seen:?}");
    }
    lab.done();
});

// Two forwards on the same port of two public addresses share a backend; only one masquerades.
// The source NAT of one must not catch the other's connections (the rule matches the listen
// address too), and the gateway itself still reaches the masquerading one through 127.0.0.1.
root_test!(source_nat_stays_with_its_listen_address, || {
    let lab = Lab::switch(true);
    lab.gw()
        .ip(&["addr", "add", "192.0.2.2/24", "dev", "wan0"])
        .unwrap();
    lab.apply_text(
        "two-addresses.yaml",
        "version: 1\n\
         interfaces: {wan: wan0, lan: lan0}\n\
         forwards:\n\
         \x20 - name: direct\n\
         \x20   listen: {port: 80, address: 192.0.2.1}\n\
         \x20   to: 10.77.0.11:8080\n\
         \x20 - name: masq\n\
         \x20   listen: {port: 80, address: 192.0.2.2}\n\
         \x20   to: 10.77.0.11:8080\n\
         \x20   snat: masquerade\n\
         \x20   local: true\n\
         \x20   via: lan\n",
    );
    let second: std::net::Ipv4Addr = "192.0.2.2".parse().unwrap();
    for _ in 0..3 {
        let r = probe_tcp(lab.client(), sa(PUBLIC, 80), T);
        assert_reached(&lab, &r, "be1", CLIENT.into(), "direct keeps the client");
        let r = probe_tcp(lab.client(), sa(second, 80), T);
        assert_reached(&lab, &r, "be1", GW_LAN.into(), "masq masquerades");
    }
    let r = probe_tcp(lab.gw(), sa(std::net::Ipv4Addr::LOCALHOST, 80), T);
    assert_reached(
        &lab,
        &r,
        "be1",
        GW_LAN.into(),
        "the gateway through 127.0.0.1",
    );
    let r = probe_tcp(lab.gw(), sa(second, 80), T);
    assert_reached(
        &lab,
        &r,
        "be1",
        GW_LAN.into(),
        "the gateway through the listen address",
    );
    lab.done();
});
