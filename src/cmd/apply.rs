//! `pfstate apply FILE [--boot]`: converge the host to the file, all or nothing.

use std::path::Path;

use crate::apply::{self, journal::FileJournal};
use crate::error::Error;
use crate::host::Host;
use crate::host::fs::{self, RunLock};
use crate::render::files::unit::{UNIT_NAME, UNIT_PATH};
use crate::spec::load;

use super::ctx::{Ctx, Outcome};
use super::prepare::{Prepared, plan_diff, prepare};

pub(super) fn apply_file(
    ctx: &Ctx,
    host: &Host,
    path: &Path,
    boot: bool,
) -> Result<Outcome, Error> {
    let _lock = RunLock::acquire(&ctx.root, fs::DEFAULT_LOCK_TIMEOUT)?;
    // Under the lock, the live rules are read while the file is parsed and rendered.
    host.netfilter.prefetch();
    let (model, source) = load(path)?;
    // At boot the unit applies the persisted copy: files and unit are already as they should be.
    let files_wanted = boot.then(Vec::new);
    let p = prepare(host, model, &source, files_wanted, !boot)?;
    let (d, changed) = plan_diff(ctx, &p, true);
    let d = if boot { String::new() } else { d };
    let mut out = Outcome {
        changed,
        diff: d,
        warnings: p.plan.warnings.clone(),
        ..Outcome::default()
    };
    if !boot && let Some(problem) = host.binary.problem(&host.binary.unit_binary()) {
        out.warnings.push(problem);
    }
    if !changed && (boot || p.unit_enabled() == Some(true)) {
        // The boot unit and the re-check timer run this every minute: a converged host should
        // not repeat the same warnings into the journal each time.
        if boot {
            out.warnings.clear();
        }
        out.notes.push("in sync: nothing to change".into());
        return Ok(out);
    }
    let mut report = apply::apply(host, &p.model, &p.desired, &p.observed, &p.plan)?;
    out.warnings.extend(report.warnings.iter().cloned());
    if !boot {
        let mut journal = FileJournal::default();
        let mut enabled = false;
        let result = write_files_and_enable(host, &p, &mut journal, &mut enabled);
        if let Err(cause) = result {
            // The unit, the files (newest first), then the kernel and sysctls.
            let back = (if enabled {
                host.services.disable(UNIT_NAME)
            } else {
                Ok(())
            })
            .and_then(|_| journal.rollback(host.files))
            .map_err(Error::from)
            .and_then(|_| apply::undo(host, &p.desired.prefix, &p.observed, &mut report));
            return Err(apply::rolled_back(cause, back));
        }
    }
    out.notes
        .extend(apply::conntrack::cut_notes(&report.cut, "were"));
    let fams: Vec<&str> = report.restored_families.iter().map(|f| f.name()).collect();
    out.notes.push(format!(
        "applied: {} rule set(s) rewritten{}, {} sysctl(s) set",
        fams.len(),
        if fams.is_empty() {
            String::new()
        } else {
            format!(" ({})", fams.join(", "))
        },
        report.sysctls_set.len()
    ));
    Ok(out)
}

/// Write the files (journalled) and enable the unit; `enabled` says whether this run enabled
/// it, so a failure after that can disable it again.
fn write_files_and_enable(
    host: &Host,
    p: &Prepared,
    journal: &mut FileJournal,
    enabled: &mut bool,
) -> Result<(), Error> {
    let mut unit_changed = false;
    for f in &p.files {
        let changed = journal.converge(host.files, f)?;
        unit_changed |= changed && f.target == UNIT_PATH;
    }
    let sm = host.services;
    if unit_changed {
        sm.reload()?;
    }
    if p.unit_enabled() != Some(true) {
        sm.enable(UNIT_NAME)?;
        *enabled = true;
        // Runs after this apply releases the lock; finds the host in sync and stays active.
        sm.start_no_wait(UNIT_NAME)?;
    }
    Ok(())
}
