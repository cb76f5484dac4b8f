//! Tests of the tree layout: small files unchanged, every forward reachable, stable names.

use std::collections::HashMap;

use super::*;
use crate::names;
use crate::ruleset::table::tree_base_chain as base_chain;

/// A rule's key read back from its printed line: one protocol (`-p tcp`/`-p udp`) and the
/// port range of `option` (not negated). The walker below reads the render's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TextKey {
    proto: &'static str,
    lo: u16,
    hi: u16,
}

fn key_of(line: &str, option: &str) -> Option<TextKey> {
    use std::cell::RefCell;
    thread_local! {
        // The walk reads the same lines for every port: tokenize each once.
        static KEYS: RefCell<HashMap<(String, String), Option<TextKey>>> = RefCell::default();
    }
    let k = (line.to_string(), option.to_string());
    if let Some(hit) = KEYS.with(|c| c.borrow().get(&k).copied()) {
        return hit;
    }
    let key = parse_key(line, option);
    KEYS.with(|c| c.borrow_mut().insert(k, key));
    key
}

fn parse_key(line: &str, option: &str) -> Option<TextKey> {
    use crate::ruleset::words::{option as value, words};
    // Nothing after the comment is a match of interest.
    let w = words(line.split(" -m comment ").next().unwrap_or(line));
    let proto = match value(&w, "-p")? {
        "tcp" => "tcp",
        "udp" => "udp",
        _ => return None,
    };
    let v = value(&w, option)?;
    let (lo, hi) = match v.split_once(':') {
        Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
        None => (v.parse().ok()?, v.parse().ok()?),
    };
    Some(TextKey { proto, lo, hi })
}
use crate::model::Family;
use crate::render::{Desired, render, render_linear};

/// `n` forwards on ports from 10000, every `range_every`-th one a 40-port range (crossing
/// leaf boundaries), every 7th `both` protocols, every 11th with two client sources.
fn yaml(n: usize, changed: Option<usize>) -> String {
    let mut s = String::from(
        "version: 1\nfilter:\n  - name: ssh\n    chain: forward\n    proto: tcp\n    dport: 22\n    action: accept\nsnat:\n  - name: out\n    source: 10.9.0.0/24\nforwards:\n",
    );
    let mut port = 10_000;
    for i in 0..n {
        let listen = if i % 13 == 5 {
            let p = format!("\"{port}-{}\"", port + 39);
            port += 40;
            p
        } else {
            port += 1;
            (port - 1).to_string()
        };
        let proto = if i % 7 == 3 { "    proto: both\n" } else { "" };
        let from = if i % 11 == 2 {
            "      from: [203.0.113.0/24, 198.51.100.0/24]\n"
        } else {
            ""
        };
        let to = if changed == Some(i) {
            "10.99.0.1:81".to_string()
        } else {
            format!("10.1.{}.{}:80", i / 250, i % 250 + 1)
        };
        s.push_str(&format!(
            "  - name: f{i}\n{proto}    listen:\n      port: {listen}\n{from}    to: {to}\n"
        ));
    }
    s
}

fn desired(n: usize, changed: Option<usize>) -> (Desired, Desired) {
    let model = crate::spec::validate::load_str("t.yaml", &yaml(n, changed)).expect("valid");
    (render(&model), render_linear(&model))
}

fn chains(d: &Desired, table: Table) -> HashMap<&str, &Vec<String>> {
    d.ruleset(Family::V4)
        .table(table)
        .expect("table")
        .chains
        .iter()
        .map(|c| (c.name.as_str(), &c.rules))
        .collect()
}

fn body(line: &str) -> &str {
    line.splitn(3, ' ').nth(2).unwrap_or("")
}

/// The rules a packet (proto, port) is matched against, walking jumps and gotos into the
/// tree: every non-dispatch rule whose key admits the packet, in order.
fn walk<'a>(
    chains: &HashMap<&'a str, &'a Vec<String>>,
    chain: &str,
    option: &str,
    proto: &str,
    port: u16,
    out: &mut Vec<&'a str>,
) {
    for line in chains[chain].iter() {
        let key = key_of(line, option);
        let admits = key.is_none_or(|k| k.proto == proto && k.lo <= port && port <= k.hi);
        if !admits {
            continue;
        }
        if line.contains(TREE_COMMENT) {
            let target = crate::ruleset::dump::target(line).expect("target");
            walk(chains, target, option, proto, port, out);
            if line.contains(" -g ") {
                return;
            }
            continue;
        }
        out.push(body(line));
    }
}

#[test]
fn small_files_render_as_before() {
    let (tree, linear) = desired(THRESHOLD / 2, None);
    assert_eq!(tree, linear);
}

#[test]
fn large_files_become_trees_that_reach_every_forward() {
    let (tree, linear) = desired(600, None);
    assert_ne!(tree, linear);
    for (table, base, option) in [
        (Table::Nat, "PFSTATE-PREROUTING", "--dport"),
        (Table::Filter, "PFSTATE-FORWARD", "--ctorigdstport"),
    ] {
        let t = chains(&tree, table);
        let l = chains(&linear, table);
        assert!(t.len() > 10, "{table}: {} chains", t.len());
        // The base chain is short: a few dispatch rules plus the unkeyed rules.
        assert!(t[base].len() < 12, "{table}: {:#?}", t[base]);
        for proto in ["tcp", "udp"] {
            for port in (9990..=10_000 + 600 * 4).chain([1, 65535]) {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                walk(&t, base, option, proto, port, &mut a);
                walk(&l, base, option, proto, port, &mut b);
                assert_eq!(a, b, "{table} {proto} {port}");
            }
        }
        // Every rule of the linear chain is somewhere in the tree.
        let all: std::collections::HashSet<&str> =
            t.values().flat_map(|r| r.iter().map(|l| body(l))).collect();
        for r in l[base].iter() {
            assert!(all.contains(body(r)), "{r}");
        }
    }
}

#[test]
fn tree_names_are_owned_unique_short_and_stable() {
    let (tree, _) = desired(600, None);
    let mut seen = std::collections::HashSet::new();
    for (_, t) in &tree.ruleset(Family::V4).tables {
        for c in &t.chains {
            assert!(c.name.len() <= names::MAX_CHAIN_LEN, "{}", c.name);
            assert!(names::is_owned(&c.name, "PFSTATE"), "{}", c.name);
            let canary = names::owned_chain("PFSTATE", crate::render::CANARY);
            assert!(!c.rules.is_empty() || c.name == canary, "{}", c.name);
            for r in &c.rules {
                assert!(r.contains("--comment \"pfstate:"), "{r}");
                assert!(r.starts_with(&format!("-A {} ", c.name)), "{r}");
            }
        }
        for c in &t.chains {
            assert!(seen.insert(c.name.clone()), "duplicate {}", c.name);
        }
        seen.clear();
    }
    // One changed forward rewrites one leaf per table, nothing else.
    let (changed, _) = desired(600, Some(300));
    for table in [Table::Nat, Table::Filter] {
        let a = chains(&tree, table);
        let b = chains(&changed, table);
        assert_eq!(
            a.keys().collect::<std::collections::BTreeSet<_>>(),
            b.keys().collect()
        );
        let differ: Vec<&&str> = a.keys().filter(|k| a[*k] != b[*k]).collect();
        assert_eq!(differ.len(), 1, "{table}: {differ:?}");
    }
    assert_eq!(
        base_chain("PFSTATE", "PFSTATE-Pt10000-10015").as_deref(),
        Some("PFSTATE-PREROUTING")
    );
    assert_eq!(
        base_chain("PFSTATE", "PFSTATE-Fu0-16383").as_deref(),
        Some("PFSTATE-FORWARD")
    );
    assert_eq!(base_chain("PFSTATE", "PFSTATE-OUTPUT"), None);
    assert_eq!(base_chain("PFSTATE", "PFSTATE-LB-web"), None);
    let longest = names::owned_chain("ABCDEFGHIJKL", "Pt65532-65535");
    assert!(longest.len() <= names::MAX_CHAIN_LEN && !longest.contains("-0"));
}

#[test]
fn rules_that_cannot_be_split_stay_linear() {
    let mut s = String::from("version: 1\nforwards:\n");
    for i in 0..100 {
        s.push_str(&format!(
            "  - name: f{i}\n    listen:\n      port: 8080\n      address: 192.0.2.{}\n    to: 10.0.0.{}\n",
            i + 1,
            i + 1
        ));
    }
    let model = crate::spec::validate::load_str("t.yaml", &s).expect("valid");
    assert_eq!(render(&model), render_linear(&model));
}

#[test]
fn typed_keys_are_the_keys_the_printed_rules_show() {
    let model = crate::spec::validate::load_str("t.yaml", &yaml(200, None)).expect("valid");
    let tables = super::super::render_family(&model, Family::V4);
    let mut keyed = 0;
    for (t, rt) in &tables {
        for hook in table::hooks(*t) {
            let Some(tree) = hook.tree else { continue };
            let base = hook.owned("PFSTATE");
            for r in rt
                .chains
                .iter()
                .filter(|c| c.name == base)
                .flat_map(|c| &c.rules)
            {
                let text = key_of(&r.line(&base), tree.option);
                let typed = r.key.map(|k| TextKey {
                    proto: k.proto.name(),
                    lo: k.port.lo,
                    hi: k.port.hi,
                });
                assert_eq!(typed, text, "{}", r.line(&base));
                keyed += usize::from(typed.is_some());
            }
        }
    }
    assert!(keyed > 400, "{keyed}");
    assert_eq!(
        key_of("-A X -p tcp -m tcp ! --dport 22 -j ACCEPT", "--dport"),
        None
    );
    assert_eq!(key_of("-A X -p icmp -j ACCEPT", "--dport"), None);
}
