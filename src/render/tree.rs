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
//! - Ranges are aligned on port bits (each node splits into 4 equal parts), and a chain
//!   is named after its range (`PREFIX-<hook><proto><lo>-<hi>`), so names are stable: changing a
//!   forward rewrites the leaf it is in (and a parent, when a leaf splits or appears), not the
//!   tree. An interior node with a single child is skipped.
//! - Semantics are kept: a packet with protocol p and port P reaches exactly one leaf, which
//!   holds, in their original order, every keyed rule of protocol p whose range contains P. The
//!   base chain jumps (`-j`) into the first level and the levels below use goto (`-g`), so a
//!   leaf that matches nothing returns to the base chain right after the tree (and the jump
//!   stack of nf_tables stays shallow whatever the depth). Dispatch rules carry the comment
//!   `pfstate:[tree]`, which cannot be an entry name.

use super::builder::{RuleChain, RuleTable};
use crate::model::Proto;
use crate::ruleset::rule::{Key, Rule};
use crate::ruleset::table::{self, Table, TreeKey};

/// Keyed rules in one chain above which it becomes a tree.
pub const THRESHOLD: usize = 64;
/// At most this many rules in a leaf (unless a single port holds more). Smaller leaves save a
/// few rule evaluations per packet but multiply the chains, and every chain makes each
/// `iptables-save` (the read of every plan) slower: at 10,000 forwards, leaves of 4 rules gave
/// 4x the chains and doubled the time of a no-op apply for about 5% more connections/s.
const LEAF: usize = 16;
/// Bits of the port split per level: 4 children per node.
const FANOUT_BITS: u32 = 2;
/// The comment of dispatch rules.
pub const TREE_COMMENT: &str = "pfstate:[tree]";

/// Turn the eligible chains of a family's tables into trees when they are large enough. The
/// tree's chains follow the table's other chains.
pub(crate) fn layout(prefix: &str, tables: &mut [(Table, RuleTable)], threshold: usize) {
    for (t, rt) in tables.iter_mut() {
        for hook in table::hooks(*t) {
            let Some(key) = &hook.tree else {
                continue;
            };
            let base = hook.owned(prefix);
            let Some(i) = rt.chains.iter().position(|c| c.name == base) else {
                continue;
            };
            if let Some(new_chains) = treeify(prefix, key, &mut rt.chains[i], threshold) {
                rt.chains.extend(new_chains);
            }
        }
    }
}

/// The longest run of keyed rules in a chain, as a range of indices: the rules around it stay
/// where they are.
fn keyed_run(rules: &[Rule]) -> (usize, usize) {
    let (mut best, mut start) = ((0, 0), 0);
    for (i, r) in rules.iter().enumerate() {
        if r.key().is_none() {
            start = i + 1;
        } else if i + 1 - start > best.1 - best.0 {
            best = (start, i + 1);
        }
    }
    best
}

/// Rewrite one base chain as a tree; returns the tree's chains, or `None` to keep it linear.
fn treeify(
    prefix: &str,
    key: &TreeKey,
    chain: &mut RuleChain,
    threshold: usize,
) -> Option<Vec<RuleChain>> {
    let (from, to) = keyed_run(&chain.rules);
    if to - from <= threshold {
        return None;
    }
    let mut out = Vec::new();
    let mut dispatch: Vec<Rule> = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        let items: Vec<&Rule> = chain.rules[from..to]
            .iter()
            .filter(|r| r.key().is_some_and(|k| k.proto == proto))
            .collect();
        if items.is_empty() {
            continue;
        }
        let mut chains = Vec::new();
        let t = Tree { prefix, key, proto };
        let built = match t.build(&items, 0, 16, &mut chains) {
            // A single leaf under the root (e.g. one port on many addresses) splits nothing.
            Built::Children(c) if c.len() == 1 && chains.len() == 1 => {
                chains.clear();
                Built::Leaf
            }
            built => built,
        };
        match built {
            // A root that stays one leaf: keep its rules in the base chain.
            Built::Leaf => dispatch.extend(items.iter().map(|r| (*r).clone())),
            // The first level is entered with -j, so a leaf without a match returns here.
            Built::Children(children) => {
                dispatch.extend(children.iter().map(|c| t.dispatch(&chain.name, c, false)))
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
    let after = chain.rules.split_off(to);
    chain.rules.truncate(from);
    chain.rules.extend(dispatch);
    chain.rules.extend(after);
    Some(out)
}

struct Tree<'a> {
    prefix: &'a str,
    key: &'a TreeKey,
    proto: Proto,
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

/// Whether a rule's key admits some port of `[lo, hi]`.
fn overlaps(k: Option<Key>, lo: u32, hi: u32) -> bool {
    k.is_some_and(|k| u32::from(k.port.lo) <= hi && lo <= u32::from(k.port.hi))
}

impl Tree<'_> {
    fn name(&self, lo: u32, hi: u32) -> String {
        table::tree_chain(self.prefix, self.key, self.proto.name(), lo, hi)
    }

    /// The rule in `parent` that sends the child's ports on: `-j` from the base chain, `-g`
    /// below it.
    fn dispatch(&self, parent: &str, c: &Child, goto: bool) -> Rule {
        let range = if c.lo == c.hi {
            c.lo.to_string()
        } else {
            format!("{}:{}", c.lo, c.hi)
        };
        let p = self.proto.name();
        let r = Rule::new(parent).proto(p);
        let r = if self.key.option == "--dport" {
            r.m(p, &format!("--dport {range}"))
        } else {
            r.m(
                "conntrack",
                &format!("--ctstate DNAT --ctorigdstport {range}"),
            )
        };
        let r = r.comment(TREE_COMMENT);
        if goto {
            r.goto(&c.name)
        } else {
            r.target(&c.name)
        }
    }

    /// The node covering `[lo, lo + 2^bits)`: a leaf when small enough, else the children to
    /// dispatch to. Chains of the subtrees are pushed to `out`.
    fn build(
        &self,
        items: &[&Rule],
        lo: u32,
        bits: u32,
        out: &mut Vec<(u32, u32, RuleChain)>,
    ) -> Built {
        if items.len() <= LEAF || bits == 0 {
            return Built::Leaf;
        }
        let step = FANOUT_BITS.min(bits);
        let child_bits = bits - step;
        let parts: Vec<(u32, Vec<&Rule>)> = (0..1u32 << step)
            .map(|c| {
                let clo = lo + (c << child_bits);
                let chi = clo + (1 << child_bits) - 1;
                let sub: Vec<&Rule> = items
                    .iter()
                    .copied()
                    .filter(|r| overlaps(r.key(), clo, chi))
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
        items: &[&Rule],
        lo: u32,
        bits: u32,
        out: &mut Vec<(u32, u32, RuleChain)>,
    ) -> Child {
        let hi = lo + (1 << bits) - 1;
        let name = self.name(lo, hi);
        let rules = match self.build(items, lo, bits, out) {
            // A leaf holds the rules themselves, moved into it.
            Built::Leaf => items.iter().map(|r| (*r).clone().in_chain(&name)).collect(),
            Built::Children(children) => match <[Child; 1]>::try_from(children) {
                Ok([only]) => return only,
                Err(children) => children
                    .iter()
                    .map(|c| self.dispatch(&name, c, true))
                    .collect(),
            },
        };
        out.push((
            lo,
            hi,
            RuleChain {
                name: name.clone(),
                rules,
            },
        ));
        Child { lo, hi, name }
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
