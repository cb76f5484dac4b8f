//! pfstate's jumps from the built-in chains (or DOCKER-USER) into its owned chains: which are
//! kept, which are deleted by their full text, and where missing ones are inserted relative
//! to the other systems' rules (see `placement`).

use super::payload::TablePlan;
use super::placement;
use crate::names;
use crate::ruleset::dump::{self, SavedTable};
use crate::ruleset::{Builtin, Jump, Table, TableRules};

/// Docker's documented place for user rules; see `jump_hook`.
pub const DOCKER_USER: &str = "DOCKER-USER";

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

/// The jump lines as they are live and as they will be, for the plan's view.
pub(super) struct JumpViews {
    pub(super) live_view: Vec<String>,
    pub(super) want_view: Vec<String>,
}

/// Plan one table's jumps into `tp`. pfstate's jumps are the rules outside owned chains that
/// target an owned chain. A wanted jump is kept only when it is there once and well placed;
/// otherwise every copy is deleted by its full text and one is inserted where it belongs.
// Over 60 lines on purpose: keep, delete and insert are decided in one pass over the live
// jumps, so a reader sees every case of one hook's jumps together.
pub(super) fn plan(
    prefix: &str,
    table: Table,
    want: &TableRules,
    have: Option<&SavedTable>,
    tp: &mut TablePlan,
) -> JumpViews {
    let want_jumps: Vec<Jump> = want
        .jumps
        .iter()
        .map(|j| Jump {
            // A default verdict belongs after everyone's rules, Docker's included.
            from: if names::is_default_chain(&j.to, prefix) {
                j.from.clone()
            } else {
                jump_hook(table, &j.from, have)
            },
            to: j.to.clone(),
        })
        .collect();
    let live_jumps = live_jumps(prefix, have);
    let mut kept: Vec<String> = Vec::new();
    let mut misplaced: Vec<String> = Vec::new();
    for (chain, i, r) in &live_jumps {
        let copies = live_jumps.iter().filter(|(_, _, l)| l == r).count();
        let wanted = want_jumps.iter().any(|j| &j.line() == r);
        let last = dump::target(r).is_some_and(|to| names::is_default_chain(to, prefix));
        let placed = copies == 1
            && have.and_then(|t| t.chain(chain)).is_some_and(|c| {
                let rules: Vec<&str> = c.rules.iter().map(String::as_str).collect();
                placement::well_placed(table, chain, &rules, *i, last)
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
    for j in want_jumps.iter().filter(|j| !kept.contains(&j.line())) {
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
        let last = names::is_default_chain(&j.to, prefix);
        let position = placement::insert_position(table, &j.from, &rules, last);
        tp.add_jumps.push((j.clone(), position));
    }
    JumpViews {
        live_view: live_view(&live_jumps, &misplaced),
        want_view: want_jumps.iter().map(Jump::line).collect(),
    }
}

/// The live jumps as the view shows them: a misplaced jump reads the same as a well placed
/// one, so say where it is.
fn live_view(live_jumps: &[(String, usize, String)], misplaced: &[String]) -> Vec<String> {
    live_jumps
        .iter()
        .map(|(chain, i, r)| {
            if misplaced.contains(r) {
                format!("{r}    # misplaced: rule {} of {chain}", i + 1)
            } else {
                r.clone()
            }
        })
        .collect()
}

/// pfstate's live jumps: (chain, index in it, line) of every rule outside the owned chains
/// whose target is an owned chain.
fn live_jumps(prefix: &str, have: Option<&SavedTable>) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    if let Some(t) = have {
        for chain in t.order.iter().filter(|c| !names::is_owned(c, prefix)) {
            for (i, r) in t.chains[chain].rules.iter().enumerate() {
                // Only a line that is exactly one of pfstate's jumps is pfstate's: a value
                // `iptables-save` prints unquoted (`-m recent --set --name "x -j P-IN"`) can
                // hold the only `-j` of a foreign rule.
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
                    out.push((chain.clone(), i, r.clone()));
                }
            }
        }
    }
    out
}
