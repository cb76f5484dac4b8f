//! Snapshot pfstate's own objects before an `apply --confirm`, and put them back at the deadline.
//!
//! The snapshot holds only what pfstate owns: its chains and the jumps into them (not the rest
//! of the rule set), the sysctls the apply changes, its files and the unit's enabled state. The
//! revert converges exactly these back with the ordinary planner, against the rule set as it is
//! at the deadline: a rule Docker inserted meanwhile is not pfstate's and is left alone, where
//! restoring a whole saved table (iptables-apply, Ansible's iptables_state) would delete it.

use crate::error::{Error, HostError};
use crate::host::{Files, Host, ServiceManager};
use crate::model::Family;
use crate::names;
use crate::plan::rules as plan;
use crate::render::files::ManagedFile;
use crate::render::files::unit::{UNIT_NAME, UNIT_PATH};
use crate::ruleset::dump as iptsave;

use super::pending::{OldFile, OldSysctl, Pending};

/// Lines of an `iptables-save` text that say something about `prefix`'s objects: table
/// headers, chain declarations, rules in owned chains and jumps into them, COMMIT.
pub fn owned_lines(prefix: &str, save: &str) -> String {
    let mut out = String::new();
    for line in save.lines() {
        let keep = if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split(' ').next().unwrap_or_default();
            names::is_owned(chain, prefix)
                || iptsave::target(line).is_some_and(|t| names::is_owned(t, prefix))
        } else {
            line.starts_with('*') || line.starts_with(':') || line == "COMMIT"
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// What is live now, for the record: owned rules of both families (`saved` texts as read before
/// the apply), the old values of the sysctls the plan changes, the files as they are.
pub fn snapshot_files(
    files: &dyn Files,
    wanted: &[ManagedFile],
) -> Result<Vec<OldFile>, HostError> {
    wanted
        .iter()
        .map(|f| {
            Ok(OldFile {
                target: f.target.to_string(),
                content: files.read(f.target)?,
            })
        })
        .collect()
}

pub fn snapshot_sysctls(plan: &crate::plan::SysctlPlan) -> Vec<OldSysctl> {
    plan.changes
        .iter()
        .chain(&plan.restores)
        .filter_map(|c| {
            c.live.as_ref().map(|v| OldSysctl {
                path: c.setting.key.proc_path(),
                value: v.clone(),
            })
        })
        .collect()
}

/// Put the recorded objects back. Every step is tried even when one fails; the error lists
/// what could not be put back.
pub fn revert(host: &Host, p: &Pending) -> Result<(), Error> {
    let mut failed: Vec<String> = Vec::new();
    // route_localnet goes off before the rules lose its guard, and on only after they have
    // it back (issue 11): the other sysctls follow the rules.
    let (off_first, after): (Vec<&OldSysctl>, Vec<&OldSysctl>) = p
        .sysctls
        .iter()
        .partition(|s| s.path.ends_with("/route_localnet") && s.value.trim() == "0");
    let set = |list: &[&OldSysctl], failed: &mut Vec<String>| {
        for s in list {
            if let Err(e) = host.sysctl.set(&s.path, &s.value) {
                failed.push(format!("sysctl {}: {e}", s.path));
            }
        }
    };
    set(&off_first, &mut failed);
    for (name, text) in &p.rules {
        let Some(family) = Family::ALL.into_iter().find(|f| f.name() == name) else {
            continue;
        };
        if let Err(e) = revert_rules(host, family, p, text) {
            failed.push(format!("{name} rules: {e}"));
        }
    }
    set(&after, &mut failed);
    let mut unit_file_changed = false;
    for f in &p.files {
        match put_file_back(host.files, f) {
            Ok(changed) => unit_file_changed |= changed && f.target == UNIT_PATH,
            Err(e) => failed.push(format!("{}: {e}", f.target)),
        }
    }
    if let Err(e) = put_unit_back(host.services, p.unit_enabled, unit_file_changed) {
        failed.push(format!("unit {UNIT_NAME}: {e}"));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "could not put back: {}; run `pfstate plan` to see what is live",
            failed.join("; ")
        )))
    }
}

/// Converge the prefix's chains and jumps back to the snapshot.
fn revert_rules(host: &Host, family: Family, p: &Pending, text: &str) -> Result<(), Error> {
    let old = iptsave::parse(text);
    let target = super::ruleset_from_live(&p.prefix, family, &old);
    let now = iptsave::parse(&host.netfilter.save(family, "")?);
    let back = plan::plan_family(&p.prefix, &target, &now);
    if !back.is_empty() {
        host.netfilter.restore(family, &back.payload())?;
    }
    Ok(())
}

fn put_file_back(files: &dyn Files, f: &OldFile) -> Result<bool, HostError> {
    if files.read(&f.target)? == f.content {
        return Ok(false);
    }
    match &f.content {
        Some(c) => files.write(&f.target, c)?,
        None => {
            files.remove(&f.target)?;
        }
    }
    Ok(true)
}

fn put_unit_back(
    sm: &dyn ServiceManager,
    enabled: Option<bool>,
    file_changed: bool,
) -> Result<(), HostError> {
    if file_changed {
        sm.reload()?;
    }
    match enabled {
        Some(true) if !sm.is_enabled(UNIT_NAME)? => sm.enable(UNIT_NAME),
        Some(false) if sm.is_enabled(UNIT_NAME)? => sm.disable(UNIT_NAME),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_lines_keep_owned_chains_and_jumps_only() {
        let save = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
                    :PFSTATE-PREROUTING - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
                    -A PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING\n\
                    -A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n\
                    -A PFSTATE-PREROUTING -p tcp -m tcp --dport 80 -m comment --comment \"pfstate:web\" -j DNAT --to-destination 10.0.0.2:80\n\
                    COMMIT\n";
        let kept = owned_lines("PFSTATE", save);
        assert_eq!(
            kept,
            "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n:PFSTATE-PREROUTING - [0:0]\n\
             -A PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING\n\
             -A PFSTATE-PREROUTING -p tcp -m tcp --dport 80 -m comment --comment \"pfstate:web\" -j DNAT --to-destination 10.0.0.2:80\n\
             COMMIT\n"
        );
        // What the revert converges to is the same owned state as from the whole text.
        let whole = crate::apply::ruleset_from_live("PFSTATE", Family::V4, &iptsave::parse(save));
        let reduced =
            crate::apply::ruleset_from_live("PFSTATE", Family::V4, &iptsave::parse(&kept));
        assert_eq!(format!("{whole:?}"), format!("{reduced:?}"));
    }
}
