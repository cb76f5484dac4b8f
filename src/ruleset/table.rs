//! The tables and built-in chains pfstate uses, and the one list of hooks: which built-in
//! chain jumps into which owned chain, and which owned chains may become a port-range tree.

use std::fmt;

use crate::names;

/// A table pfstate may put rules in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Nat,
    Filter,
}

/// The tables in the order payloads list them.
pub const TABLES: [Table; 2] = [Table::Nat, Table::Filter];

impl Table {
    /// The name `iptables-save` prints after `*`.
    pub fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A built-in chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Builtin {
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Prerouting => "PREROUTING",
            Builtin::Input => "INPUT",
            Builtin::Forward => "FORWARD",
            Builtin::Output => "OUTPUT",
            Builtin::Postrouting => "POSTROUTING",
        }
    }
}

/// How the rules of an owned chain are keyed when it becomes a tree (see `render::tree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeKey {
    /// One letter for the names of the tree's chains.
    pub tag: char,
    /// The option holding the port in the chain's keyed rules.
    pub option: &'static str,
}

/// A built-in chain that jumps into the owned chain `PREFIX-<builtin>` of the same table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub table: Table,
    pub builtin: Builtin,
    pub tree: Option<TreeKey>,
}

impl Hook {
    /// The owned chain the built-in chain jumps to.
    pub fn owned(&self, prefix: &str) -> String {
        names::owned_chain(prefix, self.builtin.name())
    }
}

const fn hook(table: Table, builtin: Builtin, tree: Option<TreeKey>) -> Hook {
    Hook {
        table,
        builtin,
        tree,
    }
}

const DPORT: &str = "--dport";
const ORIG_PORT: &str = "--ctorigdstport";

/// Every hook, in the order the render lists them.
///
/// ```text
/// nat    PREROUTING  -> PREFIX-PREROUTING   DNAT of forwards       tree P, keyed by --dport
/// nat    OUTPUT      -> PREFIX-OUTPUT       DNAT for `local: true` tree O, keyed by --dport
/// nat    POSTROUTING -> PREFIX-POSTROUTING  source NAT
/// filter INPUT       -> PREFIX-INPUT        guard, input filter rules
/// filter FORWARD     -> PREFIX-FORWARD      filter rules, accepts  tree F, keyed by --ctorigdstport
/// filter OUTPUT      -> PREFIX-OUTPUT       output filter rules
/// ```
pub const HOOKS: [Hook; 6] = [
    hook(
        Table::Nat,
        Builtin::Prerouting,
        Some(TreeKey {
            tag: 'P',
            option: DPORT,
        }),
    ),
    hook(
        Table::Nat,
        Builtin::Output,
        Some(TreeKey {
            tag: 'O',
            option: DPORT,
        }),
    ),
    hook(Table::Nat, Builtin::Postrouting, None),
    hook(Table::Filter, Builtin::Input, None),
    hook(
        Table::Filter,
        Builtin::Forward,
        Some(TreeKey {
            tag: 'F',
            option: ORIG_PORT,
        }),
    ),
    hook(Table::Filter, Builtin::Output, None),
];

/// The hooks of one table, in order.
pub fn hooks(table: Table) -> impl Iterator<Item = &'static Hook> {
    HOOKS.iter().filter(move |h| h.table == table)
}

/// The name of a chain of a tree under the owned chain of `key`: `PREFIX-<tag><p><lo>-<hi>`
/// (`p` is the protocol's first letter), so names are stable and tell their range.
pub fn tree_chain(prefix: &str, key: &TreeKey, proto: &str, lo: u32, hi: u32) -> String {
    let p = &proto[..1];
    names::owned_chain(prefix, &format!("{}{p}{lo}-{hi}", key.tag))
}

/// The base chain a chain of a tree belongs to (`PREFIX-Pt10000-10015` -> `PREFIX-PREROUTING`),
/// or `None` for any other chain.
pub fn tree_base_chain(prefix: &str, chain: &str) -> Option<String> {
    let rest = chain.strip_prefix(prefix)?.strip_prefix('-')?;
    let mut chars = rest.chars();
    let tag = chars.next()?;
    let proto = chars.next()?;
    let (lo, hi) = chars.as_str().split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !matches!(proto, 't' | 'u') || !digits(lo) || !digits(hi) {
        return None;
    }
    let hook = HOOKS
        .iter()
        .find(|h| h.tree.is_some_and(|t| t.tag == tag))?;
    Some(hook.owned(prefix))
}
