//! The filter matches of `filter:` entries proven with real packets: each example in
//! examples/ (filter-*.yaml, docker-published-port.yaml) is applied by `pfstate apply` in a
//! namespace lab and must let through exactly the traffic it says, and nothing else.
//! Root only (namespaces); without root each test prints SKIPPED and passes.

use super::lab::{Lab, assert_reached};
use super::{CLIENT, GW_LAN, PUBLIC, SHORT, T, example, sa};
use pfstate::lab::{ProbeResult, Proto, Topology, ping4, probe_tcp};

/// A lab whose gateway runs services on :2222, :8081 and :8082.
fn services() -> Lab {
    let lab = Lab::switch(true);
    for (name, port) in [("gw-ssh", 2222), ("gw-web", 8081), ("gw-alt", 8082)] {
        lab.gw().serve(name, Proto::Tcp, port).unwrap();
    }
    lab
}

fn reaches(lab: &Lab, from: &pfstate::lab::Netns, port: u16, name: &str, what: &str) {
    let r = probe_tcp(from, sa(GW_LAN, port), T);
    assert_eq!(
        r.name().as_deref(),
        Some(name),
        "{what}: {r:?}\n{}",
        lab.t().dump()
    );
}

root_test!(port_lists_and_ranges, || {
    let lab = services();
    let file = example("filter-port-list.yaml");
    lab.apply(&file);
    for (port, name) in [(2222, "gw-ssh"), (8081, "gw-web"), (8082, "gw-alt")] {
        reaches(&lab, lab.lan(), port, name, "a listed port from the LAN");
    }
    for port in [2222, 8081, 8082] {
        let r = probe_tcp(lab.client(), sa(PUBLIC, port), SHORT);
        assert_eq!(
            r,
            ProbeResult::Timeout,
            "port {port} from the WAN is dropped"
        );
    }
    lab.assert_in_sync(&file);
    lab.done();
});

root_test!(address_lists_and_ranges, || {
    let lab = services();
    let file = example("filter-address-list.yaml");
    lab.apply(&file);
    let r = probe_tcp(lab.client(), sa(PUBLIC, 2222), T);
    assert_reached(&lab, &r, "gw-ssh", CLIENT.into(), "a listed address");
    reaches(&lab, lab.be(1), 2222, "gw-ssh", "the low end of the range");
    reaches(&lab, lab.be(2), 2222, "gw-ssh", "the high end of the range");
    for (from, what) in [
        (lab.be(3), "just above the range"),
        (lab.lan(), "an unlisted host"),
    ] {
        let r = probe_tcp(from, sa(GW_LAN, 2222), T);
        assert_eq!(r, ProbeResult::Refused, "{what} is rejected");
    }
    lab.assert_in_sync(&file);
    lab.done();
});

root_test!(icmp_types_by_name, || {
    let lab = services();
    assert!(
        ping4(lab.client(), PUBLIC, T),
        "the gateway answers pings before"
    );
    let file = example("filter-icmp.yaml");
    lab.apply(&file);
    assert!(!ping4(lab.client(), PUBLIC, SHORT), "no echo from the WAN");
    assert!(ping4(lab.lan(), GW_LAN, T), "the LAN still pings");
    reaches(
        &lab,
        lab.lan(),
        2222,
        "gw-ssh",
        "other traffic is untouched",
    );
    lab.assert_in_sync(&file);
    lab.done();
});

root_test!(rate_limit_with_burst, || {
    let lab = services();
    let file = example("filter-rate-limit.yaml");
    lab.apply(&file);
    // Burst 2, then 1 per minute: the third new connection within the minute is dropped.
    reaches(&lab, lab.lan(), 2222, "gw-ssh", "first connection (burst)");
    reaches(&lab, lab.lan(), 2222, "gw-ssh", "second connection (burst)");
    let r = probe_tcp(lab.lan(), sa(GW_LAN, 2222), SHORT);
    assert_eq!(r, ProbeResult::Timeout, "third connection over the limit");
    reaches(
        &lab,
        lab.lan(),
        8081,
        "gw-web",
        "other ports are not limited",
    );
    lab.assert_in_sync(&file);
    lab.done();
});

// Docker's published ports, as dockerd 28 writes them (DNAT in nat DOCKER, accepts in filter
// DOCKER, FORWARD policy DROP, the DOCKER-USER hook), rebuilt by hand in the gateway: pfstate
// puts its forward chain in DOCKER-USER and restricts one published port by client, matching
// the original destination port (9090) although FORWARD sees the container's 8080.
root_test!(docker_published_port_by_client, || {
    let lab = Lab::switch(true);
    docker_like(&lab);
    let web = sa(PUBLIC, 9090);
    let other = sa(PUBLIC, 9091);
    assert_reached(
        &lab,
        &probe_tcp(lab.client(), web, T),
        "be1",
        CLIENT.into(),
        "published",
    );
    let file = example("docker-published-port.yaml");
    lab.apply(&file);
    let save = lab.gw().exec("iptables-save", &["-t", "filter"]).unwrap();
    assert!(
        save.contains("-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD"),
        "pfstate hooks FORWARD through DOCKER-USER:\n{save}"
    );
    let r = probe_tcp(lab.client(), web, T);
    assert_reached(&lab, &r, "be1", CLIENT.into(), "a listed client");
    // The same file without the client in the list: the published port is closed to it,
    // while the other published port (same container port 8080) stays open.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("[198.51.100.0/24, 192.0.2.100]", "[198.51.100.0/24]");
    lab.apply_text("restricted.yaml", &text);
    assert_eq!(
        probe_tcp(lab.client(), web, SHORT),
        ProbeResult::Timeout,
        "unlisted client"
    );
    assert_reached(
        &lab,
        &probe_tcp(lab.client(), other, T),
        "be2",
        CLIENT.into(),
        "9091",
    );
    lab.done();
});

/// The rules dockerd writes for `-p 9090:8080` (be1) and `-p 9091:8080` (be2).
fn docker_like(lab: &Lab) {
    let (be1, be2) = (Topology::BE1, Topology::BE2);
    let script = format!(
        "set -e
iptables -t nat -N DOCKER
iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
iptables -t nat -A DOCKER -p tcp -m tcp --dport 9090 -j DNAT --to-destination {be1}:8080
iptables -t nat -A DOCKER -p tcp -m tcp --dport 9091 -j DNAT --to-destination {be2}:8080
iptables -P FORWARD DROP
iptables -N DOCKER-USER
iptables -N DOCKER
iptables -A FORWARD -j DOCKER-USER
iptables -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -A FORWARD -j DOCKER
iptables -A DOCKER -d {be1}/32 -p tcp -m tcp --dport 8080 -j ACCEPT
iptables -A DOCKER -d {be2}/32 -p tcp -m tcp --dport 8080 -j ACCEPT
sysctl -qw net.ipv4.ip_forward=1"
    );
    lab.gw()
        .exec("sh", &["-c", &script])
        .expect("docker-like rules");
}

// `default:` drops what no rule decided, after every foreign rule, without touching the
// policy: a foreign accept placed before the apply keeps working; one appended after it sits
// behind the default (plan reports the default misplaced) until the next apply moves the
// default back to the end.
root_test!(default_verdict_comes_after_foreign_rules, || {
    let lab = services();
    lab.iptables(&[
        "-A", "INPUT", "-p", "tcp", "--dport", "8081", "-j", "ACCEPT",
    ]);
    lab.gw().serve("gw-other", Proto::Tcp, 8083).unwrap();
    let file = example("default-deny.yaml");
    lab.apply(&file);
    reaches(&lab, lab.lan(), 2222, "gw-ssh", "pfstate's own accept");
    reaches(
        &lab,
        lab.lan(),
        8081,
        "gw-web",
        "the foreign accept before the default",
    );
    let r = probe_tcp(lab.lan(), sa(GW_LAN, 8082), SHORT);
    assert_eq!(r, ProbeResult::Timeout, "the default drops the rest");
    let r = probe_tcp(lab.client(), sa(PUBLIC, 80), T);
    assert_reached(
        &lab,
        &r,
        "be1",
        CLIENT.into(),
        "the forward passes FORWARD's default",
    );
    let r = probe_tcp(lab.lan(), sa(CLIENT, Topology::CLIENT_PORT), SHORT);
    assert_eq!(r, ProbeResult::Timeout, "unlisted forwarding is dropped");
    let policy = lab.gw().exec("iptables", &["-S", "INPUT"]).unwrap();
    assert!(
        policy.starts_with("-P INPUT ACCEPT"),
        "policy untouched: {policy}"
    );

    lab.iptables(&[
        "-A", "INPUT", "-p", "tcp", "--dport", "8083", "-j", "ACCEPT",
    ]);
    let r = probe_tcp(lab.lan(), sa(GW_LAN, 8083), SHORT);
    assert_eq!(
        r,
        ProbeResult::Timeout,
        "appended after the default: not reached"
    );
    let plan = lab.pfstate(&["plan", file.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "plan shows drift: {shown}");
    assert!(shown.contains("# misplaced"), "{shown}");
    lab.apply(&file);
    reaches(
        &lab,
        lab.lan(),
        8083,
        "gw-other",
        "the default moved back to the end",
    );
    lab.assert_in_sync(&file);
    lab.done();
});
