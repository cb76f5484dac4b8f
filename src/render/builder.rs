//! The pieces every renderer of a table shares: the chain [`Builder`] of typed rules, the owned
//! chain names of one family, the entry comment and the jumps from the built-in chains.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::ruleset::rule::Rule;
use crate::ruleset::table::{self, Builtin, Table};
use crate::ruleset::{Chain, Jump, TableRules};

/// An owned chain of typed rules: what the render works on until it prints.
#[derive(Debug, Clone)]
pub(crate) struct RuleChain {
    pub(crate) name: String,
    pub(crate) rules: Vec<Rule>,
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
            .map(|c| Chain {
                name: c.name,
                rules: c.rules.iter().map(Rule::line).collect(),
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
    /// Every rule pushed so far (rules name their chain), for the duplicate check.
    seen: HashSet<Rule>,
}

impl Builder {
    pub(crate) fn push(&mut self, chain: &str, rule: Rule) {
        // Identical rules (e.g. one guard rule wanted by two forwards) are kept once.
        if !self.seen.insert(rule.clone()) {
            return;
        }
        match self.chains.iter_mut().find(|c| c.name == chain) {
            Some(c) => c.rules.push(rule),
            None => self.chains.push(RuleChain {
                name: chain.to_string(),
                rules: vec![rule],
            }),
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
