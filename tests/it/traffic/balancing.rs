//! Load balancing, hairpin and LAN masquerade through real connections.

use super::*;

/// Binomial tolerance: 5 standard deviations (a false failure about once in 1.7 million runs).
pub(super) fn tolerance(n: usize, p: f64) -> f64 {
    5.0 * (n as f64 * p * (1.0 - p)).sqrt()
}

pub(super) fn check_distribution(lab: &Lab, file: &str, weights: &[(&str, f64)]) {
    lab.apply(&example(file));
    let s = sample_tcp(lab.client(), sa(PUBLIC, 80), LB_N, T);
    eprintln!(
        "{file}: {:?} failures {:?} in {:?}",
        s.counts, s.failures, s.elapsed
    );
    assert_eq!(s.failed(), 0, "{s:?}");
    for (name, p) in weights {
        let want = LB_N as f64 * p;
        let got = s.count(name) as f64;
        let tol = tolerance(LB_N, *p);
        assert!(
            (got - want).abs() <= tol,
            "{file}: {name} got {got}, want {want} ± {tol:.0}: {s:?}"
        );
    }
}

// S5 (seed 001; 003's three backends): random balancing 2 and 3 ways and weighted, over 300 connections each.
root_test!(load_balancing_random_and_weighted, || {
    let lab = Lab::switch(false);
    check_distribution(
        &lab,
        "seed-load-balance-2.yaml",
        &[("be1", 0.5), ("be2", 0.5)],
    );
    let third = 1.0 / 3.0;
    check_distribution(
        &lab,
        "seed-load-balance-3.yaml",
        &[("be1", third), ("be2", third), ("be3", third)],
    );
    check_distribution(
        &lab,
        "seed-load-balance-weighted.yaml",
        &[("be1", 0.5), ("be2", 0.25), ("be3", 0.25)],
    );
    lab.done();
});

// S5 (seed 003's nth scheme, per connection): round-robin in the nat table counts connections: exactly 100/100/100, in order.
root_test!(round_robin_is_exact, || {
    let lab = Lab::switch(false);
    lab.apply(&example("seed-round-robin.yaml"));
    let order: Vec<String> = (0..6)
        .map(|_| probe_tcp(lab.client(), sa(PUBLIC, 80), T).label())
        .collect();
    let first = order.iter().position(|n| n == "be1").expect("be1 answers");
    let cycle = ["be1", "be2", "be3"];
    for (i, n) in order.iter().enumerate() {
        assert_eq!(n, cycle[(i + 3 - first) % 3], "order {order:?}");
    }
    let s = sample_tcp(lab.client(), sa(PUBLIC, 80), LB_N, T);
    eprintln!("round-robin: {:?} in {:?}", s.counts, s.elapsed);
    for b in cycle {
        assert_eq!(s.count(b), LB_N / 3, "{s:?}");
    }
    lab.done();
});

/// S6 (seed 001): hairpin from the LAN client, from a backend to itself and from another
/// backend, while WAN clients and plain LAN traffic keep their source address.
pub(super) fn check_hairpin(lab: &Lab, file: &Path) {
    lab.apply(file);
    let public = sa(PUBLIC, 80);
    let r = probe_tcp(lab.client(), public, T);
    assert_reached(
        lab,
        &r,
        "be1",
        CLIENT.into(),
        "WAN client keeps its address",
    );
    let r = probe_tcp(lab.lan(), public, T);
    assert_reached(lab, &r, "be1", GW_LAN.into(), "lan -> public (hairpin)");
    let r = probe_tcp(lab.be(1), public, T);
    assert_reached(lab, &r, "be1", GW_LAN.into(), "be1 -> itself (hairpin)");
    let r = probe_tcp(lab.be(2), public, T);
    assert_reached(lab, &r, "be1", GW_LAN.into(), "be2 -> be1 (hairpin)");
    // Plain LAN traffic to the backend port is not masqueraded (--ctstate DNAT).
    let r = probe_tcp(lab.lan(), sa(Topology::BE1, 8080), T);
    assert_reached(lab, &r, "be1", Topology::LAN.into(), "plain L2 lan -> be1");
    lab.assert_in_sync(file);
}

pub(super) fn hairpin_files(lab: &Lab) -> Vec<PathBuf> {
    let file = example("seed-hairpin.yaml");
    // The listed form: `hairpin: [CIDR]` instead of `hairpin: true` with the alias's networks.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("lan: {name: lan0, networks: [10.77.0.0/24]}", "lan: lan0")
        .replace("hairpin: true", "hairpin: [10.77.0.0/24]");
    assert!(text.contains("hairpin: [10.77.0.0/24]"), "{text}");
    let nets = lab.root.path().join("hairpin-auto.yaml");
    std::fs::write(&nets, text).unwrap();
    vec![file, nets]
}

root_test!(hairpin_through_a_lan_switch, || {
    let lab = Lab::switch(true);
    // Without pfstate, lan -> public:80 is refused by the gateway.
    assert_eq!(
        probe_tcp(lab.lan(), sa(PUBLIC, 80), T),
        ProbeResult::Refused
    );
    for f in hairpin_files(&lab) {
        check_hairpin(&lab, &f);
    }
    lab.done();
});

// The LAN bridge inside the gateway with bridge-nf-call-iptables=1 (Docker/libvirt hosts).
// be1 -> itself needs the bridge port in hairpin mode (what Docker sets): topology, not rules.
root_test!(hairpin_through_a_bridge_in_the_gateway, || {
    let Some(lab) = Lab::bridged("hairpin_through_a_bridge_in_the_gateway", true) else {
        return;
    };
    let (br, ns) = lab.t().lan_bridge();
    br.set_hairpin(ns, "p-be1", true).unwrap();
    for f in hairpin_files(&lab) {
        check_hairpin(&lab, &f);
    }
    // Under FORWARD policy DROP the hairpin still works (pfstate's accepts), while plain L2
    // traffic between LAN hosts is blocked by br_netfilter: pfstate does not open it.
    lab.iptables(&["-P", "FORWARD", "DROP"]);
    let r = probe_tcp(lab.lan(), sa(PUBLIC, 80), T);
    assert_reached(&lab, &r, "be1", GW_LAN.into(), "hairpin under DROP");
    let r = probe_tcp(lab.be(1), sa(PUBLIC, 80), T);
    assert_reached(&lab, &r, "be1", GW_LAN.into(), "self-hairpin under DROP");
    assert_blocked(
        &probe_tcp(lab.lan(), sa(Topology::BE2, 8080), SHORT),
        &ProbeResult::Timeout,
        "L2 lan -> be2 under FORWARD DROP with br_netfilter",
    );
    lab.done();
});

/// S7 (seeds 001, 003): LAN hosts reach the WAN with the gateway's public address, TCP and UDP,
/// by MASQUERADE and by SNAT to an address.
pub(super) fn check_lan_masquerade(lab: &Lab) {
    let to_client = sa(CLIENT, Topology::CLIENT_PORT);
    assert_blocked(
        &probe_tcp(lab.lan(), to_client, SHORT),
        &ProbeResult::Timeout,
        "no forwarding before apply",
    );
    let file = example("seed-lan-masquerade.yaml");
    let snat_to = std::fs::read_to_string(&file)
        .unwrap()
        .replace("to: masquerade", "to: 192.0.2.1");
    for (name, text) in [
        ("masq.yaml", std::fs::read_to_string(&file).unwrap()),
        ("snat-to.yaml", snat_to),
    ] {
        lab.apply_text(name, &text);
        for host in [lab.lan(), lab.be(1), lab.be(3)] {
            let r = probe_tcp(host, to_client, T);
            assert_reached(lab, &r, "client", PUBLIC.into(), &format!("{name} tcp"));
            let r = probe_udp(host, to_client, None, T);
            assert_reached(lab, &r, "client", PUBLIC.into(), &format!("{name} udp"));
        }
        // LAN to LAN is untouched.
        let r = probe_tcp(lab.lan(), sa(Topology::BE2, 8080), T);
        assert_reached(lab, &r, "be2", Topology::LAN.into(), "lan -> be2 direct");
    }
}

root_test!(lan_masquerade_through_a_lan_switch, || {
    let lab = Lab::switch(true);
    check_lan_masquerade(&lab);
    lab.done();
});

root_test!(lan_masquerade_through_a_bridge_in_the_gateway, || {
    let Some(lab) = Lab::bridged("lan_masquerade_through_a_bridge_in_the_gateway", true) else {
        return;
    };
    check_lan_masquerade(&lab);
    // Under FORWARD DROP the snat entry's accepts carry both directions.
    lab.iptables(&["-P", "FORWARD", "DROP"]);
    let r = probe_tcp(lab.lan(), sa(CLIENT, Topology::CLIENT_PORT), T);
    assert_reached(&lab, &r, "client", PUBLIC.into(), "snat under DROP");
    lab.done();
});
