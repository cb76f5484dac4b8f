//! Tests of the lab itself. Root-only tests return early (saying so on stderr) without root.
//! Each test builds its own uniquely named namespaces, so they run in parallel.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::testing::root_state;
use super::*;

/// A test that needs root: without it, it says so and passes.
macro_rules! root_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            if skip_unless_root(stringify!($name)) {
                return;
            }
            let body: fn() = $body;
            body();
        }
    };
}

const T: Duration = Duration::from_millis(1500);
/// Short timeout for probes that are expected to time out.
const SHORT: Duration = Duration::from_millis(400);

fn listed() -> String {
    netns::run("ip", &["netns", "list"]).expect("ip netns list")
}

fn assert_gone(names: &[String]) {
    let list = listed();
    for n in names {
        assert!(
            !list.lines().any(|l| l.split_whitespace().next() == Some(n)),
            "{n} left behind"
        );
    }
}

fn sa(ip: impl Into<std::net::IpAddr>, port: u16) -> SocketAddr {
    Topology::addr(ip, port)
}

#[test]
fn handles_are_shareable_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Netns>();
    send_sync::<Topology>();
}

#[test]
fn parse_reply() {
    let r: Reply = "be1 tcp peer=10.77.0.1:4242".parse().unwrap();
    assert_eq!(r.name, "be1");
    assert_eq!(r.proto, Proto::Tcp);
    assert_eq!(r.peer, "10.77.0.1:4242".parse().unwrap());
    let r: Reply = "lan udp peer=[fd00:77::50]:5".parse().unwrap();
    assert_eq!(r.proto, Proto::Udp);
    assert!(r.peer.is_ipv6());
    assert!("be1 sctp peer=1.2.3.4:5".parse::<Reply>().is_err());
    assert!("be1 tcp 1.2.3.4:5".parse::<Reply>().is_err());
    assert!("".parse::<Reply>().is_err());
    let mapped: SocketAddr = "[::ffff:10.0.0.1]:7".parse().unwrap();
    assert_eq!(
        server::reply_line("x", Proto::Tcp, mapped),
        "x tcp peer=10.0.0.1:7\n"
    );
}

#[test]
fn bad_role_is_refused_without_creating_anything() {
    assert!(Netns::create("Bad/Role", NetnsOptions::default()).is_err());
}

root_test!(netns_pins_sysctls_and_is_deleted_on_drop, || {
    let root_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let ns = Netns::create(
        "pin",
        NetnsOptions {
            rp_filter: 0,
            ipv6: false,
            conntrack_acct: true,
        },
    )
    .unwrap();
    let name = ns.name().to_string();
    assert!(name.starts_with(&format!("{PREFIX}{}-", std::process::id())));
    assert!(listed().contains(&name));
    assert_eq!(
        ns.sysctl("net.ipv4.ip_forward").unwrap().as_deref(),
        Some("0")
    );
    assert_eq!(
        ns.sysctl("net.ipv4.conf.all.rp_filter").unwrap().as_deref(),
        Some("0")
    );
    assert_eq!(
        ns.sysctl("net.ipv6.conf.all.disable_ipv6")
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(ns.sysctl("net.ipv4.no.such.key").unwrap(), None);
    // Writing inside must not change the root namespace.
    ns.set_sysctls(&[("net.ipv4.ip_forward", "1")]).unwrap();
    assert_eq!(
        ns.sysctl("net.ipv4.ip_forward").unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        root_fwd
    );
    // run_in really is elsewhere; exec too.
    let inside = ns
        .run_in(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
        .unwrap();
    let outside = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    assert_ne!(inside, outside);
    let links = ns.exec("ip", &["-o", "link"]).unwrap();
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
    assert!(ns.exec("false", &[]).is_err());
    // A server in it is stopped by drop.
    ns.serve("x", Proto::Tcp, 7).unwrap();
    ns.serve("x", Proto::Udp, 7).unwrap();
    let t = Instant::now();
    drop(ns);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_gone(&[name]);
});

root_test!(netns_is_deleted_when_a_test_panics, || {
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::thread::spawn(move || {
        let ns = Netns::create("panic", NetnsOptions::default()).unwrap();
        ns.serve("p", Proto::Tcp, 8080).unwrap();
        tx.send(ns.name().to_string()).unwrap();
        panic!("deliberate panic to test cleanup");
    })
    .join();
    assert!(r.is_err());
    assert_gone(&[rx.recv().unwrap()]);
});

/// The checks every LAN mode must pass; `names` of the lab are returned for the drop check.
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

    // Closed ports: TCP RST and ICMP port unreachable.
    assert_eq!(
        probe_tcp(lan, sa(Topology::BE1, 81), T),
        ProbeResult::Refused
    );
    assert_eq!(
        probe_udp(lan, sa(Topology::BE1, 81), None, T),
        ProbeResult::Refused
    );
    // Routed to the gateway, which does not forward (ip_forward=0): silently dropped.
    assert_eq!(
        probe_tcp(lan, sa(Topology::CLIENT, 9000), SHORT),
        ProbeResult::Timeout
    );
    assert_eq!(
        probe_udp(lan, sa(Topology::CLIENT, 9000), None, SHORT),
        ProbeResult::Timeout
    );
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
    gw.exec(
        "iptables",
        &[
            "-w",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-d",
            "192.0.2.1",
            "-p",
            "tcp",
            "--dport",
            "80",
            "-j",
            "DNAT",
            "--to-destination",
            "10.77.0.11:8080",
        ],
    )
    .unwrap();
    // DNAT alone: be1 cannot route its reply.
    assert_eq!(probe_tcp(client, public, SHORT), ProbeResult::Timeout);
    gw.exec(
        "iptables",
        &[
            "-w",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-d",
            "10.77.0.11",
            "-p",
            "tcp",
            "--dport",
            "8080",
            "-j",
            "SNAT",
            "--to-source",
            "10.77.0.1",
        ],
    )
    .unwrap();
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
