//! Every value pfstate can render, applied to a real kernel in a throwaway namespace and applied
//! again: the second apply must write nothing (no restore) and cut nothing (no `conntrack`
//! call), and `plan` must be clean. A value rendered in another form than `iptables-save`
//! prints (for example `-s 0.0.0.0/0`, which it omits, or `::102:304`, which it prints
//! `::1.2.3.4`) makes every apply rewrite the chains and delete the forward's connections.
//!
//! The forms were read from iptables' own test tables (extensions/*.t) and each case below is
//! judged by the kernel, one at a time (so a failure names the value) and all at once.

use crate::common::{Host, write_yaml};
use pfstate::lab as netlab;

/// (what the case proves, section, entries of that section). Names and ports are unique over
/// all cases, so their union is a valid file too.
const CASES: &[(&str, &str, &str)] = &[
    (
        "0.0.0.0/0 and ::/0 as filter source and destination",
        "filter",
        "  - {name: any4, chain: input, source: 0.0.0.0/0, action: accept}
  - {name: any6, chain: forward, destination: \"::/0\", action: accept}",
    ),
    (
        "outbound snat of 0.0.0.0/0 (the FORWARD accept of replies gets -d 0.0.0.0/0)",
        "snat",
        "  - {name: all-out, source: 0.0.0.0/0, out_interface: wan}
  - {name: all-out6, source: \"::/0\", out_interface: wan, to: \"2001:db8::1\"}",
    ),
    (
        "listen.from and hairpin of every address, v4 and v6",
        "forwards",
        "  - {name: from-any, listen: {port: 1001, from: [0.0.0.0/0, 198.51.100.7]}, to: 10.77.0.11:8080, hairpin: [0.0.0.0/0], via: lan}
  - {name: from-any6, listen: {port: 1002, from: [\"::/0\"]}, to: \"[fd00:77::11]:8080\", hairpin: [\"::/0\"], via: lan}",
    ),
    (
        "host routes /32 and /128 written bare",
        "forwards",
        "  - {name: hosts, listen: {port: 1003, address: 192.0.2.1, from: [198.51.100.8]}, to: 10.77.0.12, hairpin: [10.77.0.5]}
  - {name: hosts6, listen: {port: 1003, address: \"2001:db8::1\", from: [\"2001:db8:1::8\"]}, to: \"fd00:77::12\", hairpin: [\"fd00:77::5\"]}",
    ),
    (
        "IPv6 written long, upper case, with a single zero group and IPv4-compatible/-mapped",
        "forwards",
        "  - {name: v6-long, listen: {port: 1004, address: \"2001:0DB8:0000:0000:0001:0000:0000:0001\"}, to: \"[FD00:77:0:0:0:0:0:13]:8080\", snat: \"2001:db8:0:1:1:1:1:1\"}
  - {name: v6-compat, listen: {port: 1005, address: \"::192.0.2.1\", from: [\"::198.51.100.0/120\"]}, to: \"[::10.77.0.11]:8080\", snat: \"::10.77.0.1\", hairpin: [\"::10.77.0.0/120\"]}
  - {name: v6-mapped, listen: {port: 1006, address: \"::ffff:192.0.2.1\"}, to: \"[::ffff:10.77.0.11]:8080\", hairpin: [\"::ffff:10.77.0.0/120\"]}",
    ),
    (
        "the unspecified address as a listen address",
        "forwards",
        "  - {name: zero, listen: {port: 1007, address: 0.0.0.0}, to: 10.77.0.13:8080}
  - {name: zero6, listen: {port: 1007, address: \"::\"}, to: \"[fd00:77::13]:8080\"}",
    ),
    (
        "ports: ranges written with '-' and ':', a one-port range, shifted",
        "forwards",
        "  - {name: one-port-range, listen: {port: \"1010-1010\"}, to: \"10.77.0.14:2020-2020\"}
  - {name: colon-range, proto: both, listen: {port: \"1011:1020\"}, to: \"10.77.0.14:3011-3020\"}
  - {name: range-to-one, listen: {port: \"1021-1030\"}, to: \"[fd00:77::14]:443\"}
  - {name: range-shift6, listen: {port: \"1031-1040\"}, to: \"[fd00:77::14]:4031-4040\"}",
    ),
    (
        "interfaces with '+', '.', '@', '-' and '_', and 15 characters",
        "filter",
        "  - {name: if-plus, chain: forward, in_interface: lan+, out_interface: eth0.100, action: accept}
  - {name: if-odd, chain: input, in_interface: a@b-c_d, action: drop}
  - {name: if-long, chain: output, out_interface: abcdefghijklmn+, action: return}",
    ),
    (
        "ctstate: every state, out of order and repeated",
        "filter",
        "  - {name: states, chain: forward, state: [dnat, snat, untracked, established, related, new, invalid, new], action: accept}
  - {name: states-two, chain: input, state: [established, related], action: accept}",
    ),
    (
        "log prefixes: bare word, every allowed punctuation, spaces",
        "filter",
        "  - {name: log-bare, chain: input, action: log, log_prefix: ssh}
  - {name: log-punct, chain: input, action: log, log_prefix: \"!#$%&()*+,-./:;<=>?@[]^_`{|}~\"}
  - {name: log-space, chain: output, action: log, log_prefix: \" a b \"}",
    ),
    (
        "protocols, ports and verdicts in both families",
        "filter",
        "  - {name: rej-tcp, chain: input, proto: tcp, sport: \"1024-65535\", dport: 25, action: reject}
  - {name: udp-range, chain: input, proto: udp, dport: \"1:65535\", action: drop}
  - {name: icmp-both, chain: input, proto: icmp, action: reject}
  - {name: all-proto, chain: output, proto: all, destination: 192.0.2.0/24, action: return}
  - {name: any-proto, chain: output, proto: any, destination: \"2001:db8::/32\", action: return}",
    ),
    (
        "balancing: 1/4096 (a rounding tie at 11 decimals), seven equal, weighted round-robin",
        "forwards",
        "  - name: tie
    listen: {port: 1041}
    to: [{address: 10.77.1.1, weight: 1}, {address: 10.77.1.2, weight: 1000}, {address: 10.77.1.3, weight: 1000}, {address: 10.77.1.4, weight: 1000}, {address: 10.77.1.5, weight: 1000}, {address: 10.77.1.6, weight: 95}]
  - name: seven
    proto: udp
    listen: {port: 1042}
    to: [10.77.2.1, 10.77.2.2, 10.77.2.3, 10.77.2.4, 10.77.2.5, 10.77.2.6, 10.77.2.7]
  - name: rr
    balance: round-robin
    listen: {port: 1043}
    to: [{address: \"[fd00:77::21]:80\", weight: 3}, \"[fd00:77::22]:80\"]",
    ),
    (
        "source NAT to an address, local access with and without a listen address",
        "forwards",
        "  - {name: snat-to, listen: {port: 1044, interface: wan}, to: 10.77.0.15:8080, snat: 10.77.0.1, local: true, via: lan}
  - {name: local-addr, listen: {port: 1045, address: 192.0.2.1}, to: 10.77.0.15:8080, snat: masquerade, local: true, via: lan, hairpin: true}
  - {name: a-name_with-every-allowed-character-0123456789-and-it-is-64-ch, listen: {port: 1046}, to: 10.77.0.16:8080, accept: false}",
    ),
];

/// Cases that conflict with the others (a forward of every port), applied on their own only.
const ALONE: &[(&str, &str, &str)] = &[(
    "ports: the full range",
    "forwards",
    "  - {name: full-range, proto: both, listen: {port: \"1-65535\", address: 192.0.2.9}, to: 10.77.0.14}
  - {name: full-range6, listen: {port: \"1:65535\", address: \"2001:db8::9\"}, to: \"[fd00:77::14]:1-65535\"}",
)];

const HEADER: &str = "version: 1
prefix: EDGE_1
interfaces: {wan: wan0, lan: {name: lan0, networks: [10.77.0.0/24]}}
";

fn file_of(cases: &[&(&str, &str, &str)]) -> String {
    let mut out = HEADER.to_string();
    for section in ["forwards", "snat", "filter"] {
        let entries: Vec<&str> = cases
            .iter()
            .filter(|c| c.1 == section)
            .map(|c| c.2)
            .collect();
        if !entries.is_empty() {
            out.push_str(&format!("{section}:\n{}\n", entries.join("\n")));
        }
    }
    out
}

/// A `conntrack` in front of the real one that logs every call, so a test can prove that an
/// apply deleted no connection.
fn shim_conntrack(h: &Host) {
    use std::os::unix::fs::PermissionsExt;
    let path = h.shim.path().join("conntrack");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {log}\nexec {real} \"$@\"\n",
        log = h.shim.path().join("conntrack.log").display(),
        real = crate::common::which("conntrack").display()
    );
    std::fs::write(&path, script).expect("write shim");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn conntrack_calls(h: &Host) -> String {
    std::fs::read_to_string(h.shim.path().join("conntrack.log")).unwrap_or_default()
}

/// Apply `yaml`, then apply it again: the second run must touch nothing.
fn apply_twice(h: &Host, dir: &std::path::Path, label: &str, yaml: &str) {
    let path = write_yaml(dir, "values.yaml", yaml);
    let first = h.run(&["apply", &path]);
    assert_eq!(
        first.code,
        0,
        "{label}: apply failed\n{yaml}\n{}",
        first.show()
    );
    let (restores, calls) = (h.restores(), conntrack_calls(h));
    let again = h.run(&["apply", &path]);
    assert_eq!(again.code, 0, "{label}: second apply\n{}", again.show());
    let plan = h.run(&["plan", &path]);
    assert_eq!(
        (h.restores(), plan.code),
        (restores, 0),
        "{label}: the kernel prints a value differently from the render; the second apply rewrote chains\n{}\n{}",
        again.show(),
        plan.show()
    );
    assert_eq!(
        conntrack_calls(h),
        calls,
        "{label}: the second apply deleted conntrack entries"
    );
}

#[test]
fn second_apply_of_every_value_writes_nothing() {
    if netlab::skip_unless_root("second_apply_of_every_value_writes_nothing") {
        return;
    }
    let h = Host::new("values");
    // `local` sets route_localnet on the `via` interface, which must exist.
    h.ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "wan0",
    ])
    .expect("veth pair");
    shim_conntrack(&h);
    let dir = tempfile::tempdir().unwrap();
    for case in CASES.iter().chain(ALONE) {
        apply_twice(&h, dir.path(), case.0, &file_of(&[case]));
    }
    let all: Vec<&(&str, &str, &str)> = CASES.iter().collect();
    apply_twice(&h, dir.path(), "every case at once", &file_of(&all));
    assert!(
        !conntrack_calls(&h).is_empty(),
        "the shim saw no conntrack call at all: the check above could not fail"
    );
}

#[test]
fn the_union_of_the_cases_is_a_valid_file() {
    let all: Vec<&(&str, &str, &str)> = CASES.iter().collect();
    let yaml = file_of(&all);
    if let Err(e) = pfstate::spec::load_str("values.yaml", &yaml) {
        panic!("{e}\n{yaml}");
    }
}
