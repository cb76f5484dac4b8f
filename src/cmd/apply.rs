//! `pfstate apply FILE... [--confirm DURATION] [--boot]`: converge the host to the files, all
//! or nothing; with `--confirm`, put back unless confirmed (see [`super::confirm`]).

use std::path::PathBuf;

use crate::apply::pending::{self, Pending};
use crate::apply::{
    self,
    txn::{self, Transaction},
    units,
};
use crate::cli::Format;
use crate::error::Error;
use crate::host::Host;
use crate::host::lock::{self, RunLock};
use crate::host::systemd::OfflineServiceManager;
use crate::plan::packaged_unit;
use crate::render::files::unit::{UNIT_NAME, UNIT_PATH};
use crate::spec::multi;

use super::confirm;
use super::ctx::{Ctx, Outcome};
use super::prepare::{Prepared, begin, plan_changed, plan_diff, prepare, rules_and_files};

/// Who applies: a person (files and unit too), the boot unit (kernel only; an unconfirmed
/// `apply --confirm` is put back first), or a repair after drift (kernel only; nothing while
/// a confirmation is pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Full,
    Boot,
    Repair,
}

impl Mode {
    pub(super) fn of(boot: bool, repair: bool) -> Mode {
        match (boot, repair) {
            (_, true) => Mode::Repair,
            (true, false) => Mode::Boot,
            (false, false) => Mode::Full,
        }
    }
}

// Over 60 lines on purpose: the steps of a run (lock, pending confirmation, recovery, plan,
// transaction, units, confirm deadline) read top to bottom in the order they happen.
pub(super) fn apply_files(
    ctx: &Ctx,
    host: &Host,
    paths: &[PathBuf],
    mode: Mode,
    confirm: Option<&str>,
) -> Result<Outcome, Error> {
    let seconds = confirm
        .map(pending::parse_duration)
        .transpose()
        .map_err(Error::Usage)?;
    let _lock = RunLock::acquire(&ctx.root, lock::DEFAULT_LOCK_TIMEOUT)?;
    if mode == Mode::Repair && Pending::load(host.files)?.is_some() {
        let mut out = Outcome::default();
        out.notes
            .push("an apply --confirm waits for its confirmation: nothing repaired".into());
        return Ok(out);
    }
    let boot = mode != Mode::Full;
    // Before anything is read: a run killed half-way is put back first.
    let recovered = txn::recover(host, boot)?;
    settle_pending(ctx, host, boot)?;
    // Under the lock, the live rules are read while the files are parsed and rendered.
    host.prefetch();
    let (model, source) = multi::load_all(paths)?;
    // At boot the unit applies the persisted copy: files and unit are already as they should be.
    let files_wanted = boot.then(Vec::new);
    let p = prepare(host, model, &source, files_wanted, !boot)?;
    let changed = plan_changed(&p, true);
    let mut out = Outcome {
        changed,
        warnings: p.plan.warnings.clone(),
        ..Outcome::default()
    };
    // JSON records the diff with the plan, before the change. Text shows it after: at 10,000
    // forwards it is as large as the restore payload, and the two need not be held at once.
    let diff_after_write = !boot && ctx.format != Format::Json;
    if !boot && !diff_after_write {
        out.diff = plan_diff(ctx, &p, true).0;
    }
    let offline = ctx.root.is_offline();
    // Only a warning: a failure to look is no reason to stop the apply.
    if !boot
        && let Ok(Some(problem)) =
            packaged_unit::boot_binary_problem(host.files, host.binary, offline)
    {
        out.warnings.push(problem);
    }
    super::report::fill(ctx, &p, true, &mut out);
    out.set("confirm", serde_json::Value::Null);
    if !changed && (boot || p.unit_enabled() == Some(true)) {
        // The boot unit and the re-check timer run this every minute: a converged host should
        // not repeat the same warnings into the journal each time.
        if boot {
            out.warnings.clear();
        }
        out.warnings.extend(recovered);
        out.notes.push("in sync: nothing to change".into());
        return Ok(out);
    }
    out.warnings.extend(recovered);
    // The record is written before anything else: a crash from here on still finds it.
    let mut record = seconds.map(|s| confirm::record(host, &p, s)).transpose()?;
    if let Err(e) = write_all(host, &p, boot, &mut out) {
        if record.is_some() {
            host.files.remove(pending::PENDING_PATH)?;
        }
        return Err(e);
    }
    if diff_after_write {
        out.diff = plan_diff(ctx, &p, true).0;
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

/// The whole change, then the conntrack flush of changed forwards and the summary.
fn write_all(host: &Host, p: &Prepared, boot: bool, out: &mut Outcome) -> Result<(), Error> {
    let report = transact(host, p, !boot)?;
    let (warnings, cut) = apply::flush_conntrack(host, &p.model, &p.observed, &p.plan);
    out.warnings.extend(warnings);
    out.notes.extend(apply::conntrack::cut_notes(&cut, "were"));
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

/// The whole change as one transaction: rules, sysctls, then (not at boot) the files and the
/// unit. Any failure, or a signal between steps, puts all of it back.
fn transact(host: &Host, p: &Prepared, manage_files: bool) -> Result<apply::Report, Error> {
    let unit = manage_files.then(|| p.unit_enabled().unwrap_or(false));
    let txn = begin(host, p, unit)?;
    let (watch, legacy) = (p.model.watch, p.observed.legacy);
    let companions = &p.observed.companions;
    let mut toggled = units::Toggled::new();
    let result = (|| {
        if manage_files {
            // Units no longer wanted go first: a watcher must not outlive its unit file.
            txn.step()?;
            units::retire(host.services, companions, watch, legacy, &mut toggled)?;
        }
        // At boot there are no files to converge (the plan was made with none).
        let report = rules_and_files(host, &txn, p)?;
        if manage_files {
            let written = &report.files_changed;
            enable_unit(host, &txn, p, written)?;
            txn.step()?;
            units::enlist(
                host.services,
                companions,
                written,
                (watch, legacy),
                &mut toggled,
            )?;
        }
        Ok(report)
    })();
    // The companion units this run enabled are disabled while their files still exist; the
    // ones it disabled are enabled again once the transaction put their files back (also when
    // the transaction fails in its own last step).
    let failed = result.is_err();
    if failed {
        units::undo(host.services, &toggled, true)?;
    }
    let result = txn.finish(result);
    if result.is_err() {
        if !failed {
            units::undo(host.services, &toggled, true)?;
        }
        units::undo(host.services, &toggled, false)?;
    }
    result
}

/// Reload systemd when a unit file (`written`: the files this run changed) changed, and enable
/// the unit if it is not.
fn enable_unit(
    host: &Host,
    txn: &Transaction,
    p: &Prepared,
    written: &[&str],
) -> Result<(), Error> {
    let sm = host.services;
    let unit_changed = written.contains(&UNIT_PATH);
    if written.iter().any(|t| t.starts_with("/etc/systemd/")) {
        txn.step()?;
        sm.reload()?;
    }
    // The package's unit replaced pfstate's own copy: the [Install] links still name the copy
    // (a failure after this puts the copy and its links back: the transaction knows both).
    let relink = unit_changed && packaged_unit::installed(host.files)?;
    if relink {
        txn.step()?;
        sm.disable(UNIT_NAME)?;
    }
    if relink || p.unit_enabled() != Some(true) {
        txn.step()?;
        sm.enable(UNIT_NAME)?;
        // Runs after this apply releases the lock; finds the host in sync and stays active.
        sm.start_no_wait(UNIT_NAME)?;
    }
    Ok(())
}
