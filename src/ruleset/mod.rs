//! The iptables vocabulary shared by render, plan, apply and the host adapters: what pfstate
//! owns in one family (tables of chains of canonical rule lines, plus the jumps into them),
//! the [`rule`] builder that prints lines in `iptables-save` order, and the [`dump`] parser of
//! what `iptables-save` prints. Pure.

pub mod dump;
pub mod rule;
pub mod table;
pub mod words;

use crate::model::Family;
use crate::names::JUMP_COMMENT;

pub use table::{Builtin, HOOKS, Hook, TABLES, Table};

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
    /// What follows `-A CHAIN` in the jump's line.
    pub fn spec(&self) -> String {
        format!("-m comment --comment {JUMP_COMMENT} -j {}", self.to)
    }
    /// `-A FROM ...`, as `iptables-save` prints it.
    pub fn line(&self) -> String {
        format!("-A {} {}", self.from, self.spec())
    }
    /// `-I FROM POSITION ...` (1-based).
    pub fn insert_line(&self, position: usize) -> String {
        format!("-I {} {position} {}", self.from, self.spec())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableRules {
    pub chains: Vec<Chain>,
    pub jumps: Vec<Jump>,
}

/// Everything pfstate owns in one family, by table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub family: Family,
    pub tables: Vec<(Table, TableRules)>,
}

impl Ruleset {
    pub fn table(&self, table: Table) -> Option<&TableRules> {
        self.tables
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, r)| r)
    }
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|(_, t)| t.chains.is_empty())
    }
}
