//! Coexistence with Docker, libvirt, MicroK8s (kube-proxy + Calico), ufw and all of them at once.
//!
//! Each test loads a realistic `iptables-save` dump (tests/fixtures, see its README) into a
//! throwaway network namespace, runs the real binary there with `--root` on a temp dir, and
//! asserts after every step that every rule, chain and policy not owned by pfstate is exactly
//! where it was (order included, every table, both families). Foreign managers' reactions to
//! events are replayed with tests/fixtures/simulate-event.sh; plan must report drift exactly
//! when pfstate's own state was disturbed, apply must repair it without touching anything
//! foreign, and the foreign manager must have nothing to fight back about afterwards.
//!
//! Needs root and the Debian packages iptables, iproute2, ipset, nfacct (and nftables for the
//! blind-spot test). Without root every test prints why and passes without running.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

mod compare;
mod drift;
mod ns;
mod pf;
mod placement;
mod scenario;
mod units;
use compare::*;
use ns::*;
use pf::*;
use placement::*;
use scenario::*;

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

// ---------------------------------------------------------------------------------------------
// Namespaces

static SEQ: AtomicUsize = AtomicUsize::new(0);

const STATE: &str = "version: 1
prefix: PREFIX
interfaces: {lan: lan0}
forwards:
  - {name: web, listen: {port: 8080}, to: 10.99.0.2:80, via: lan, local: true}
  - {name: game, proto: udp, listen: {port: 27015}, to: 10.99.0.3, via: lan}
  - {name: np, listen: {port: 31080}, to: 10.99.0.4:80, via: lan}
  - {name: v6, listen: {port: 8443}, to: \"[fd00:99::2]:443\", via: lan}
snat:
  - {name: lan-out, source: 10.99.0.0/24, out_interface: eth9}
filter:
  - {name: ssh, chain: input, proto: tcp, dport: 22, source: 10.0.0.0/8, action: accept}
";

fn state(prefix: &str) -> String {
    STATE.replace("PREFIX", prefix)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

// ---------------------------------------------------------------------------------------------
// Structure of the placement

root_test!(docker, || scenario("docker.rules"));

root_test!(libvirt, || scenario("libvirt.rules"));

root_test!(microk8s, || scenario("microk8s.rules"));

root_test!(ufw, || scenario("ufw.rules"));

root_test!(all_in_one, || scenario("all-in-one.rules"));

// ---------------------------------------------------------------------------------------------
// Drift of pfstate's own state, repaired exactly

// A state with nothing in the filter table still keeps a filter canary, so a flush of the
// filter table alone is seen; a flush of its nat rules is seen as well.
root_test!(canary_reveals_a_flushed_table, || {
    let ns = Ns::new();
    ns.load("ufw.rules");
    let dir = tempfile::tempdir().unwrap();
    let pf = Pf {
        ns: &ns,
        root: dir.path().join("root"),
    };
    let a = write(
        dir.path(),
        "a.yaml",
        "version: 1\nforwards:\n  - {name: web, listen: {port: 8080}, to: 10.99.0.2:80, via: lan0, accept: false}\n",
    );
    pf.apply(&a);
    let s = ns.save(false);
    assert!(!s.contains("PFSTATE-FORWARD"), "{s}");
    assert!(chain_rules(&s, "filter", "PFSTATE-CANARY").is_empty());
    assert!(s.contains(":PFSTATE-CANARY"));
    let before = ns.saves();
    // ufw with MANAGE_BUILTINS=yes: `iptables -F; iptables -X` of the filter table.
    ns.ipt(&["-F"]);
    ns.ipt(&["-X"]);
    let flushed = ns.saves();
    let p = pf.assert_drift(&a, "filter table flushed");
    assert!(p.stdout.contains("+:PFSTATE-CANARY"), "{}", p.show());
    pf.apply(&a);
    assert_untouched(&ns, &flushed, &["PFSTATE"], "canary repair");
    let now = ns.saves();
    assert!(now[0].contains(":PFSTATE-CANARY"));
    assert_eq!(
        chain_rules(&now[0], "nat", "PFSTATE-PREROUTING"),
        chain_rules(&before[0], "nat", "PFSTATE-PREROUTING")
    );
});

// ---------------------------------------------------------------------------------------------
// Two states, two prefixes

root_test!(two_prefixes_manage_only_their_own_chains, || {
    let ns = Ns::new();
    ns.load("docker.rules");
    let base = ns.saves();
    let dir = tempfile::tempdir().unwrap();
    let edge = Pf {
        ns: &ns,
        root: dir.path().join("edge"),
    };
    let main = Pf {
        ns: &ns,
        root: dir.path().join("main"),
    };
    let a = write(
        dir.path(),
        "edge.yaml",
        &state("EDGE")
            .replace("8080", "8081")
            .replace("27015", "27016"),
    );
    let b = write(dir.path(), "main.yaml", &state("PFSTATE"));
    edge.apply(&a);
    main.apply(&b);
    assert_untouched(&ns, &base, &["EDGE", "PFSTATE"], "two applies");
    edge.assert_in_sync(&a, "EDGE after PFSTATE applied");
    main.assert_in_sync(&b, "PFSTATE after both");
    let s = ns.save(false);
    for p in ["EDGE", "PFSTATE"] {
        assert!(s.contains(&format!("-j {p}-PREROUTING")), "{s}");
        assert!(s.contains(&format!(":{p}-CANARY")), "{s}");
    }
    // Re-applying either changes nothing, and each one's view of the other's rules is foreign.
    let both = ns.saves();
    edge.apply(&a);
    main.apply(&b);
    assert_same(&both, &ns.saves(), "re-apply of both");
    assert_untouched(&ns, &both, &["EDGE"], "PFSTATE re-apply leaves EDGE alone");

    edge.ok(&["remove"]);
    let s = ns.save(false);
    assert!(!s.contains("EDGE-"), "{s}");
    main.assert_in_sync(&b, "PFSTATE after EDGE removed");
    assert_untouched(
        &ns,
        &both,
        &["EDGE"],
        "EDGE remove leaves PFSTATE and foreign alone",
    );
    // Both states set route_localnet on lan0 (with a guard each); the one removed first left
    // it for the other, whose remove turns it off with the last guard.
    let rl = || ns.sysctl("net.ipv4.conf.lan0.route_localnet");
    assert_eq!(rl(), "1");
    main.ok(&["remove"]);
    assert_eq!(foreign(&ns.save(false), &[]), foreign(&base[0], &[]));
    assert_eq!(rl(), "0");
});

// ---------------------------------------------------------------------------------------------
// nftables blind spots

root_test!(native_nftables_tables_are_reported, || {
    let have_nft = Command::new("nft").arg("--version").output().is_ok();
    if !have_nft {
        eprintln!("SKIPPED native_nftables_tables_are_reported: nft not installed");
        return;
    }
    let ns = Ns::new();
    ns.load("libvirt.rules");
    ns.sh(&["nft", "add", "table", "inet", "firewalld"]);
    ns.sh(&["nft", "add", "table", "ip", "docker-bridges"]);
    let dir = tempfile::tempdir().unwrap();
    let pf = Pf {
        ns: &ns,
        root: dir.path().join("root"),
    };
    let a = write(dir.path(), "a.yaml", &state("PFSTATE"));
    let p = pf.plan(&a);
    assert!(
        p.stderr
            .contains("nftables table `inet firewalld` (firewalld)"),
        "{}",
        p.show()
    );
    assert!(
        p.stderr
            .contains("nftables table `ip docker-bridges` (Docker"),
        "{}",
        p.show()
    );
    assert!(!p.stderr.contains("table `ip filter`"), "{}", p.show());
    let r = pf.apply(&a);
    assert!(r.stderr.contains("inet firewalld"), "{}", r.show());
});

// ---------------------------------------------------------------------------------------------
// Shipped units that re-check periodically and after the other managers' (re)starts
