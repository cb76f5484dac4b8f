//! What to write to one family, and the `iptables-restore --noflush` text that writes it.

use std::collections::BTreeSet;

use crate::model::Family;
use crate::ruleset::words::split_rule;
use crate::ruleset::{Chain, Jump, Table};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    pub table: Table,
    /// Owned chains to (re)write with their desired rules.
    pub write: Vec<Chain>,
    /// Owned chains to flush and delete.
    pub delete: Vec<String>,
    /// pfstate jumps to remove, as their `-A` lines in the live table.
    pub remove_jumps: Vec<String>,
    /// Jumps to add: the rule line and the 1-based position to insert at (`None`: append).
    pub add_jumps: Vec<(Jump, Option<usize>)>,
}

impl TablePlan {
    pub fn is_empty(&self) -> bool {
        self.write.is_empty()
            && self.delete.is_empty()
            && self.remove_jumps.is_empty()
            && self.add_jumps.is_empty()
    }

    /// The `iptables-restore --noflush` block for this table.
    pub fn payload(&self) -> String {
        let mut out = format!("*{}\n", self.table.name());
        for c in &self.write {
            out.push_str(&format!(":{} - [0:0]\n", c.name));
        }
        for c in &self.delete {
            out.push_str(&format!(":{c} - [0:0]\n"));
        }
        for j in &self.remove_jumps {
            if let Some((chain, spec)) = split_rule(j) {
                out.push_str(&format!("-D {chain} {spec}\n"));
            }
        }
        for c in &self.write {
            for r in &c.rules {
                out.push_str(r);
                out.push('\n');
            }
        }
        for (j, pos) in &self.add_jumps {
            out.push_str(&match pos {
                Some(p) => j.insert_line(*p),
                None => j.line(),
            });
            out.push('\n');
        }
        for c in &self.delete {
            out.push_str(&format!("-X {c}\n"));
        }
        out.push_str("COMMIT\n");
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyPlan {
    pub family: Family,
    pub tables: Vec<TablePlan>,
    /// Owned rules and jumps as they are live, and as they will be: the text `plan` diffs.
    pub live_view: String,
    pub desired_view: String,
    /// Entries (forward/snat/filter names) whose rules are added, changed or removed.
    pub changed_entries: BTreeSet<String>,
}

impl FamilyPlan {
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(TablePlan::is_empty)
    }
    /// The whole restore payload for this family (one COMMIT per table that changes).
    pub fn payload(&self) -> String {
        self.tables
            .iter()
            .filter(|t| !t.is_empty())
            .map(TablePlan::payload)
            .collect()
    }
}
