//! `pfstate remove [--prefix P]`: take away everything pfstate installed under a prefix, as
//! one transaction: the rules first, then the files, and the unit is disabled last, so a
//! failure anywhere leaves everything as it was.

use crate::apply::txn;
use crate::apply::units;
use crate::error::Error;
use crate::host::lock::{self, RunLock};
use crate::host::{Files, Host};
use crate::model::Model;
use crate::names;
use crate::render::files::{
    self,
    unit::{STATE_PATH, UNIT_NAME},
};
use crate::spec;

use super::ctx::{Ctx, Outcome};
use super::prepare::{Prepared, begin, plan_diff, prepare, rules_and_files};

/// The prefix of the persisted state, if there is one that parses.
fn persisted_prefix(files: &dyn Files) -> Option<String> {
    let text = files.read(STATE_PATH).ok().flatten()?;
    spec::load_str(STATE_PATH, &text).ok().map(|m| m.prefix)
}

// Over 60 lines on purpose: lock, recovery, pending check, plan, then the dry run or the
// transaction, in the order they must happen; split up, that order would be harder to see.
pub(super) fn remove(
    ctx: &Ctx,
    host: &Host,
    prefix: Option<&str>,
    dry_run: bool,
) -> Result<Outcome, Error> {
    let _lock = RunLock::acquire(&ctx.root, lock::DEFAULT_LOCK_TIMEOUT)?;
    let recovered = txn::recover(host, false)?;
    if let Some(p) = crate::apply::pending::Pending::load(host.files)? {
        return Err(Error::Usage(p.refusal()));
    }
    let prefix = prefix
        .map(str::to_string)
        .or_else(|| persisted_prefix(host.files))
        .unwrap_or_else(|| names::DEFAULT_PREFIX.to_string());
    if let Some(problem) = names::prefix_problem(&prefix) {
        return Err(Error::Usage(problem));
    }
    let p = prepare(
        host,
        Model::empty(&prefix),
        "",
        Some(files::no_files()),
        true,
    )?;
    // A family that cannot be read may still hold pfstate's chains: never report success.
    if let Some((family, why)) = p.observed.unreadable.first() {
        return Err(Error::Usage(format!(
            "cannot read the {family} rules ({why}), so pfstate's chains there cannot be removed; nothing was changed"
        )));
    }
    let (d, changed) = plan_diff(ctx, &p, false);
    let mut out = Outcome {
        changed,
        diff: d,
        warnings: p.plan.warnings.clone(),
        changes_exit_2: dry_run,
        ..Outcome::default()
    };
    super::report::fill(ctx, &p, false, &mut out);
    out.warnings.extend(recovered);
    if dry_run {
        out.notes.push(if changed {
            format!("remove would delete the above (prefix {prefix}); nothing was changed")
        } else {
            "nothing to remove".into()
        });
        return Ok(out);
    }
    if !changed {
        out.notes.push("nothing to remove".into());
        return Ok(out);
    }
    let removed = transact(ctx, host, &p)?;
    // The removed forwards' connections lose their translation: say how many were cut.
    let (warnings, cut) = crate::apply::flush_conntrack(host, &p.model, &p.observed, &p.plan);
    out.warnings.extend(warnings);
    out.notes
        .extend(crate::apply::conntrack::cut_notes(&cut, "were"));
    out.notes.push(format!(
        "removed everything under prefix {prefix}: {}",
        removed.join(", ")
    ));
    Ok(out)
}

/// Rules, files, then the unit; returns what was removed, in words.
fn transact(ctx: &Ctx, host: &Host, p: &Prepared) -> Result<Vec<String>, Error> {
    let enabled = p.unit_enabled();
    let txn = begin(host, p, enabled)?;
    let mut toggled = units::Toggled::new();
    let result = (|| {
        // The watcher first (stopped, so it outlives neither its unit nor the state).
        let companions = &p.observed.companions;
        units::retire(host.services, companions, false, false, &mut toggled)?;
        let report = rules_and_files(host, &txn, p)?;
        if enabled == Some(true) {
            txn.step()?;
            host.services.disable(UNIT_NAME)?;
        }
        if !report.files_changed.is_empty() && !ctx.root.is_offline() {
            txn.step()?;
            host.services.reload()?;
        }
        Ok(report)
    })();
    let report = match txn.finish(result) {
        Ok(r) => r,
        Err(e) => {
            // The transaction put the unit files back: enable (and start) what was disabled.
            units::undo(host.services, &toggled, false)?;
            return Err(e);
        }
    };
    let mut removed: Vec<String> = report
        .restored_families
        .iter()
        .map(|f| format!("{f} rules"))
        .collect();
    removed.extend(
        report
            .other_backend_cleaned
            .iter()
            .map(|f| format!("{f} rules in the other iptables backend")),
    );
    removed.extend(report.files_changed.iter().map(|f| f.to_string()));
    if enabled == Some(true) {
        removed.push(format!("unit {UNIT_NAME} disabled"));
    }
    removed.extend(toggled.iter().map(|(u, _)| format!("unit {u} disabled")));
    Ok(removed)
}
