//! Desired x live -> what to write. Pure: the live state comes in as parsed `iptables-save`.
//!
//! Only owned chains whose rules differ are rewritten (declaring `:CHAIN` under `--noflush`
//! flushes that chain alone); owned chains no longer wanted are flushed and deleted; jumps are
//! added only where missing, removed only when they are pfstate's and not wanted, and
//! re-placed (deleted by full text, inserted again) when duplicated or misplaced relative to
//! the other systems' rules (see `placement`). A plan
//! with nothing to do produces no payload, so a converged host sees no kernel write at all.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::jumps;
use crate::model::Family;
use crate::names;
use crate::ruleset::dump::{Saved, SavedTable};
use crate::ruleset::words::split_rule;
use crate::ruleset::{Ruleset, TABLES, Table, TableRules};

pub use super::jumps::{DOCKER_USER, jump_hook};
pub use super::payload::{FamilyPlan, TablePlan};

/// Plan one family. `live` is the parsed `iptables-save` of that family.
pub fn plan_family(prefix: &str, desired: &Ruleset, live: &Saved) -> FamilyPlan {
    let mut tables = Vec::new();
    let mut live_view = String::new();
    let mut desired_view = String::new();
    let mut changed = BTreeSet::new();
    let empty = TableRules::default();
    for table in TABLES {
        let want = desired.table(table).unwrap_or(&empty);
        let have = live.table(table.name());
        let mut tp = TablePlan {
            table,
            write: Vec::new(),
            delete: Vec::new(),
            remove_jumps: Vec::new(),
            add_jumps: Vec::new(),
        };
        let live_owned = owned_chains(prefix, want, have, &mut tp, &mut changed);
        let jumps = jumps::plan(prefix, table, want, have, &mut tp);
        // The views hold the jumps and only the chains that change: a review reads what the
        // apply will write, and a no-op plan of 10,000 forwards builds no large text.
        let shown: HashSet<&str> = tp
            .write
            .iter()
            .map(|c| c.name.as_str())
            .chain(tp.delete.iter().map(String::as_str))
            .collect();
        let live_chains = live_owned
            .iter()
            .filter(|(n, _)| shown.contains(n.as_str()))
            .map(|(n, r)| (n.as_str(), r.as_slice()));
        live_view.push_str(&view(
            desired.family,
            table,
            &jumps.live_view,
            live_chains,
            want,
        ));
        let want_chains = want
            .chains
            .iter()
            .filter(|c| shown.contains(c.name.as_str()))
            .map(|c| (c.name.as_str(), c.rules.as_slice()));
        desired_view.push_str(&view(
            desired.family,
            table,
            &jumps.want_view,
            want_chains,
            want,
        ));
        tables.push(tp);
    }
    FamilyPlan {
        family: desired.family,
        tables,
        live_view,
        desired_view,
        changed_entries: changed,
    }
}

/// The owned chains of a table: those whose rules differ are (re)written, those no longer
/// wanted deleted, and the entries whose rules change recorded. Returns the live owned chains.
fn owned_chains<'a>(
    prefix: &str,
    want: &TableRules,
    have: Option<&'a SavedTable>,
    tp: &mut TablePlan,
    changed: &mut BTreeSet<String>,
) -> Vec<(&'a String, &'a Vec<String>)> {
    let live_owned: Vec<(&String, &Vec<String>)> = have
        .map(|t| {
            t.order
                .iter()
                .filter(|c| names::is_owned(c, prefix))
                .map(|c| (c, &t.chains[c].rules))
                .collect()
        })
        .unwrap_or_default();
    let live_by_name: HashMap<&str, &Vec<String>> =
        live_owned.iter().map(|(n, r)| (n.as_str(), *r)).collect();
    let want_names: HashSet<&str> = want.chains.iter().map(|c| c.name.as_str()).collect();
    for c in &want.chains {
        if live_by_name.get(c.name.as_str()) != Some(&&c.rules) {
            tp.write.push(c.clone());
        }
    }
    for (name, _) in &live_owned {
        if !want_names.contains(name.as_str()) {
            tp.delete.push(name.to_string());
        }
    }
    if !tp.write.is_empty() || !tp.delete.is_empty() {
        // Chains left as they are hold the same rules on both sides: compare the others.
        let written: HashSet<&str> = tp.write.iter().map(|c| c.name.as_str()).collect();
        let old = live_owned
            .iter()
            .filter(|(n, _)| written.contains(n.as_str()) || !want_names.contains(n.as_str()))
            .flat_map(|(_, r)| r.iter());
        let new = tp.write.iter().flat_map(|c| c.rules.iter());
        note_changes(prefix, old, new, changed);
    }
    live_owned
}

/// The readable text of one table's owned state: jumps, then each owned chain. Chains are
/// listed in the desired order (others after, by name) so that the diff shows only changes.
fn view<'a>(
    family: Family,
    table: Table,
    jumps: &[String],
    chains: impl Iterator<Item = (&'a str, &'a [String])>,
    order: &TableRules,
) -> String {
    let position: HashMap<&str, usize> = order
        .chains
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut chains: Vec<(&str, &[String])> = chains.collect();
    chains.sort_by_key(|(n, _)| (position.get(n).copied().unwrap_or(usize::MAX), *n));
    let size: usize = jumps
        .iter()
        .chain(chains.iter().flat_map(|(_, r)| r.iter()))
        .map(|l| l.len() + 1)
        .sum();
    if jumps.is_empty() && chains.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(size + 64 * chains.len());
    out.push_str(&format!("# {family} {table}\n"));
    for j in jumps {
        out.push_str(j);
        out.push('\n');
    }
    for (name, rules) in chains {
        out.push_str(&format!(":{name}\n"));
        for r in rules {
            out.push_str(r);
            out.push('\n');
        }
    }
    out
}

/// Record the entries whose rules differ between the live and the desired owned chains of a
/// table. A rule of a tree layout is compared as if it were in the tree's base chain, so a rule
/// that only moves to another leaf (when a leaf splits) is not a change of its entry.
fn note_changes<'a>(
    prefix: &str,
    old: impl Iterator<Item = &'a String>,
    new: impl Iterator<Item = &'a String>,
    changed: &mut BTreeSet<String>,
) {
    let normal = |line: &'a String| -> std::borrow::Cow<'a, str> {
        let Some((chain, spec)) = split_rule(line) else {
            return line.as_str().into();
        };
        match crate::ruleset::table::tree_base_chain(prefix, chain) {
            Some(base) => format!("-A {base} {spec}").into(),
            None => line.as_str().into(),
        }
    };
    let old: HashSet<_> = old.map(normal).collect();
    let new: HashSet<_> = new.map(normal).collect();
    for l in old.symmetric_difference(&new) {
        if let Some(name) = crate::ruleset::rule::entry_of(l) {
            changed.insert(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::dump;
    use crate::ruleset::{Chain, Jump};

    fn ruleset(nat_chains: Vec<Chain>, jumps: Vec<Jump>) -> Ruleset {
        Ruleset {
            family: Family::V4,
            tables: vec![
                (
                    Table::Nat,
                    TableRules {
                        chains: nat_chains,
                        jumps,
                    },
                ),
                (Table::Filter, TableRules::default()),
            ],
        }
    }

    fn pre(rules: &[&str]) -> Chain {
        Chain {
            name: "PFSTATE-PREROUTING".into(),
            rules: rules.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn jump() -> Jump {
        Jump {
            from: "PREROUTING".into(),
            to: "PFSTATE-PREROUTING".into(),
        }
    }

    const RULE: &str = "-A PFSTATE-PREROUTING -p tcp -m tcp --dport 80 -m comment --comment \"pfstate:web\" -j DNAT --to-destination 10.0.0.2:80";

    #[test]
    fn empty_host_gets_chain_and_jump() {
        let p = plan_family(
            "PFSTATE",
            &ruleset(vec![pre(&[RULE])], vec![jump()]),
            &Saved::default(),
        );
        assert_eq!(
            p.payload(),
            format!(
                "*nat\n:PFSTATE-PREROUTING - [0:0]\n{RULE}\n-I PREROUTING 1 -m comment --comment pfstate -j PFSTATE-PREROUTING\nCOMMIT\n"
            )
        );
        assert!(p.changed_entries.contains("web"));
    }

    #[test]
    fn converged_host_gets_nothing() {
        let live = dump::parse(&format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:PFSTATE-PREROUTING - [0:0]\n-A PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING\n{RULE}\nCOMMIT\n"
        ));
        let p = plan_family("PFSTATE", &ruleset(vec![pre(&[RULE])], vec![jump()]), &live);
        assert!(p.is_empty(), "{}", p.payload());
        assert_eq!(p.payload(), "");
        assert_eq!(p.live_view, p.desired_view);
    }

    #[test]
    fn stale_chain_and_jump_are_removed_foreign_untouched() {
        let live = dump::parse(&format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:PFSTATE-PREROUTING - [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-A PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING\n{RULE}\nCOMMIT\n"
        ));
        let p = plan_family("PFSTATE", &ruleset(vec![], vec![]), &live);
        assert_eq!(
            p.payload(),
            format!(
                "*nat\n:PFSTATE-PREROUTING - [0:0]\n-D PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING\n-X PFSTATE-PREROUTING\nCOMMIT\n"
            )
        );
    }

    #[test]
    fn jump_goes_after_calico_and_into_docker_user() {
        let live = dump::parse(
            "*filter\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m comment --comment \"cali:6gwbT8clXdHdC1b1\" -j cali-PREROUTING\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n",
        );
        let mut rs = ruleset(vec![pre(&[RULE])], vec![jump()]);
        rs.tables[1].1 = TableRules {
            chains: vec![Chain {
                name: "PFSTATE-FORWARD".into(),
                rules: vec!["-A PFSTATE-FORWARD -j ACCEPT".into()],
            }],
            jumps: vec![Jump {
                from: "FORWARD".into(),
                to: "PFSTATE-FORWARD".into(),
            }],
        };
        let p = plan_family("PFSTATE", &rs, &live);
        let payload = p.payload();
        assert!(
            payload.contains("-I PREROUTING 2 -m comment --comment pfstate -j PFSTATE-PREROUTING"),
            "{payload}"
        );
        assert!(
            payload.contains("-I DOCKER-USER 1 -m comment --comment pfstate -j PFSTATE-FORWARD"),
            "{payload}"
        );
    }

    fn nat_live(prerouting: &[&str]) -> Saved {
        let mut text = String::from(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:PFSTATE-PREROUTING - [0:0]\n:PFSTATE-CANARY - [0:0]\n",
        );
        for r in prerouting {
            text.push_str(&format!("-A PREROUTING {r}\n"));
        }
        text.push_str(&format!("{RULE}\nCOMMIT\n"));
        dump::parse(&text)
    }

    const CALI: &str = "-m comment --comment \"cali:6gwbT8clXdHdC1b1\" -j cali-PREROUTING";
    const KUBE: &str = "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
    const JUMP: &str = "-m comment --comment pfstate -j PFSTATE-PREROUTING";

    fn with_canary() -> Ruleset {
        let canary = Chain {
            name: "PFSTATE-CANARY".into(),
            rules: vec![],
        };
        ruleset(vec![pre(&[RULE]), canary], vec![jump()])
    }

    #[test]
    fn jump_above_calico_is_replaced_and_shown_as_misplaced() {
        let p = plan_family("PFSTATE", &with_canary(), &nat_live(&[JUMP, CALI, KUBE]));
        assert_eq!(
            p.payload(),
            format!("*nat\n-D PREROUTING {JUMP}\n-I PREROUTING 2 {JUMP}\nCOMMIT\n")
        );
        assert!(
            p.live_view.contains("# misplaced: rule 1 of PREROUTING"),
            "{}",
            p.live_view
        );
        assert!(p.changed_entries.is_empty(), "no entry changed");
    }

    #[test]
    fn jump_below_a_later_foreign_insert_is_left_alone() {
        // kube-proxy or libvirt inserting a missing jump at 1 is not pfstate's drift.
        let p = plan_family("PFSTATE", &with_canary(), &nat_live(&[CALI, KUBE, JUMP]));
        assert!(p.is_empty(), "{}", p.payload());
    }

    #[test]
    fn duplicate_jumps_are_all_removed_and_one_reinserted() {
        let p = plan_family(
            "PFSTATE",
            &with_canary(),
            &nat_live(&[CALI, JUMP, KUBE, JUMP]),
        );
        assert_eq!(
            p.payload(),
            format!(
                "*nat\n-D PREROUTING {JUMP}\n-D PREROUTING {JUMP}\n-I PREROUTING 2 {JUMP}\nCOMMIT\n"
            )
        );
    }

    #[test]
    fn missing_canary_alone_is_drift() {
        let live = dump::parse(&format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:PFSTATE-PREROUTING - [0:0]\n-A PREROUTING {JUMP}\n{RULE}\nCOMMIT\n"
        ));
        let p = plan_family("PFSTATE", &with_canary(), &live);
        assert_eq!(p.payload(), "*nat\n:PFSTATE-CANARY - [0:0]\nCOMMIT\n");
    }

    #[test]
    fn an_unhooked_docker_user_is_not_used() {
        let live = dump::parse("*filter\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\nCOMMIT\n");
        assert_eq!(
            jump_hook(Table::Filter, "FORWARD", live.table("filter")),
            "FORWARD"
        );
        let hooked = dump::parse(
            "*filter\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n",
        );
        assert_eq!(
            jump_hook(Table::Filter, "FORWARD", hooked.table("filter")),
            "DOCKER-USER"
        );
    }
}
