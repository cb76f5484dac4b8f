//! A change cuts the active connections of the entries that changed, and only those; `plan`
//! says how many of which entry will be cut, `apply` how many were (issue 11). Real
//! connections held open through a gateway lab.
//!
//! Root only (namespaces); without root the test prints SKIPPED and passes.

use std::net::SocketAddr;
use std::time::Duration;

use pfstate::lab::{GatewayOptions, Topology, hold_tcp, root_state, skip_unless_root};

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const T: Duration = Duration::from_millis(1500);

const BEFORE: &str = "version: 1
interfaces: {wan: wan0, lan: lan0}
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}
  - {name: other, listen: {port: 81}, to: 10.77.0.12:8080}
";

fn pfstate(topo: &Topology, root: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut full = vec!["--root", root.to_str().unwrap()];
    full.extend_from_slice(args);
    let out = topo.gw().exec_output(BIN, &full).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Entries of the gateway's conntrack table whose original destination port is `port`.
fn entries(topo: &Topology, port: u16) -> usize {
    let list = topo
        .gw()
        .exec(
            "conntrack",
            &["-L", "-p", "tcp", "--orig-port-dst", &port.to_string()],
        )
        .unwrap_or_default();
    list.lines().filter(|l| l.starts_with("tcp")).count()
}

#[test]
fn only_the_changed_entrys_connections_are_cut_and_counted() {
    if skip_unless_root("only_the_changed_entrys_connections_are_cut_and_counted") {
        return;
    }
    let before = root_state();
    let topo = Topology::gateway(GatewayOptions {
        backend_default_route: true,
        ..Default::default()
    })
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("state.yaml");
    std::fs::write(&file, BEFORE).unwrap();
    let f = file.to_str().unwrap();
    let (code, out) = pfstate(&topo, root.path(), &["apply", f]);
    assert_eq!(code, Some(0), "{out}");

    let public = |port| SocketAddr::from((Topology::GW_WAN, port));
    let held: Vec<_> = [80, 80, 81]
        .into_iter()
        .map(|p| hold_tcp(topo.client(), public(p), T).expect("connection"))
        .collect();
    assert_eq!((entries(&topo, 80), entries(&topo, 81)), (2, 1));

    // `web` moves to another backend; `other` stays as it is.
    std::fs::write(&file, BEFORE.replace("10.77.0.11:8080", "10.77.0.13:8080")).unwrap();
    let (code, out) = pfstate(&topo, root.path(), &["plan", f]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("`web`: 2 active connections will be cut"),
        "{out}"
    );
    assert!(!out.contains("`other`"), "{out}");
    let (code, out) = pfstate(&topo, root.path(), &["apply", f]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("`web`: 2 active connections were cut"),
        "{out}"
    );
    assert!(!out.contains("`other`"), "{out}");
    assert_eq!((entries(&topo, 80), entries(&topo, 81)), (0, 1));

    // A second apply changes nothing and cuts nothing.
    let (code, out) = pfstate(&topo, root.path(), &["apply", f]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("in sync") && !out.contains("cut"), "{out}");
    assert_eq!(entries(&topo, 81), 1);
    drop(held);
    drop(topo);
    assert_eq!(root_state(), before, "the root namespace changed");
}
