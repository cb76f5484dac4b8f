//! The iptables vocabulary shared by render, plan, apply and the host adapters: what pfstate
//! owns in one family (tables of chains of canonical rule lines, plus the jumps into them),
//! the [`rule`] builder that prints lines in `iptables-save` order, and the [`dump`] parser of
//! what `iptables-save` prints. Pure.

pub mod dump;
pub mod rule;

use crate::model::Family;
use crate::names::JUMP_COMMENT;

/// The tables pfstate may put rules in, in the order payloads list them.
pub const TABLES: [&str; 2] = ["nat", "filter"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// Full `-A NAME ...` lines.
    pub rules: Vec<String>,
}

/// A jump from a chain pfstate does not own into one it does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Jump {
    pub from: String,
    pub to: String,
}

impl Jump {
    pub fn line(&self) -> String {
        format!(
            "-A {} -m comment --comment {JUMP_COMMENT} -j {}",
            self.from, self.to
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableRules {
    pub chains: Vec<Chain>,
    pub jumps: Vec<Jump>,
}

/// Everything pfstate owns in one family, by table name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub family: Family,
    pub tables: Vec<(&'static str, TableRules)>,
}

impl Ruleset {
    pub fn table(&self, name: &str) -> Option<&TableRules> {
        self.tables.iter().find(|(t, _)| *t == name).map(|(_, r)| r)
    }
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|(_, t)| t.chains.is_empty())
    }
}
