//! The pieces every renderer of a table shares: the chain [`Builder`], the owned chain names of
//! one family, the entry comment and the jumps from the built-in chains.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ruleset::rule::Rule;
use crate::ruleset::{Chain, Jump, TableRules};

/// The chains of one table under construction, in the order they were first used.
#[derive(Default)]
pub(crate) struct Builder {
    pub(super) chains: Vec<Chain>,
    /// Every line pushed so far (lines name their chain), for the duplicate check.
    seen: std::collections::HashSet<String>,
}

impl Builder {
    pub(crate) fn push(&mut self, chain: &str, rule: Rule) {
        let line = rule.line();
        match self.chains.iter_mut().find(|c| c.name == chain) {
            Some(c) => {
                // Identical lines (e.g. one guard rule wanted by two forwards) are kept once.
                if self.seen.insert(line.clone()) {
                    c.rules.push(line);
                }
            }
            None => {
                self.seen.insert(line.clone());
                self.chains.push(Chain {
                    name: chain.to_string(),
                    rules: vec![line],
                })
            }
        }
    }
}

pub(crate) struct Names {
    pub(crate) prerouting: String,
    pub(crate) nat_output: String,
    pub(crate) postrouting: String,
    pub(crate) input: String,
    pub(crate) forward: String,
    pub(crate) filter_output: String,
}

pub(crate) fn with_jumps(b: Builder, hooks: &[(&str, &String)]) -> TableRules {
    let jumps = hooks
        .iter()
        .filter(|(_, chain)| b.chains.iter().any(|c| &c.name == *chain))
        .map(|(from, to)| Jump {
            from: from.to_string(),
            to: to.to_string(),
        })
        .collect();
    // Base chains first in hook order, helper chains (LB) after, for a readable render.
    let mut chains = b.chains;
    chains.sort_by_key(|c| {
        hooks
            .iter()
            .position(|(_, h)| **h == c.name)
            .unwrap_or(hooks.len())
    });
    TableRules { chains, jumps }
}

pub(crate) fn host(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

pub(crate) fn comment(name: &str) -> String {
    format!("pfstate:{name}")
}
