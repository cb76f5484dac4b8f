//! Desired x live -> what to write. Pure: the live state comes in as parsed `iptables-save`.
//!
//! Only owned chains whose rules differ are rewritten (declaring `:CHAIN` under `--noflush`
//! flushes that chain alone); owned chains no longer wanted are flushed and deleted; jumps are
//! added only where missing, removed only when they are pfstate's and not wanted, and
//! re-placed (deleted by full text, inserted again) when duplicated or misplaced relative to
//! the other systems' rules (see `placement`). A plan
//! with nothing to do produces no payload, so a converged host sees no kernel write at all.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::placement;
use crate::model::Family;
use crate::names;
use crate::ruleset::dump::{self, Saved, SavedTable};
use crate::ruleset::words::split_rule;
use crate::ruleset::{Builtin, Chain, Jump, Ruleset, TABLES, Table, TableRules};

/// Docker's documented place for user rules; see `jump_hook`.
pub const DOCKER_USER: &str = "DOCKER-USER";

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

/// The chain a jump really hangs from on this host. With Docker present, the FORWARD jump goes
/// into DOCKER-USER: dockerd re-inserts its own jumps at the top of FORWARD on every start, and
/// DOCKER-FORWARD accepts all container traffic, so a FORWARD-level jump would be pushed below
/// it; DOCKER-USER is where Docker documents user rules go and it is never flushed by Docker.
pub fn jump_hook(table: Table, from: &str, live: Option<&SavedTable>) -> String {
    if table == Table::Filter
        && from == Builtin::Forward.name()
        && live.is_some_and(docker_user_is_hooked)
    {
        DOCKER_USER.to_string()
    } else {
        from.to_string()
    }
}

/// DOCKER-USER exists and FORWARD jumps into it: a chain Docker left behind without its jump
/// (a half-removed Docker) would never see a packet, so pfstate hooks FORWARD instead.
fn docker_user_is_hooked(t: &SavedTable) -> bool {
    t.chain(DOCKER_USER).is_some()
        && t.chain("FORWARD")
            .is_some_and(|f| f.rules.iter().any(|r| dump::target(r) == Some(DOCKER_USER)))
}

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
        let want_jumps: Vec<Jump> = want
            .jumps
            .iter()
            .map(|j| Jump {
                from: jump_hook(table, &j.from, have),
                to: j.to.clone(),
            })
            .collect();
        let mut tp = TablePlan {
            table,
            write: Vec::new(),
            delete: Vec::new(),
            remove_jumps: Vec::new(),
            add_jumps: Vec::new(),
        };

        // Owned chains.
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
        let mut touched = false;
        for c in &want.chains {
            if live_by_name.get(c.name.as_str()) != Some(&&c.rules) {
                tp.write.push(c.clone());
                touched = true;
            }
        }
        for (name, _) in &live_owned {
            if !want_names.contains(name.as_str()) {
                tp.delete.push(name.to_string());
                touched = true;
            }
        }
        if touched {
            // Chains left as they are hold the same rules on both sides: compare the others.
            let written: HashSet<&str> = tp.write.iter().map(|c| c.name.as_str()).collect();
            note_changes(
                prefix,
                live_owned
                    .iter()
                    .filter(|(n, _)| {
                        written.contains(n.as_str()) || !want_names.contains(n.as_str())
                    })
                    .flat_map(|(_, r)| r.iter()),
                tp.write.iter().flat_map(|c| c.rules.iter()),
                &mut changed,
            );
        }

        // Jumps: pfstate's are the rules outside owned chains that target an owned chain. A
        // wanted jump is kept only when it is there once and well placed (see `placement`);
        // otherwise every copy is deleted by its full text and one is inserted where it belongs.
        let mut live_jumps: Vec<(String, usize, String)> = Vec::new();
        if let Some(t) = have {
            for chain in t.order.iter().filter(|c| !names::is_owned(c, prefix)) {
                for (i, r) in t.chains[chain].rules.iter().enumerate() {
                    // Only a line that is exactly one of pfstate's jumps is pfstate's: a value
                    // `iptables-save` prints unquoted (`-m recent --set --name "x -j P-IN"`)
                    // can hold the only `-j` of a foreign rule.
                    let own = |to: &str| {
                        names::is_owned(to, prefix)
                            && *r
                                == Jump {
                                    from: chain.clone(),
                                    to: to.to_string(),
                                }
                                .line()
                    };
                    if dump::target(r).is_some_and(own) {
                        live_jumps.push((chain.clone(), i, r.clone()));
                    }
                }
            }
        }
        let mut kept: Vec<String> = Vec::new();
        let mut misplaced: Vec<String> = Vec::new();
        for (chain, i, r) in &live_jumps {
            let copies = live_jumps.iter().filter(|(_, _, l)| l == r).count();
            let wanted = want_jumps.iter().any(|j| &j.line() == r);
            let placed = copies == 1
                && have.and_then(|t| t.chain(chain)).is_some_and(|c| {
                    let rules: Vec<&str> = c.rules.iter().map(String::as_str).collect();
                    placement::well_placed(table, chain, &rules, *i)
                });
            if wanted && placed {
                kept.push(r.clone());
            } else {
                if wanted && !misplaced.contains(r) {
                    misplaced.push(r.clone());
                }
                tp.remove_jumps.push(r.clone());
            }
        }
        for j in &want_jumps {
            if !kept.contains(&j.line()) {
                let rules: Vec<&str> = have
                    .and_then(|t| t.chain(&j.from))
                    .map(|c| {
                        c.rules
                            .iter()
                            .filter(|r| !tp.remove_jumps.contains(r))
                            .map(String::as_str)
                            .collect()
                    })
                    .unwrap_or_default();
                tp.add_jumps.push((
                    j.clone(),
                    placement::insert_position(table, &j.from, &rules),
                ));
            }
        }
        // A misplaced jump reads the same as a well placed one: say where it is in the view.
        let live_jump_view: Vec<String> = live_jumps
            .iter()
            .map(|(chain, i, r)| {
                if misplaced.contains(r) {
                    format!("{r}    # misplaced: rule {} of {chain}", i + 1)
                } else {
                    r.clone()
                }
            })
            .collect();

        // The views hold the jumps and only the chains that change: a review reads what the
        // apply will write, and a no-op plan of 10,000 forwards builds no large text.
        let shown: HashSet<&str> = tp
            .write
            .iter()
            .map(|c| c.name.as_str())
            .chain(tp.delete.iter().map(String::as_str))
            .collect();
        live_view.push_str(&view(
            desired.family,
            table,
            &live_jump_view,
            live_owned
                .iter()
                .filter(|(n, _)| shown.contains(n.as_str()))
                .map(|(n, r)| (n.as_str(), r.as_slice())),
            want,
        ));
        desired_view.push_str(&view(
            desired.family,
            table,
            &want_jumps.iter().map(Jump::line).collect::<Vec<_>>(),
            want.chains
                .iter()
                .filter(|c| shown.contains(c.name.as_str()))
                .map(|c| (c.name.as_str(), c.rules.as_slice())),
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

/// The owned state found live, as a ruleset: what a rollback converges back to.
pub fn ruleset_from_live(prefix: &str, family: Family, live: &Saved) -> Ruleset {
    let tables = TABLES
        .iter()
        .map(|table| {
            let mut tr = TableRules::default();
            if let Some(t) = live.table(table.name()) {
                for name in &t.order {
                    let chain = &t.chains[name];
                    if names::is_owned(name, prefix) {
                        tr.chains.push(Chain {
                            name: name.clone(),
                            rules: chain.rules.clone(),
                        });
                        continue;
                    }
                    for r in &chain.rules {
                        if let Some(to) = dump::target(r).filter(|to| names::is_owned(to, prefix)) {
                            let j = Jump {
                                from: name.clone(),
                                to: to.to_string(),
                            };
                            if j.line() == *r {
                                tr.jumps.push(j);
                            }
                        }
                    }
                }
            }
            (*table, tr)
        })
        .collect();
    Ruleset { family, tables }
}

#[cfg(test)]
mod tests {
    use super::*;

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
