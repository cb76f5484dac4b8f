//! Stage ④: a [`Plan`] -> the machine, all or nothing.
//!
//! A multi-table restore is not one transaction (each COMMIT stands alone), and IPv4 and
//! IPv6 are two restores. So apply keeps the live owned state it started from and a list of
//! the steps it took; if any step fails it takes them back newest first (the kernel converges
//! back to that snapshot, sysctls and the record of their earlier values get their old values):
//! nothing is left half-applied.

pub mod conntrack;
pub mod journal;
pub mod pending;
pub mod revert;

use crate::error::Error;
use crate::host::Host;
use crate::host::sysctl_before::{self, Record, SYSCTL_BEFORE_PATH};
use crate::model::{Family, Model};
use crate::plan::observe::Observed;
use crate::plan::rules;
use crate::plan::{Plan, SysctlChange};
use crate::render::Desired;
use crate::ruleset::dump;

/// What an apply did.
#[derive(Debug, Default)]
pub struct Report {
    pub restored_families: Vec<Family>,
    pub sysctls_set: Vec<String>,
    pub warnings: Vec<String>,
    /// Active connections cut by the conntrack flush, per entry.
    pub cut: Vec<(String, usize)>,
    /// Every step taken, in order, with what it replaced: undone newest first.
    done: Vec<Done>,
}

/// One step of an apply and what it replaced.
#[derive(Debug)]
enum Done {
    Record(Record),
    Sysctl { key: String, old: String },
    Rules(Family),
}

/// Apply a plan, in an order that never leaves `route_localnet` on without its guard rule:
/// record the sysctls about to change (persisted before any is changed); put back the ones no
/// entry needs any more (route_localnet off before its guard goes); the kernel rules (one
/// restore per family that changes); the desired sysctls (route_localnet on after its guard is
/// in); the record without the keys put back; then the conntrack flush of changed forwards.
/// Any failure undoes the steps taken, newest first, so the same order holds backwards.
pub fn apply(
    host: &Host,
    model: &Model,
    desired: &Desired,
    observed: &Observed,
    plan: &Plan,
) -> Result<Report, Error> {
    let mut report = Report::default();
    if let Err(cause) = steps(host, plan, &mut report) {
        let back = undo_steps(host, &desired.prefix, observed, &mut report.done);
        return Err(rolled_back(cause, back));
    }
    let listens = conntrack::stale_listens(model, observed, plan);
    if !listens.is_empty() {
        report.cut = conntrack::count_cut(host.conntrack, &listens).unwrap_or_default();
    }
    report
        .warnings
        .extend(conntrack::flush_all(host.conntrack, &listens));
    Ok(report)
}

fn steps(host: &Host, plan: &Plan, report: &mut Report) -> Result<(), Error> {
    let s = &plan.sysctls;
    let mut record = s.record_before.clone();
    store_record(host, &mut record, &s.record_during, report)?;
    for c in &s.restores {
        set_sysctl(host, c, report)?;
    }
    for fp in plan.families.iter().filter(|f| !f.is_empty()) {
        report.done.push(Done::Rules(fp.family));
        host.netfilter.restore(fp.family, &fp.payload())?;
        report.restored_families.push(fp.family);
    }
    for c in s.changes.iter().filter(|c| c.live.is_some()) {
        set_sysctl(host, c, report)?;
    }
    store_record(host, &mut record, &s.record_after, report)
}

fn store_record(
    host: &Host,
    current: &mut Record,
    want: &Record,
    report: &mut Report,
) -> Result<(), Error> {
    if current != want {
        report.done.push(Done::Record(current.clone()));
        store(host, want)?;
        *current = want.clone();
    }
    Ok(())
}

/// Write the record of values pfstate found; an empty one removes the file.
fn store(host: &Host, record: &Record) -> Result<(), Error> {
    if record.is_empty() {
        host.files.remove(SYSCTL_BEFORE_PATH)?;
    } else {
        host.files
            .write(SYSCTL_BEFORE_PATH, &sysctl_before::render(record))?;
    }
    Ok(())
}

fn set_sysctl(host: &Host, c: &SysctlChange, report: &mut Report) -> Result<(), Error> {
    let key = c.setting.key.proc_path();
    if let Some(old) = &c.live {
        report.done.push(Done::Sysctl {
            key: key.clone(),
            old: old.clone(),
        });
    }
    host.sysctl.set(&key, &c.setting.value)?;
    report
        .sysctls_set
        .push(format!("{} = {}", c.setting.key, c.setting.value));
    Ok(())
}

/// The error of a step that failed, saying what state the rollback left the host in.
pub fn rolled_back(cause: Error, rollback: Result<(), Error>) -> Error {
    match rollback {
        Ok(()) => Error::RolledBack {
            cause: Box::new(cause),
        },
        Err(rb) => Error::RollbackFailed {
            cause: Box::new(cause),
            rollback: Box::new(rb),
        },
    }
}

/// Undo a completed apply (for a later step, files or unit, that failed): every step it took,
/// newest first.
pub fn undo(
    host: &Host,
    prefix: &str,
    before: &Observed,
    report: &mut Report,
) -> Result<(), Error> {
    undo_steps(host, prefix, before, &mut report.done)
}

/// Take back the steps newest first: the kernel converges back to the owned state observed
/// before apply, sysctls and the record get their previous values. Every step is tried; the
/// first failure is returned.
fn undo_steps(
    host: &Host,
    prefix: &str,
    before: &Observed,
    done: &mut Vec<Done>,
) -> Result<(), Error> {
    let mut first: Result<(), Error> = Ok(());
    while let Some(step) = done.pop() {
        let r = match step {
            Done::Record(old) => store(host, &old),
            Done::Sysctl { key, old } => host.sysctl.set(&key, &old).map_err(Error::from),
            Done::Rules(family) => rules_back(host, prefix, before, family),
        };
        if first.is_ok() {
            first = r;
        }
    }
    first
}

fn rules_back(host: &Host, prefix: &str, before: &Observed, family: Family) -> Result<(), Error> {
    let target = rules::ruleset_from_live(prefix, family, before.saved(family));
    let now = dump::parse(&host.netfilter.save(family, "")?);
    let back = rules::plan_family(prefix, &target, &now);
    if !back.is_empty() {
        host.netfilter.restore(family, &back.payload())?;
    }
    Ok(())
}
