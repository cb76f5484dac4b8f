//! UDP, port ranges, IPv6, listen.from, conntrack and the examples.

use super::*;

// S9 (seed 001's "-p tcp does not apply to UDP"): a UDP forward; then its backend changes and
// an existing flow from a fixed source port follows, because apply deletes the stale entry.
root_test!(udp_forward_and_backend_change, || {
    let lab = Lab::switch(false);
    let public = sa(PUBLIC, 80);
    // Conntrack active in the gateway (any nat rule), then a datagram before the forward
    // exists: refused, and an un-NATed [UNREPLIED] entry for sport 40001 stays behind (S9).
    lab.apply(&example("seed-lan-masquerade.yaml"));
    assert_blocked(
        &probe_udp(lab.client(), public, Some(40001), T),
        &ProbeResult::Refused,
        "udp before the forward exists",
    );
    let file = example("seed-udp.yaml");
    lab.apply(&file);
    // The apply deleted that entry, so the same flow is now forwarded.
    let r = probe_udp(lab.client(), public, Some(40001), T);
    assert_reached(&lab, &r, "be1", GW_LAN.into(), "udp :40001 after apply");
    for _ in 0..3 {
        let r = probe_udp(lab.client(), public, Some(40000), T);
        assert_reached(&lab, &r, "be1", GW_LAN.into(), "udp from :40000");
    }
    assert_blocked(
        &probe_tcp(lab.client(), public, T),
        &ProbeResult::Refused,
        "tcp to a udp forward",
    );
    let moved = std::fs::read_to_string(&file)
        .unwrap()
        .replace("10.77.0.11:8080", "10.77.0.12:8080");
    lab.apply_text("udp-be2.yaml", &moved);
    let r = probe_udp(lab.client(), public, Some(40000), T);
    assert_reached(
        &lab,
        &r,
        "be2",
        GW_LAN.into(),
        "existing udp flow moved to be2",
    );
    lab.done();
});

// Port ranges: a range to one port (tcp and udp), a range to the same ports, a shifted range.
root_test!(port_ranges, || {
    let lab = Lab::switch(false);
    lab.be(2).serve("be2-8081", Proto::Tcp, 8081).unwrap();
    lab.be(3).serve("be3-8081", Proto::Tcp, 8081).unwrap();
    lab.be(3).serve("be3-8082", Proto::Tcp, 8082).unwrap();
    lab.apply(&example("seed-port-range.yaml"));
    let gw: IpAddr = GW_LAN.into();
    for port in [8000, 8005, 8010] {
        let r = probe_tcp(lab.client(), sa(PUBLIC, port), T);
        assert_reached(&lab, &r, "be1", gw, &format!("tcp :{port}"));
        let r = probe_udp(lab.client(), sa(PUBLIC, port), None, T);
        assert_reached(&lab, &r, "be1", gw, &format!("udp :{port}"));
    }
    for (port, name) in [(8080, "be2"), (8081, "be2-8081")] {
        let r = probe_tcp(lab.client(), sa(PUBLIC, port), T);
        assert_reached(&lab, &r, name, gw, &format!("same-port range :{port}"));
    }
    // 8075 maps to be2:8075 where nothing listens: be2 resets it.
    assert_blocked(
        &probe_tcp(lab.client(), sa(PUBLIC, 8075), T),
        &ProbeResult::Refused,
        "be2:8075 closed",
    );
    for (port, name) in [(8100, "be3"), (8101, "be3-8081"), (8102, "be3-8082")] {
        let r = probe_tcp(lab.client(), sa(PUBLIC, port), T);
        assert_reached(&lab, &r, name, gw, &format!("shifted range :{port}"));
    }
    lab.assert_in_sync(&example("seed-port-range.yaml"));
    // Just outside the ranges: the gateway itself refuses.
    for port in [7999, 8011, 8103] {
        assert_blocked(
            &probe_tcp(lab.client(), sa(PUBLIC, port), T),
            &ProbeResult::Refused,
            &format!(":{port} outside"),
        );
    }
    lab.done();
});

// The seeds' port forward over IPv6 (ip6tables nat); implies IPv6 forwarding.
root_test!(ipv6_forward, || {
    let lab = Lab::new(GatewayOptions {
        ipv6: true,
        backend_default_route: false,
        ..Default::default()
    });
    let public = sa(Topology::GW_WAN6, 80);
    assert_eq!(probe_tcp(lab.client(), public, T), ProbeResult::Refused);
    assert_eq!(lab.sysctl("net.ipv6.conf.all.forwarding"), "0");
    lab.apply(&example("seed-ipv6.yaml"));
    assert_eq!(lab.sysctl("net.ipv6.conf.all.forwarding"), "1");
    // Right after IPv6 forwarding goes 0 -> 1 the first forwarded connection was measured to
    // need a SYN retransmission (~2 s) on this kernel: give it time.
    let r = probe_tcp(lab.client(), public, Duration::from_secs(5));
    assert_reached(
        &lab,
        &r,
        "be1",
        Topology::GW_LAN6.into(),
        "first ipv6 forward",
    );
    let r = probe_tcp(lab.client(), public, T);
    assert_reached(&lab, &r, "be1", Topology::GW_LAN6.into(), "ipv6 forward");
    lab.assert_in_sync(&example("seed-ipv6.yaml"));
    lab.done();
});

// `listen.from`: only the listed sources are forwarded; another source gets the gateway's
// own answer (refused).
root_test!(listen_from_refuses_other_sources, || {
    let lab = Lab::switch(false);
    lab.apply(&example("seed-listen-from.yaml"));
    let public = sa(PUBLIC, 80);
    let r = probe_tcp(lab.client(), public, T);
    assert_reached(&lab, &r, "be1", GW_LAN.into(), "listed source");
    // Give the client a second address and make it the preferred source.
    let c = lab.client();
    c.addr_add("eth0", "192.0.2.200/24").unwrap();
    c.ip(&[
        "route",
        "change",
        "192.0.2.0/24",
        "dev",
        "eth0",
        "src",
        "192.0.2.200",
    ])
    .unwrap();
    let r = probe_tcp(c, public, T);
    assert_blocked(&r, &ProbeResult::Refused, "unlisted source 192.0.2.200");
    lab.done();
});

// S8 (seed 004): a held connection's conntrack entry shows the original and reply tuples,
// and `pfstate status` counts it for its forward.
root_test!(conntrack_entry_and_status, || {
    let lab = Lab::switch(true);
    lab.apply(&example("seed-conntrack.yaml"));
    let held = hold_tcp(lab.client(), sa(PUBLIC, 80), T).expect("connection");
    assert_eq!(held.reply.name, "be1");
    assert_eq!(held.reply.peer.ip(), IpAddr::from(CLIENT));
    let sport = held.local.port();
    let list = lab
        .gw()
        .exec(
            "conntrack",
            &["-L", "-p", "tcp", "--orig-port-dst", "80", "--dst-nat"],
        )
        .unwrap();
    let line = list
        .lines()
        .find(|l| l.contains(&format!("sport={sport} ")))
        .unwrap_or_else(|| panic!("no entry for sport {sport}: {list}"));
    eprintln!("conntrack: {line}");
    assert!(line.contains("ESTABLISHED"), "{line}");
    let orig = format!("src={CLIENT} dst={PUBLIC} sport={sport} dport=80 ");
    let reply = format!("src=10.77.0.11 dst={CLIENT} sport=8080 dport={sport} ");
    let (o, r) = (line.find(&orig), line.find(&reply));
    assert!(
        o.is_some() && r.is_some() && o < r,
        "want {orig:?} then {reply:?}: {line}"
    );
    let out = lab.pfstate(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("web"))
        .unwrap_or_else(|| panic!("no row for web: {text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row.last(), Some(&"1"), "one active connection: {text}");
    assert!(
        row[1].parse::<u64>().unwrap() >= 1,
        "packets counted: {text}"
    );
    drop(held);
    lab.done();
});

/// Every example validates (the `pfstate validate examples/*.yaml` of the docs).
#[test]
pub(super) fn examples_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    let out = std::process::Command::new(BIN)
        .arg("validate")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
