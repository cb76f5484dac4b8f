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
use crate::render::{Chain, Ruleset};

/// Keyed rules in one chain above which it becomes a tree.
pub const THRESHOLD: usize = 64;
/// At most this many rules in a leaf (unless a single port holds more).
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
        match t.build(&all, 0, 16, &mut chains) {
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
            crate::rule::save_string(TREE_COMMENT),
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
