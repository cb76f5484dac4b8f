//! The layout of large rule sets: owned chains whose rules are keyed by protocol and port
//! become a tree of owned chains split by port ranges, so a packet is matched against about
//! `log n` rules instead of `n`.
//!
//! ```text
//! nat    PREFIX-PREROUTING  -p tcp -m tcp --dport 8192:12287 -g PREFIX-Pt8192-12287   (dispatch)
//!        PREFIX-Pt8192-12287  -p tcp -m tcp --dport 10240:11263 -g PREFIX-Pt10240-11263
//!        ...                  leaves hold the forwards' own DNAT rules, unchanged
//! filter PREFIX-FORWARD     -p tcp -m conntrack --ctstate DNAT --ctorigdstport lo:hi -g ...
//! ```
//!
//! - Only chains with more than [`THRESHOLD`] keyed rules change: small files render exactly
//!   as before, one readable chain per hook.
//! - Keys: in nat PREROUTING/OUTPUT the forward's `--dport`; in filter FORWARD the accepts'
//!   `--ctorigdstport`. Both directions of a translated connection carry the original tuple, so
//!   replies walk the same short path, and packets of other traffic leave at the first level.
//! - Ranges are aligned on port bits (each node splits into [`FANOUT`] equal parts), and a chain
//!   is named after its range (`PREFIX-<hook><proto><lo>-<hi>`), so names are stable: changing a
//!   forward rewrites the leaf it is in (and a parent, when a leaf splits or appears), not the
//!   tree. An interior node with a single child is skipped.
//! - Semantics are kept: a packet with protocol p and port P reaches exactly one leaf, which
//!   holds, in their original order, every keyed rule of protocol p whose range contains P. The
//!   base chain jumps (`-j`) into the first level and the levels below use goto (`-g`), so a
//!   leaf that matches nothing returns to the base chain right after the tree (and the jump
//!   stack of nf_tables stays shallow whatever the depth). Dispatch rules carry the comment
//!   `pfstate:[tree]`, which cannot be an entry name.

use crate::names;
use crate::ruleset::{Chain, Ruleset};

/// Keyed rules in one chain above which it becomes a tree.
pub const THRESHOLD: usize = 64;
/// At most this many rules in a leaf (unless a single port holds more). Smaller leaves save a
/// few rule evaluations per packet but multiply the chains, and every chain makes each
/// `iptables-save` (the read of every plan) slower: at 10,000 forwards, leaves of 4 rules gave
/// 4x the chains and doubled the time of a no-op apply for about 5% more connections/s.
pub const LEAF: usize = 16;
/// Bits of the port split per level: 4 children per node.
const FANOUT_BITS: u32 = 2;
pub const FANOUT: usize = 1 << FANOUT_BITS;
/// The comment of dispatch rules.
pub const TREE_COMMENT: &str = "pfstate:[tree]";

/// Which owned chains may become trees, and how their rules are keyed.
struct Hook {
    table: &'static str,
    /// The owned base chain's suffix (`PREFIX-<part>`).
    part: &'static str,
    /// One letter for the names of the tree's chains.
    tag: char,
    /// The option holding the port in the rules (`--dport`, `--ctorigdstport`).
    option: &'static str,
}

const HOOKS: [Hook; 3] = [
    Hook {
        table: "nat",
        part: "PREROUTING",
        tag: 'P',
        option: "--dport",
    },
    Hook {
        table: "nat",
        part: "OUTPUT",
        tag: 'O',
        option: "--dport",
    },
    Hook {
        table: "filter",
        part: "FORWARD",
        tag: 'F',
        option: "--ctorigdstport",
    },
];

/// A rule's key: its protocol and the port range it requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub proto: &'static str,
    pub lo: u16,
    pub hi: u16,
}

/// The key of a rule line, when it requires one protocol (`-p tcp`/`-p udp`) and a port range
/// through `option` (not negated).
pub fn key_of(line: &str, option: &str) -> Option<Key> {
    let mut proto = None;
    let mut range = None;
    let mut prev = "";
    let mut it = line.split(' ');
    while let Some(tok) = it.next() {
        if tok == "-p" && prev != "!" {
            proto = match it.next()? {
                "tcp" => Some("tcp"),
                "udp" => Some("udp"),
                _ => return None,
            };
        } else if tok == option && prev != "!" {
            let v = it.next()?;
            range = Some(match v.split_once(':') {
                Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
                None => {
                    let p: u16 = v.parse().ok()?;
                    (p, p)
                }
            });
        } else if tok == "--comment" {
            // Comments may hold anything; nothing after them is a match of interest.
            break;
        }
        prev = tok;
    }
    let (lo, hi) = range?;
    Some(Key {
        proto: proto?,
        lo,
        hi,
    })
}

/// Turn the eligible chains of a ruleset into trees when they are large enough. The tree's
/// chains follow the table's other chains.
pub fn layout(prefix: &str, rs: &mut Ruleset, threshold: usize) {
    for (table, tr) in &mut rs.tables {
        for hook in HOOKS.iter().filter(|h| h.table == *table) {
            let base = names::owned_chain(prefix, hook.part);
            let Some(i) = tr.chains.iter().position(|c| c.name == base) else {
                continue;
            };
            if let Some(new_chains) = treeify(prefix, hook, &mut tr.chains[i], threshold) {
                tr.chains.extend(new_chains);
            }
        }
    }
}

struct Item<'a> {
    key: Key,
    /// The line without its `-A CHAIN` head: ` -p tcp ...`.
    tail: &'a str,
}

/// Rewrite one base chain as a tree; returns the tree's chains, or `None` to keep it linear.
fn treeify(prefix: &str, hook: &Hook, chain: &mut Chain, threshold: usize) -> Option<Vec<Chain>> {
    let head_len = 3 + chain.name.len(); // "-A NAME"
    let keys: Vec<Option<Key>> = chain.rules.iter().map(|l| key_of(l, hook.option)).collect();
    // The longest run of keyed rules; the rules around it stay where they are.
    let (mut best, mut start) = ((0, 0), 0);
    for (i, k) in keys.iter().enumerate() {
        if k.is_none() {
            start = i + 1;
        } else if i + 1 - start > best.1 - best.0 {
            best = (start, i + 1);
        }
    }
    let (from, to) = best;
    if to - from <= threshold {
        return None;
    }
    let mut out = Vec::new();
    let mut dispatch = Vec::new();
    for proto in ["tcp", "udp"] {
        let items: Vec<Item> = (from..to)
            .filter_map(|i| {
                let key = keys[i]?;
                (key.proto == proto).then(|| Item {
                    key,
                    tail: &chain.rules[i][head_len..],
                })
            })
            .collect();
        if items.is_empty() {
            continue;
        }
        let all: Vec<&Item> = items.iter().collect();
        let mut chains = Vec::new();
        let t = Tree {
            prefix,
            hook,
            proto,
        };
        let built = match t.build(&all, 0, 16, &mut chains) {
            // A single leaf under the root (e.g. one port on many addresses) splits nothing.
            Built::Children(c) if c.len() == 1 && chains.len() == 1 => {
                chains.clear();
                Built::Leaf
            }
            built => built,
        };
        match built {
            // A root that stays one leaf: keep its rules in the base chain.
            Built::Leaf => dispatch.extend(all.iter().map(|i| i.tail.to_string())),
            // The first level is entered with -j, so a leaf without a match returns here.
            Built::Children(children) => {
                dispatch.extend(children.iter().map(|c| t.dispatch_tail(c, "-j")))
            }
        }
        // Parents before their children, in port order: the tree reads top-down.
        chains.sort_by_key(|(lo, hi, _)| (*lo, std::cmp::Reverse(*hi)));
        out.extend(chains.into_iter().map(|(_, _, c)| c));
    }
    if out.is_empty() {
        // Nothing could be split (e.g. every rule spans the same ports): stay linear.
        return None;
    }
    let mut rules: Vec<String> = chain.rules[..from].to_vec();
    rules.extend(
        dispatch
            .into_iter()
            .map(|tail| format!("-A {}{tail}", chain.name)),
    );
    rules.extend(chain.rules[to..].iter().cloned());
    chain.rules = rules;
    Some(out)
}

struct Tree<'a> {
    prefix: &'a str,
    hook: &'a Hook,
    proto: &'static str,
}

/// A child a node dispatches to.
struct Child {
    lo: u32,
    hi: u32,
    name: String,
}

enum Built {
    Leaf,
    Children(Vec<Child>),
}

impl Tree<'_> {
    fn name(&self, lo: u32, hi: u32) -> String {
        let p = &self.proto[..1];
        names::owned_chain(self.prefix, &format!("{}{p}{lo}-{hi}", self.hook.tag))
    }

    /// ` -p tcp -m tcp --dport lo:hi -m comment ... -g NAME` (without `-A PARENT`).
    fn dispatch_tail(&self, c: &Child, verb: &str) -> String {
        let range = if c.lo == c.hi {
            c.lo.to_string()
        } else {
            format!("{}:{}", c.lo, c.hi)
        };
        let p = self.proto;
        let m = if self.hook.option == "--dport" {
            format!("-m {p} --dport {range}")
        } else {
            format!("-m conntrack --ctstate DNAT --ctorigdstport {range}")
        };
        format!(
            " -p {p} {m} -m comment --comment {} {verb} {}",
            crate::ruleset::rule::save_string(TREE_COMMENT),
            c.name
        )
    }

    /// The node covering `[lo, lo + 2^bits)`: a leaf when small enough, else the children to
    /// dispatch to. Chains of the subtrees are pushed to `out`.
    fn build(
        &self,
        items: &[&Item],
        lo: u32,
        bits: u32,
        out: &mut Vec<(u32, u32, Chain)>,
    ) -> Built {
        if items.len() <= LEAF || bits == 0 {
            return Built::Leaf;
        }
        let step = FANOUT_BITS.min(bits);
        let child_bits = bits - step;
        let parts: Vec<(u32, Vec<&Item>)> = (0..1u32 << step)
            .map(|c| {
                let clo = lo + (c << child_bits);
                let chi = clo + (1 << child_bits) - 1;
                let sub: Vec<&Item> = items
                    .iter()
                    .copied()
                    .filter(|i| u32::from(i.key.lo) <= chi && clo <= u32::from(i.key.hi))
                    .collect();
                (clo, sub)
            })
            .filter(|(_, sub)| !sub.is_empty())
            .collect();
        // Rules spanning every part: splitting would only copy them.
        if parts.len() > 1 && parts.iter().all(|(_, sub)| sub.len() == items.len()) {
            return Built::Leaf;
        }
        Built::Children(
            parts
                .iter()
                .map(|(clo, sub)| self.subtree(sub, *clo, child_bits, out))
                .collect(),
        )
    }

    /// The chain to dispatch to for a node: its leaf, its only child, or a chain of its own.
    fn subtree(
        &self,
        items: &[&Item],
        lo: u32,
        bits: u32,
        out: &mut Vec<(u32, u32, Chain)>,
    ) -> Child {
        let hi = lo + (1 << bits) - 1;
        let name = self.name(lo, hi);
        let rules = match self.build(items, lo, bits, out) {
            Built::Leaf => items
                .iter()
                .map(|i| format!("-A {name}{}", i.tail))
                .collect(),
            Built::Children(mut children) if children.len() == 1 => {
                return children.pop().expect("one child");
            }
            Built::Children(children) => children
                .iter()
                .map(|c| format!("-A {name}{}", self.dispatch_tail(c, "-g")))
                .collect(),
        };
        out.push((
            lo,
            hi,
            Chain {
                name: name.clone(),
                rules,
            },
        ));
        Child { lo, hi, name }
    }
}

/// The base chain a chain of a tree belongs to (`PREFIX-Pt10000-10015` -> `PREFIX-PREROUTING`),
/// or `None` for any other chain.
pub fn base_chain(prefix: &str, chain: &str) -> Option<String> {
    let rest = chain.strip_prefix(prefix)?.strip_prefix('-')?;
    let mut chars = rest.chars();
    let tag = chars.next()?;
    let proto = chars.next()?;
    let (lo, hi) = chars.as_str().split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !matches!(proto, 't' | 'u') || !digits(lo) || !digits(hi) {
        return None;
    }
    let hook = HOOKS.iter().find(|h| h.tag == tag)?;
    Some(names::owned_chain(prefix, hook.part))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
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

    fn chains<'a>(d: &'a Desired, table: &str) -> HashMap<&'a str, &'a Vec<String>> {
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
            ("nat", "PFSTATE-PREROUTING", "--dport"),
            ("filter", "PFSTATE-FORWARD", "--ctorigdstport"),
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
        for table in ["nat", "filter"] {
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
    fn keys_are_read_from_rule_text() {
        let k = key_of(
            "-A X -p udp -m udp --dport 8000:8010 -m comment --comment \"pfstate:a --dport 1\" -j DNAT --to-destination 10.0.0.1",
            "--dport",
        );
        assert_eq!(
            k,
            Some(Key {
                proto: "udp",
                lo: 8000,
                hi: 8010
            })
        );
        assert_eq!(
            key_of("-A X -p tcp -m tcp ! --dport 22 -j ACCEPT", "--dport"),
            None
        );
        assert_eq!(key_of("-A X -p icmp -j ACCEPT", "--dport"), None);
        assert_eq!(
            key_of("-A X -s 10.0.0.0/8 -j ACCEPT", "--ctorigdstport"),
            None
        );
    }
}
