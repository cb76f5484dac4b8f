//! The owned rules a transaction changes, as they were: what a rollback or a recovery
//! converges back to. Only the chains the plan rewrites or deletes are kept (with every owned
//! jump, and the names of the chains it creates), so the journal of a one-forward change among
//! 10,000 holds two chains, not the whole rule set.

use serde::{Deserialize, Serialize};

use crate::apply::ruleset_from_live;
use crate::model::Family;
use crate::plan::rules::FamilyPlan;
use crate::ruleset::dump::{self, Saved};
use crate::ruleset::{Ruleset, TableRules};

/// One family's part of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyBefore {
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// The owned chains the plan rewrites or deletes, and every owned jump, as they were
    /// (text that [`dump::parse`] reads back).
    pub before: String,
    /// (table, chain) of the owned chains the plan creates: absent before.
    pub created: Vec<(String, String)>,
}

impl FamilyBefore {
    /// What `fp` will change in the family whose save is `live`, as it is now.
    pub fn capture(prefix: &str, fp: &FamilyPlan, live: &Saved) -> FamilyBefore {
        let owned = ruleset_from_live(prefix, fp.family, live);
        let mut kept = Ruleset {
            family: fp.family,
            tables: Vec::new(),
        };
        let mut created = Vec::new();
        for (table, tr) in &owned.tables {
            let tp = fp.tables.iter().find(|t| t.table == *table);
            let touched = |name: &str| {
                tp.is_some_and(|t| {
                    t.write.iter().any(|c| c.name == name) || t.delete.iter().any(|d| d == name)
                })
            };
            let chains = tr.chains.iter().filter(|c| touched(&c.name)).cloned();
            let jumps = tr.jumps.clone();
            let new = tp.into_iter().flat_map(|t| &t.write);
            for c in new.filter(|c| !tr.chains.iter().any(|o| o.name == c.name)) {
                created.push((table.name().to_string(), c.name.clone()));
            }
            let chains = chains.collect();
            kept.tables.push((*table, TableRules { chains, jumps }));
        }
        FamilyBefore {
            family: fp.family.name().to_string(),
            before: owned_text(&kept),
            created,
        }
    }

    pub fn family(&self) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == self.family)
    }

    /// The owned rules to converge to from `now`: the chains this part names as they were,
    /// the chains it created gone, the jumps as they were, every other chain as it is.
    pub fn target(&self, prefix: &str, family: Family, now: &Saved) -> Ruleset {
        let mut target = ruleset_from_live(prefix, family, now);
        let before = ruleset_from_live(prefix, family, &dump::parse(&self.before));
        for (table, tr) in target.tables.iter_mut() {
            let created = |name: &str| {
                self.created
                    .iter()
                    .any(|(t, n)| t == table.name() && n == name)
            };
            tr.chains.retain(|c| !created(&c.name));
            let old = before.table(*table);
            for c in old.iter().flat_map(|o| &o.chains) {
                match tr.chains.iter_mut().find(|x| x.name == c.name) {
                    Some(x) => x.rules = c.rules.clone(),
                    None => tr.chains.push(c.clone()),
                }
            }
            tr.jumps = old.map(|o| o.jumps.clone()).unwrap_or_default();
        }
        target
    }
}

/// Owned chains and jumps as a restore-like text that [`dump::parse`] reads back.
fn owned_text(rs: &Ruleset) -> String {
    let mut out = String::new();
    for (table, t) in &rs.tables {
        if t.chains.is_empty() && t.jumps.is_empty() {
            continue;
        }
        out.push_str(&format!("*{table}\n"));
        for c in &t.chains {
            out.push_str(&format!(":{} - [0:0]\n", c.name));
        }
        for line in t.chains.iter().flat_map(|c| c.rules.iter()) {
            out.push_str(line);
            out.push('\n');
        }
        for j in &t.jumps {
            out.push_str(&j.line());
            out.push('\n');
        }
        out.push_str("COMMIT\n");
    }
    out
}
