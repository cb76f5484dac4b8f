//! Foreign rules of every shape survive pfstate: rules of every match and target family that
//! iptables' own test tables exercise (tests/fixtures/foreign-shapes-v{4,6}.rules), and rules
//! whose saved text can be mistaken for pfstate's own (tests/fixtures/foreign-hostile.sh:
//! newlines in comments, non-UTF-8 bytes, `--name` values that iptables-save prints unquoted).
//!
//! In a throwaway namespace each test loads its foreign rules, then applies a state, applies it
//! again, changes it and removes it. After every step every foreign line of both saves is
//! byte-identical to what it was, pfstate's jump is there exactly once per hook, `plan` is
//! clean, a re-apply writes nothing, and after `remove` both saves are exactly as before.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{Host, write_yaml};
use pfstate::lab;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

const STATE_A: &str = "version: 1
interfaces: {wan: wan0, lan: lan0}
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, snat: masquerade}
  - {name: lb, proto: both, listen: {port: 81, address: 192.0.2.1}, to: [10.77.0.11, 10.77.0.12]}
  - {name: web6, listen: {port: 80}, to: \"[fd00:77::11]:8080\", snat: masquerade}
snat:
  - {name: lan-out, source: 10.77.0.0/24, out_interface: wan}
filter:
  - {name: ssh, chain: input, proto: tcp, dport: 22, source: 10.0.0.0/8, action: accept}
  - {name: ssh6, chain: input, proto: tcp, dport: 22, source: \"2001:db8::/32\", action: accept}
";

/// The hooks both states jump from, per family: (table, built-in chain).
const HOOKS: [(&str, &str); 4] = [
    ("nat", "PREROUTING"),
    ("nat", "POSTROUTING"),
    ("filter", "INPUT"),
    ("filter", "FORWARD"),
];

fn state_b() -> String {
    STATE_A
        .replace(
            "port: 81, address: 192.0.2.1",
            "port: 82, address: 192.0.2.1",
        )
        .replace(
            "dport: 22, source: 10.0.0.0/8",
            "dport: 2222, source: 10.0.0.0/8",
        )
}

/// Run a restore tool in the namespace with `payload` on standard input.
fn restore(h: &Host, tool: &str, payload: &[u8]) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", h.ns.name(), tool, "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn restore");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(payload)
        .expect("write payload");
    let out = child.wait_with_output().expect("restore");
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

/// Load a corpus file rule by rule: chains first, then each `-A` line as its own restore, so a
/// rule this kernel refuses (a missing module) is left out and reported, not fatal.
fn load_corpus(h: &Host, tool: &str, file: &str) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{file}")).expect("corpus");
    let mut tables: Vec<(String, Vec<&str>, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            tables.push((t.to_string(), Vec::new(), Vec::new()));
        } else if let Some((_, decls, rules)) = tables.last_mut() {
            match line.as_bytes().first() {
                Some(b':') => decls.push(line),
                Some(b'-') => rules.push(line),
                _ => {}
            }
        }
    }
    let (mut loaded, mut refused) = (0, Vec::new());
    for (table, decls, rules) in &tables {
        let chains = format!("*{table}\n{}\nCOMMIT\n", decls.join("\n"));
        restore(h, tool, chains.as_bytes()).unwrap_or_else(|e| panic!("{file} {table}: {e}"));
        for rule in rules {
            match restore(h, tool, format!("*{table}\n{rule}\nCOMMIT\n").as_bytes()) {
                Ok(()) => loaded += 1,
                Err(e) => refused.push(format!("{file} *{table}: {rule}\n    {e}")),
            }
        }
    }
    (loaded, refused)
}

/// Both saves as bytes, without the `#` lines (they hold the time).
fn saves(h: &Host) -> [Vec<Vec<u8>>; 2] {
    ["iptables-save", "ip6tables-save"].map(|tool| {
        let out = Command::new("ip")
            .args(["netns", "exec", h.ns.name(), tool])
            .output()
            .expect("save");
        assert!(out.status.success(), "{tool} failed");
        out.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.starts_with(b"#"))
            .map(<[u8]>::to_vec)
            .collect()
    })
}

/// A table that holds nothing but its built-in chains with policy ACCEPT is dropped: pfstate's
/// first apply creates the nat table of a host that had none, and the kernel keeps it.
fn without_empty_tables(lines: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut block: Vec<Vec<u8>> = Vec::new();
    for line in lines {
        if line.starts_with(b"*") || !block.is_empty() {
            let end = line == b"COMMIT";
            block.push(line);
            if end {
                let empty = block[1..block.len() - 1]
                    .iter()
                    .all(|l| l.starts_with(b":") && l.windows(8).any(|w| w == b" ACCEPT "));
                if !empty {
                    out.append(&mut block);
                }
                block.clear();
            }
        } else {
            out.push(line);
        }
    }
    out.append(&mut block);
    out
}

fn jump_line(hook: &str) -> Vec<u8> {
    format!("-A {hook} -m comment --comment pfstate -j PFSTATE-{hook}").into_bytes()
}

/// A line pfstate may add: an owned chain's declaration or rule, or one of its jumps. A foreign
/// line of the same text (inside a comment holding a newline) is dropped on both sides alike.
fn is_pfstate_shaped(line: &[u8]) -> bool {
    line.starts_with(b":PFSTATE-")
        || line.starts_with(b"-A PFSTATE-")
        || HOOKS.iter().any(|(_, hook)| line == jump_line(hook))
}

fn show(lines: &[Vec<u8>]) -> String {
    lines
        .iter()
        .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
        .collect()
}

/// Every foreign line unchanged and in order, and each hook's jump added exactly once.
fn check_foreign(before: &[Vec<Vec<u8>>; 2], now: &[Vec<Vec<u8>>; 2], step: &str) {
    for (family, (b, n)) in ["ipv4", "ipv6"].iter().zip(before.iter().zip(now)) {
        let foreign = |s: &[Vec<u8>]| -> Vec<Vec<u8>> {
            let lines = s.iter().filter(|l| !is_pfstate_shaped(l)).cloned();
            without_empty_tables(lines.collect())
        };
        let (fb, fnow) = (foreign(b), foreign(n));
        assert!(
            fb == fnow,
            "{step} ({family}): foreign rules changed\n{}",
            pfstate::plan::view::unified(&show(&fb), &show(&fnow), "before", step)
        );
        for (_, hook) in HOOKS {
            let count = |s: &[Vec<u8>]| s.iter().filter(|l| **l == jump_line(hook)).count();
            assert_eq!(
                count(n),
                count(b) + 1,
                "{step} ({family}): pfstate's {hook} jump is not there exactly once\n{}",
                show(n)
            );
        }
    }
}

fn assert_ok(h: &Host, args: &[&str], step: &str) {
    let r = h.run(args);
    assert_eq!(
        r.code,
        0,
        "{step}: pfstate {}\n{}",
        args.join(" "),
        r.show()
    );
}

/// The whole life of a state next to whatever foreign rules the namespace holds.
fn lifecycle(h: &Host) {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write_yaml(dir.path(), "a.yaml", STATE_A);
    let b = write_yaml(dir.path(), "b.yaml", &state_b());
    let before = saves(h);
    for (file, step) in [(&a, "apply"), (&a, "re-apply"), (&b, "change")] {
        let restores = h.restores();
        assert_ok(h, &["apply", file], step);
        if step == "re-apply" {
            assert_eq!(h.restores(), restores, "the re-apply wrote to the kernel");
        }
        check_foreign(&before, &saves(h), step);
        assert_ok(h, &["plan", file], &format!("plan after {step}"));
    }
    assert_ok(h, &["remove"], "remove");
    let after = saves(h);
    for (family, (b, n)) in ["ipv4", "ipv6"].iter().zip(before.iter().zip(&after)) {
        let (b, n) = (
            &without_empty_tables(b.clone()),
            &without_empty_tables(n.clone()),
        );
        assert!(
            b == n,
            "remove ({family}) left the host other than before\n{}",
            pfstate::plan::view::unified(&show(b), &show(n), "before", "after remove")
        );
    }
}

fn host_with_sets(role: &str) -> Host {
    let h = Host::new(role);
    for args in [
        vec!["ipset", "create", "fxset4", "hash:ip"],
        vec!["ipset", "create", "fxset6", "hash:ip", "family", "inet6"],
        vec!["nfacct", "add", "fxacct"],
    ] {
        h.ns.exec(args[0], &args[1..]).expect("setup");
    }
    h
}

#[test]
fn foreign_rules_of_every_module_family_survive() {
    if lab::skip_unless_root("foreign_rules_of_every_module_family_survive") {
        return;
    }
    let h = host_with_sets("fxshapes");
    let (v4, mut refused) = load_corpus(&h, "iptables-restore", "foreign-shapes-v4.rules");
    let (v6, refused6) = load_corpus(&h, "ip6tables-restore", "foreign-shapes-v6.rules");
    refused.extend(refused6);
    eprintln!(
        "loaded {v4} IPv4 and {v6} IPv6 foreign rules; this kernel refused {}:\n{}",
        refused.len(),
        refused.join("\n")
    );
    // A kernel without most modules would make this test prove little: demand the bulk.
    assert!(
        v4 >= 120 && v6 >= 45,
        "too few foreign rules loaded ({v4} IPv4, {v6} IPv6)"
    );
    lifecycle(&h);
}

fn hostile(case: &str) {
    let h = Host::new("fxhostile");
    let out = Command::new(format!("{FIXTURES}/foreign-hostile.sh"))
        .args([h.ns.name(), case])
        .output()
        .expect("foreign-hostile.sh");
    assert!(
        out.status.success(),
        "{case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lifecycle(&h);
}

macro_rules! hostile_case {
    ($name:ident, $case:expr) => {
        #[test]
        fn $name() {
            if lab::skip_unless_root(stringify!($name)) {
                return;
            }
            hostile($case);
        }
    };
}

hostile_case!(comment_with_a_newline_and_pfstates_jump, "newline-jump");
hostile_case!(comment_with_a_newline_and_an_owned_rule, "newline-rule");
hostile_case!(comment_with_a_newline_and_an_owned_chain, "newline-chain");
hostile_case!(comment_with_a_newline_and_commit, "newline-commit");
hostile_case!(comments_that_are_not_utf8, "non-utf8");
hostile_case!(comments_with_control_characters, "control");
hostile_case!(comments_and_chains_that_look_like_pfstates, "lookalike");
hostile_case!(unquoted_names_holding_a_pfstate_jump, "unquoted-name");
hostile_case!(unquoted_names_in_rules_without_a_target, "unquoted-only");
