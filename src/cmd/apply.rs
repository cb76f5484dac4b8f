//! `pfstate apply FILE [--boot]`: converge the host to the file, all or nothing.

use std::path::Path;

use crate::apply::{self, journal::FileJournal};
use crate::error::Error;
use crate::host::Host;
use crate::host::binary;
use crate::host::fs::{self, RunLock};
use crate::host::sysctl_before::FileMemory;
use crate::render::files::unit::{UNIT_NAME, UNIT_PATH};
use crate::spec::load;

use super::ctx::{Ctx, Outcome};
use super::prepare::{Prepared, live_host, plan_diff, prepare, service_manager};

pub(super) fn apply_file(ctx: &Ctx, path: &Path, boot: bool) -> Result<Outcome, Error> {
    let _lock = RunLock::acquire(&ctx.root, fs::DEFAULT_LOCK_TIMEOUT)?;
    let (nf, sc) = live_host();
    // Under the lock, the live rules are read while the file is parsed and rendered.
    let nf = nf.prefetch(&ctx.root);
    let (model, source) = load(path)?;
    let memory = FileMemory {
        root: ctx.root.clone(),
    };
    let host = Host {
        netfilter: &nf,
        sysctl: &sc,
        memory: &memory,
    };
    // At boot the unit applies the persisted copy: files and unit are already as they should be.
    let files_wanted = boot.then(Vec::new);
    let p = prepare(ctx, &host, model, &source, files_wanted, !boot)?;
    let (d, changed) = plan_diff(ctx, &p, true)?;
    let d = if boot { String::new() } else { d };
    let mut out = Outcome {
        changed,
        diff: d,
        warnings: p.plan.warnings.clone(),
        ..Outcome::default()
    };
    if !boot && let Some(problem) = binary::unit_binary_problem(&binary::unit_binary()) {
        out.warnings.push(problem);
    }
    if !changed && (boot || p.unit_enabled == Some(true)) {
        // The boot unit and the re-check timer run this every minute: a converged host should
        // not repeat the same warnings into the journal each time.
        if boot {
            out.warnings.clear();
        }
        out.notes.push("in sync: nothing to change".into());
        return Ok(out);
    }
    let mut report = apply::apply(&host, &p.model, &p.desired, &p.observed, &p.plan)?;
    out.warnings.extend(report.warnings.iter().cloned());
    if !boot {
        let mut journal = FileJournal::default();
        let result = write_files_and_enable(ctx, &p, &mut journal);
        if let Err(cause) = result {
            // Files first (newest first), then the kernel and sysctls.
            let back = journal
                .rollback()
                .map_err(Error::from)
                .and_then(|_| apply::undo(&host, &p.desired.prefix, &p.observed, &mut report));
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

fn write_files_and_enable(ctx: &Ctx, p: &Prepared, journal: &mut FileJournal) -> Result<(), Error> {
    let mut unit_changed = false;
    for f in &p.files {
        let changed = journal.converge(&ctx.root, f)?;
        unit_changed |= changed && f.target == UNIT_PATH;
    }
    let sm = service_manager(&ctx.root)?;
    if unit_changed {
        sm.reload()?;
    }
    if p.unit_enabled != Some(true) {
        sm.enable(UNIT_NAME)?;
        // Runs after this apply releases the lock; finds the host in sync and stays active.
        sm.start_no_wait(UNIT_NAME)?;
    }
    Ok(())
}
