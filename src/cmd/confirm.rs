//! Confirm-or-revert: the record and the deadline of `apply --confirm`, `pfstate confirm`, and
//! the revert the deadline runs (`pfstate confirm --revert ID`, hidden).
//!
//! The revert is armed in the system manager when there is one (a transient timer over D-Bus),
//! else as a detached process; either outlives the SSH session that applied the change. It puts
//! back pfstate's own objects only (see `apply::revert`).

use serde_json::json;

use crate::apply::pending::{self, Last, Pending, Revert, now_unix, rfc3339};
use crate::apply::revert;
use crate::error::Error;
use crate::host::Host;
use crate::host::deadline;
use crate::host::lock::{self, RunLock};
use crate::model::Family;

use super::ctx::{Ctx, Outcome};
use super::prepare::Prepared;

/// Snapshot what the apply is about to change and write the record (not armed yet).
pub(super) fn record(host: &Host, p: &Prepared, seconds: u64) -> Result<Pending, Error> {
    let prefix = p.desired.prefix.clone();
    let mut rules = Vec::new();
    for family in Family::ALL {
        match host.netfilter.save(family, "") {
            Ok(text) => rules.push((
                family.name().to_string(),
                revert::owned_lines(&prefix, &text),
            )),
            // Like observe: an unreadable IPv6 stack matters only when the state has IPv6.
            Err(_) if p.desired.ruleset(family).is_empty() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let now = now_unix();
    let rec = Pending {
        id: pending::new_id(),
        applied_unix: now,
        deadline_unix: now + seconds,
        seconds,
        prefix,
        rules,
        sysctls: revert::snapshot_sysctls(&p.plan.sysctls),
        files: revert::snapshot_files(host.files, &p.files)?,
        unit_enabled: p.unit_enabled(),
        revert: None,
    };
    rec.save(host.files)?;
    Ok(rec)
}

/// Arm the revert at the deadline (counted from now, after the apply). If that fails, the
/// change is put back at once: an apply that asked for a safety net never stays without one.
pub(super) fn arm(
    ctx: &Ctx,
    host: &Host,
    rec: &mut Pending,
    out: &mut Outcome,
) -> Result<(), Error> {
    rec.deadline_unix = now_unix() + rec.seconds;
    let argv = deadline::revert_argv(&host.binary.unit_binary(), &ctx.root, &rec.id);
    let stem = deadline::unit_stem(&rec.id);
    let description = "pfstate: put back the state applied with --confirm";
    // systemd when it runs (never under --root: that manager is offline), else a process.
    let armed = match host
        .services
        .start_timer(&stem, rec.seconds, &argv, description)
    {
        Ok(unit) => Ok(Revert::SystemdTimer { unit }),
        Err(_) => {
            let wait: Vec<String> = argv.iter().cloned().chain(["--wait".into()]).collect();
            host.binary
                .spawn_detached(&wait)
                .map(|pid| Revert::Process { pid })
        }
    };
    let armed = match armed {
        Ok(a) => a,
        Err(e) => {
            let back = revert_now(host, rec);
            return Err(crate::apply::rolled_back(e.into(), back));
        }
    };
    rec.revert = Some(armed);
    rec.save(host.files)?;
    out.set("confirm", rec.json());
    out.notes.push(format!(
        "pending: unless `pfstate confirm` runs by {} (in {} s), pfstate's previous state is put back",
        rfc3339(rec.deadline_unix),
        rec.seconds
    ));
    Ok(())
}

/// `pfstate confirm`: keep the pending change.
pub(super) fn confirm(ctx: &Ctx, host: &Host) -> Result<Outcome, Error> {
    let _lock = RunLock::acquire(&ctx.root, lock::DEFAULT_LOCK_TIMEOUT)?;
    let Some(p) = Pending::load(host.files)? else {
        return Err(Error::Usage(nothing_pending(host)?));
    };
    let mut out = Outcome {
        changed: true,
        ..Outcome::default()
    };
    // The revert checks the record first, and the record goes now: a timer left is harmless.
    if let Some(Revert::SystemdTimer { unit }) = &p.revert
        && let Err(e) = host.services.stop_timer(unit)
    {
        out.warnings.push(format!("could not stop {unit}: {e}"));
    }
    // A detached process sees the record gone at its next poll and exits.
    p.finish(host.files, "confirmed")?;
    out.set(
        "confirmed",
        json!({"applied_at": rfc3339(p.applied_unix), "deadline": rfc3339(p.deadline_unix)}),
    );
    out.notes.push(format!(
        "confirmed: the state applied at {} stays",
        rfc3339(p.applied_unix)
    ));
    Ok(out)
}

fn nothing_pending(host: &Host) -> Result<String, Error> {
    Ok(match Last::load(host.files)? {
        Some(l) if l.outcome == "reverted" => format!(
            "nothing to confirm: the change was not confirmed by its deadline {} and was put back at {}",
            rfc3339(l.deadline_unix),
            rfc3339(l.at_unix)
        ),
        Some(l) if l.outcome == "confirmed" => format!(
            "nothing to confirm: the last change applied with --confirm was confirmed at {}",
            rfc3339(l.at_unix)
        ),
        _ => "nothing to confirm: no `pfstate apply --confirm` is pending".to_string(),
    })
}

/// `pfstate confirm --revert ID [--wait]`: what the timer or the detached process runs.
pub(super) fn revert(ctx: &Ctx, host: &Host, id: &str, wait: bool) -> Result<Outcome, Error> {
    let mut out = Outcome::default();
    if wait && !pending::wait_for_deadline(host.files, id) {
        out.notes
            .push("confirmed meanwhile: nothing to put back".into());
        return Ok(out);
    }
    let _lock = RunLock::acquire(&ctx.root, lock::DEFAULT_LOCK_TIMEOUT)?;
    match Pending::load(host.files)? {
        Some(p) if p.id == id => {
            revert_now(host, &p)?;
            out.changed = true;
            out.notes.push(format!(
                "not confirmed by {}: put back pfstate's state from before {}",
                rfc3339(p.deadline_unix),
                rfc3339(p.applied_unix)
            ));
        }
        _ => out
            .notes
            .push("confirmed meanwhile: nothing to put back".into()),
    }
    Ok(out)
}

/// Put the recorded state back and close the record (also when a step failed: the error says
/// what is left, and a stale record would refuse every later apply).
pub(super) fn revert_now(host: &Host, p: &Pending) -> Result<(), Error> {
    let result = revert::revert(host, p);
    let outcome = if result.is_ok() {
        "reverted"
    } else {
        "revert failed"
    };
    p.finish(host.files, outcome)?;
    result
}
