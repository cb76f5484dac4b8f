//! The pieces every renderer of a table shares: the chain [`Builder`] of typed rules, the owned
//! chain names of one family, the entry comment and the jumps from the built-in chains.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::ruleset::rule::{Key, Rule};
use crate::ruleset::table::{self, Builtin, Table};
use crate::ruleset::{Chain, Jump, TableRules};

/// A rule of an owned chain as the render keeps it until the chain is printed: its text
/// without the chain (so it can move to another chain), its key for the tree layout, and the
/// destination it requires.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) spec: String,
    pub(crate) key: Option<Key>,
    pub(crate) dst: Option<IpNet>,
}

impl Entry {
    /// The `-A CHAIN ...` line of this rule in `chain`.
    pub(crate) fn line(&self, chain: &str) -> String {
        if self.spec.is_empty() {
            format!("-A {chain}")
        } else {
            format!("-A {chain} {}", self.spec)
        }
    }

    pub(crate) fn of(rule: &Rule) -> Entry {
        Entry {
            spec: rule.spec(),
            key: rule.key(),
            dst: rule.destination_net(),
        }
    }
}

/// An owned chain of rules: what the render works on until it prints.
#[derive(Debug, Clone)]
pub(crate) struct RuleChain {
    pub(crate) name: String,
    pub(crate) rules: Vec<Entry>,
}

/// One table of typed chains, and the jumps into them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleTable {
    pub(crate) chains: Vec<RuleChain>,
    pub(crate) jumps: Vec<Jump>,
}

impl RuleTable {
    /// The table as `iptables-save` lines.
    pub(crate) fn print(self) -> TableRules {
        let chains = self
            .chains
            .into_iter()
            .map(|c| {
                let rules = c.rules.iter().map(|e| e.line(&c.name)).collect();
                Chain {
                    name: c.name,
                    rules,
                }
            })
            .collect();
        TableRules {
            chains,
            jumps: self.jumps,
        }
    }
}

/// The chains of one table under construction, in the order they were first used.
#[derive(Default)]
pub(crate) struct Builder {
    pub(super) chains: Vec<RuleChain>,
    /// Every rule pushed so far, by chain index and text, for the duplicate check.
    seen: HashSet<(usize, String)>,
}

impl Builder {
    pub(crate) fn push(&mut self, chain: &str, rule: Rule) {
        let i = match self.chains.iter().position(|c| c.name == chain) {
            Some(i) => i,
            None => {
                self.chains.push(RuleChain {
                    name: chain.to_string(),
                    rules: Vec::new(),
                });
                self.chains.len() - 1
            }
        };
        let e = Entry::of(&rule);
        // Identical rules (e.g. one guard rule wanted by two forwards) are kept once.
        if self.seen.insert((i, e.spec.clone())) {
            self.chains[i].rules.push(e);
        }
    }

    /// The table with a jump from each hook of `table` whose owned chain has rules. Base
    /// chains come first in hook order, helper chains (LB) after, for a readable render.
    pub(crate) fn finish(self, prefix: &str, table: Table) -> RuleTable {
        let hooks: Vec<(Builtin, String)> = table::hooks(table)
            .map(|h| (h.builtin, h.owned(prefix)))
            .collect();
        let jumps = hooks
            .iter()
            .filter(|(_, to)| self.chains.iter().any(|c| &c.name == to))
            .map(|(from, to)| Jump {
                from: from.name().to_string(),
                to: to.clone(),
            })
            .collect();
        let mut chains = self.chains;
        chains.sort_by_key(|c| {
            hooks
                .iter()
                .position(|(_, h)| *h == c.name)
                .unwrap_or(hooks.len())
        });
        RuleTable { chains, jumps }
    }
}

/// The owned base chains of one family.
pub(crate) struct Names {
    pub(crate) prerouting: String,
    pub(crate) nat_output: String,
    pub(crate) postrouting: String,
    pub(crate) input: String,
    pub(crate) forward: String,
    pub(crate) filter_output: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Names {
        let owned = |table: Table, builtin: Builtin| {
            let hook = table::hooks(table).find(|h| h.builtin == builtin);
            hook.map(|h| h.owned(prefix)).unwrap_or_default()
        };
        Names {
            prerouting: owned(Table::Nat, Builtin::Prerouting),
            nat_output: owned(Table::Nat, Builtin::Output),
            postrouting: owned(Table::Nat, Builtin::Postrouting),
            input: owned(Table::Filter, Builtin::Input),
            forward: owned(Table::Filter, Builtin::Forward),
            filter_output: owned(Table::Filter, Builtin::Output),
        }
    }
}

pub(crate) fn host(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

pub(crate) use crate::ruleset::rule::entry_comment as comment;
