//! Tests of the lab itself. Root-only tests return early (saying so on stderr) without root.
//! Each test builds its own uniquely named namespaces, so they run in parallel.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

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

// The gateway labs of `topology.rs`, in their own file.
#[path = "tests_gateway.rs"]
mod gateway;
