//! `pfstate apply FILE... [--confirm DURATION] [--boot]`: converge the host to the files, all
//! or nothing; with `--confirm`, put back unless confirmed (see [`super::confirm`]).

use std::path::PathBuf;

use crate::apply::pending::{self, Pending};
use crate::apply::{self, journal::FileJournal};
use crate::error::Error;
use crate::host::Host;
use crate::host::fs::{self, RunLock};
use crate::host::systemd::OfflineServiceManager;
use crate::render::files::unit::{UNIT_NAME, UNIT_PATH};
use crate::spec::multi;

use super::confirm;
use super::ctx::{Ctx, Outcome};
use super::prepare::{Prepared, plan_diff, prepare};

pub(super) fn apply_files(
    ctx: &Ctx,
    host: &Host,
    paths: &[PathBuf],
    boot: bool,
    confirm: Option<&str>,
) -> Result<Outcome, Error> {
    let seconds = confirm
        .map(pending::parse_duration)
        .transpose()
        .map_err(Error::Usage)?;
    let _lock = RunLock::acquire(&ctx.root, fs::DEFAULT_LOCK_TIMEOUT)?;
    settle_pending(ctx, host, boot)?;
    // Under the lock, the live rules are read while the files are parsed and rendered.
    host.netfilter.prefetch();
    let (model, source) = multi::load_all(paths)?;
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
    super::report::fill(&p, true, &mut out);
    out.set("confirm", serde_json::Value::Null);
    if !changed && (boot || p.unit_enabled() == Some(true)) {
        // The boot unit and the re-check timer run this every minute: a converged host should
        // not repeat the same warnings into the journal each time.
        if boot {
            out.warnings.clear();
        }
        out.notes.push("in sync: nothing to change".into());
        return Ok(out);
    }
    // The record is written before anything else: a crash from here on still finds it.
    let mut record = seconds.map(|s| confirm::record(host, &p, s)).transpose()?;
    if let Err(e) = write_all(host, &p, boot, &mut out) {
        if record.is_some() {
            host.files.remove(pending::PENDING_PATH)?;
        }
        return Err(e);
    }
    if let Some(rec) = record.as_mut() {
        confirm::arm(ctx, host, rec, &mut out)?;
    }
    Ok(out)
}

/// A pending `apply --confirm` refuses another apply; at boot it is put back first, so that a
/// change never confirmed does not become permanent through a reboot. The boot apply runs
/// before dbus.service: the unit's links are put back as `systemctl --root` does, on disk.
fn settle_pending(ctx: &Ctx, host: &Host, boot: bool) -> Result<(), Error> {
    match Pending::load(host.files)? {
        None => Ok(()),
        Some(p) if boot => {
            let dir = ctx.root.dir.clone().unwrap_or_else(|| "/".into());
            let offline = OfflineServiceManager::new(dir);
            let host = Host {
                services: &offline,
                ..*host
            };
            confirm::revert_now(&host, &p)
        }
        Some(p) => Err(Error::Usage(p.refusal())),
    }
}

/// Kernel and sysctls, then (not at boot) files and unit; a failure puts everything back.
fn write_all(host: &Host, p: &Prepared, boot: bool, out: &mut Outcome) -> Result<(), Error> {
    let mut report = apply::apply(host, &p.model, &p.desired, &p.observed, &p.plan)?;
    out.warnings.extend(report.warnings.iter().cloned());
    if !boot {
        let mut journal = FileJournal::default();
        let mut enabled = false;
        let result = write_files_and_enable(host, p, &mut journal, &mut enabled);
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
    Ok(())
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
