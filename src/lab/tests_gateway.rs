//! Tests of the ready-made gateway labs: switch and bridge modes, IPv6, probes through them.

use std::time::Instant;

use super::super::testing::root_state;
use super::super::*;
use super::{SHORT, T, assert_gone, listed, sa};

/// The checks every LAN mode must pass; `names` of the lab are returned for the drop check.
// Over 60 lines on purpose: the list of facts every gateway lab must show, one assertion each.
fn check_basics(topo: &Topology) {
    let (client, gw, lan) = (topo.client(), topo.gw(), topo.lan());
    let be1 = &topo.backends()[0];

    // L3 neighbours on the WAN: the gateway has no server, so a RST proves the path.
    assert_eq!(
        probe_tcp(client, sa(Topology::GW_WAN, 80), T),
        ProbeResult::Refused
    );
    let r = probe_tcp(gw, sa(Topology::CLIENT, Topology::CLIENT_PORT), T);
    assert_eq!(r.reply().unwrap().name, "client", "{r:?}");
    assert_eq!(
        r.reply().unwrap().peer.ip(),
        std::net::IpAddr::from(Topology::GW_WAN)
    );

    // Directly on the LAN (L2), TCP and UDP, each backend says who it is.
    for (i, ip) in [Topology::BE1, Topology::BE2, Topology::BE3]
        .into_iter()
        .enumerate()
    {
        let r = probe_tcp(lan, sa(ip, Topology::BACKEND_PORT), T);
        let reply = r.reply().unwrap_or_else(|| panic!("lan->{ip}: {r:?}"));
        assert_eq!(reply.name, format!("be{}", i + 1));
        assert_eq!(reply.peer.ip(), std::net::IpAddr::from(Topology::LAN));
    }
    let r = probe_udp(lan, sa(Topology::BE1, 8080), None, T);
    assert_eq!(
        r.reply().map(|r| (r.name, r.proto)),
        Some(("be1".into(), Proto::Udp))
    );
    let r = probe_udp(lan, sa(Topology::BE1, 8080), Some(40000), T);
    assert_eq!(r.reply().unwrap().peer.port(), 40000);
    // The gateway reaches its LAN.
    assert_eq!(
        probe_tcp(gw, sa(Topology::BE2, 8080), T).name().as_deref(),
        Some("be2")
    );
    // be1 reaches lan.
    assert_eq!(
        probe_tcp(be1, sa(Topology::LAN, 8080), T).name().as_deref(),
        Some("lan")
    );

    // Closed ports: TCP RST and ICMP port unreachable. Routed to the gateway, which does not
    // forward (ip_forward=0): silently dropped.
    for (dst, timeout, want) in [
        (sa(Topology::BE1, 81), T, ProbeResult::Refused),
        (sa(Topology::CLIENT, 9000), SHORT, ProbeResult::Timeout),
    ] {
        assert_eq!(probe_tcp(lan, dst, timeout), want, "tcp {dst}");
        assert_eq!(probe_udp(lan, dst, None, timeout), want, "udp {dst}");
    }
    // No route at all at the sender (the client has no default route).
    assert!(matches!(
        probe_tcp(client, sa(Topology::BE1, 8080), T),
        ProbeResult::Unreachable(_)
    ));
}

root_test!(switch_mode_gateway, || {
    let topo = Topology::gateway(GatewayOptions::default()).unwrap();
    eprintln!("switch mode built in {:?}", topo.build_time());
    assert!(topo.switch().is_some());
    assert_eq!(topo.lan_if(), "lan0");
    let names: Vec<String> = topo.names().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names.len(), 7);
    check_basics(&topo);
    // The switch is pure L2: it has no address on the LAN.
    let sw = topo.switch().unwrap();
    let addrs = sw.ip(&["-4", "-o", "addr"]).unwrap();
    assert!(!addrs.contains("10.77."), "{addrs}");
    drop(topo);
    assert_gone(&names);
});

root_test!(bridge_mode_gateway, || {
    let topo = Topology::gateway(GatewayOptions {
        lan_mode: LanMode::Bridge,
        ..Default::default()
    })
    .unwrap();
    eprintln!("bridge mode built in {:?}", topo.build_time());
    assert!(topo.switch().is_none());
    assert_eq!(topo.lan_if(), "br0");
    let names: Vec<String> = topo.names().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names.len(), 6);
    check_basics(&topo);
    let (br, ns) = topo.lan_bridge();
    br.set_hairpin(ns, "p-be1", true).unwrap();
    let detail = topo
        .gw()
        .exec("bridge", &["-d", "link", "show", "dev", "p-be1"])
        .unwrap();
    assert!(detail.contains("hairpin on"), "{detail}");
    drop(topo);
    assert_gone(&names);
});

root_test!(bridge_nf_call_is_per_gateway, || {
    let topo = match Topology::gateway(GatewayOptions {
        lan_mode: LanMode::Bridge,
        bridge_nf_call: Some(false),
        servers: false,
        ..Default::default()
    }) {
        Ok(t) => t,
        Err(e) if e.to_string().contains("br_netfilter") => {
            eprintln!("SKIPPED bridge_nf_call_is_per_gateway: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        topo.gw()
            .sysctl("net.bridge.bridge-nf-call-iptables")
            .unwrap()
            .as_deref(),
        Some("0")
    );
});

root_test!(ipv6_gateway, || {
    let topo = Topology::gateway(GatewayOptions {
        ipv6: true,
        ..Default::default()
    })
    .unwrap();
    let r = probe_tcp(topo.lan(), sa(Topology::BE1_6, 8080), T);
    let reply = r.reply().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(reply.name, "be1");
    assert_eq!(reply.peer.ip(), std::net::IpAddr::from(Topology::LAN6));
    let r = probe_udp(topo.lan(), sa(Topology::BE3_6, 8080), None, T);
    assert_eq!(r.name().as_deref(), Some("be3"));
    let r = probe_tcp(topo.gw(), sa(Topology::CLIENT6, 9000), T);
    assert_eq!(
        r.reply().map(|r| r.peer.ip()),
        Some(Topology::GW_WAN6.into())
    );
    // IPv4 still works on the same dual-stack servers, and reads as IPv4.
    let r = probe_tcp(topo.lan(), sa(Topology::BE1, 8080), T);
    assert_eq!(
        r.reply().unwrap().peer.ip(),
        std::net::IpAddr::from(Topology::LAN)
    );
    // Forwarding is off for IPv6 too.
    assert_eq!(
        probe_tcp(topo.lan(), sa(Topology::CLIENT6, 9000), SHORT),
        ProbeResult::Timeout
    );
});

root_test!(sample_and_hold, || {
    let topo = Topology::gateway(GatewayOptions::default()).unwrap();
    let s = sample_tcp(topo.lan(), sa(Topology::BE2, 8080), 100, T);
    assert_eq!(s.count("be2"), 100, "{s:?}");
    assert_eq!(s.failed(), 0);
    eprintln!("100 sequential connections in {:?}", s.elapsed);
    let s = sample_tcp(topo.lan(), sa(Topology::BE2, 81), 3, T);
    assert_eq!(s.failures.get("refused"), Some(&3));

    let held = hold_tcp(topo.lan(), sa(Topology::BE1, 8080), T).unwrap();
    assert_eq!(held.reply.name, "be1");
    assert_eq!(held.reply.peer, held.local);
    // The connection stays established on be1's side while we hold it.
    let ss = topo.backends()[0]
        .exec("ss", &["-Htn", "state", "established", "sport", "= :8080"])
        .unwrap();
    // (ss prints the dual-stack socket's peer v4-mapped: [::ffff:10.77.0.50]:PORT)
    let peer = format!("{}]:{}", held.local.ip(), held.local.port());
    assert!(ss.contains(&peer), "{peer} not in {ss}");
    drop(held);
});

// The lab carries a real port forward (traffic-tests.md S1): DNAT + SNAT to the LAN address
// in the gateway, with backends that have no default route.
root_test!(port_forward_through_gateway, || {
    let root_before = root_state();
    let topo = Topology::gateway(GatewayOptions {
        backend_default_route: false,
        ..Default::default()
    })
    .unwrap();
    let (client, gw) = (topo.client(), topo.gw());
    let public = sa(Topology::GW_WAN, 80);
    assert_eq!(probe_tcp(client, public, T), ProbeResult::Refused);
    gw.set_sysctls(&[("net.ipv4.ip_forward", "1")]).unwrap();
    let iptables = |rule: &str| {
        let args: Vec<&str> = rule.split(' ').collect();
        gw.exec("iptables", &args).unwrap();
    };
    iptables(
        "-w -t nat -A PREROUTING -d 192.0.2.1 -p tcp --dport 80 -j DNAT --to-destination 10.77.0.11:8080",
    );
    // DNAT alone: be1 cannot route its reply.
    assert_eq!(probe_tcp(client, public, SHORT), ProbeResult::Timeout);
    iptables(
        "-w -t nat -A POSTROUTING -d 10.77.0.11 -p tcp --dport 8080 -j SNAT --to-source 10.77.0.1",
    );
    let r = probe_tcp(client, public, T);
    let reply = r.reply().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(reply.name, "be1");
    assert_eq!(reply.peer.ip(), std::net::IpAddr::from(Topology::GW_LAN));
    assert!(topo.dump().contains("DNAT"));
    drop(topo);
    assert_eq!(root_state(), root_before, "the root namespace changed");
});

root_test!(sweep_leaves_live_namespaces_alone, || {
    let ns = Netns::create("sweep", NetnsOptions::default()).unwrap();
    let removed = Netns::sweep_stale().unwrap();
    assert!(!removed.contains(&ns.name().to_string()));
    assert!(listed().contains(ns.name()));
});

// Timings for the report: build times and per-probe costs.
root_test!(timings, || {
    for mode in [LanMode::Switch, LanMode::Bridge] {
        let t = Instant::now();
        let topo = Topology::gateway(GatewayOptions {
            lan_mode: mode,
            ..Default::default()
        })
        .unwrap();
        let built = t.elapsed();
        let time = |f: &dyn Fn() -> ProbeResult| {
            let t = Instant::now();
            let r = f();
            (r.label(), t.elapsed())
        };
        let ok = time(&|| probe_tcp(topo.lan(), sa(Topology::BE1, 8080), T));
        let udp = time(&|| probe_udp(topo.lan(), sa(Topology::BE1, 8080), None, T));
        let refused = time(&|| probe_tcp(topo.lan(), sa(Topology::BE1, 81), T));
        let s = sample_tcp(topo.lan(), sa(Topology::BE1, 8080), 300, T);
        let t = Instant::now();
        drop(topo);
        eprintln!(
            "{mode:?}: build {built:?}, tcp {ok:?}, udp {udp:?}, refused {refused:?}, \
             300 conns {:?}, drop {:?}",
            s.elapsed,
            t.elapsed()
        );
        assert_eq!(s.count("be1"), 300);
    }
});

root_test!(custom_interface_names, || {
    let topo = Topology::gateway(GatewayOptions {
        wan_if: Some("eth0".into()),
        lan_if: Some("eth1".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((topo.wan_if(), topo.lan_if()), ("eth0", "eth1"));
    let addrs = topo.gw().ip(&["-4", "-br", "addr"]).unwrap();
    assert!(
        addrs.contains("eth1") && addrs.contains("10.77.0.1/24"),
        "{addrs}"
    );
    assert_eq!(
        probe_tcp(topo.gw(), sa(Topology::BE1, 8080), T)
            .name()
            .as_deref(),
        Some("be1")
    );
});
