//! Stage ④: a [`Plan`] -> the machine, all or nothing.
//!
//! A multi-table restore is not one transaction (each COMMIT stands alone), IPv4 and IPv6 are
//! two restores, and sysctls, files and the unit are more steps. So every change runs inside a
//! [`txn::Transaction`]: the state it started from is journalled on disk first, and a failed
//! step or a signal puts all of it back ([`signals`], [`txn`]).

pub mod conntrack;
pub mod pending;
pub mod revert;
pub mod signals;
pub mod snapshot;
pub mod txn;
pub mod units;

use crate::error::Error;
use crate::host::Host;
use crate::host::sysctl_before::{self, Record, SYSCTL_BEFORE_PATH};
use crate::model::{Family, Model};
use crate::names;
use crate::plan::observe::Observed;
use crate::plan::{Plan, SysctlChange};
use crate::render::files::ManagedFile;
use crate::ruleset::dump::{self, Saved};
use crate::ruleset::{Chain, Jump, Ruleset, TABLES, TableRules};
use txn::Transaction;

/// What an apply did.
#[derive(Debug, Default)]
pub struct Report {
    pub restored_families: Vec<Family>,
    /// Families whose copy in the other iptables backend was removed.
    pub other_backend_cleaned: Vec<Family>,
    pub sysctls_set: Vec<String>,
    /// Managed files written or removed.
    pub files_changed: Vec<&'static str>,
}

/// The kernel part of a plan, in an order that never leaves `route_localnet` on without its
/// guard rule (issue 11): record the sysctls about to change (persisted before any is
/// changed); put back the ones no entry needs any more (route_localnet off before its guard
/// goes); one restore per family that changes and the removal of pfstate's copy in the other
/// iptables backend; the desired sysctls (route_localnet on after its guard is in); the record
/// without the keys put back. Each write is a step of `txn` (whose put-back runs the same
/// order backwards); the caller finishes it.
pub fn apply(host: &Host, txn: &Transaction, plan: &Plan) -> Result<Report, Error> {
    let mut report = Report::default();
    let s = &plan.sysctls;
    store_record(host, txn, &s.record_before, &s.record_during)?;
    for c in &s.restores {
        set_sysctl(host, txn, c, &mut report)?;
    }
    for fp in plan.families.iter().filter(|f| !f.is_empty()) {
        txn.step()?;
        host.netfilter.restore(fp.family, &fp.payload())?;
        report.restored_families.push(fp.family);
    }
    if let Some(other) = host.netfilter.other_backend() {
        for fp in &plan.other_backend {
            txn.step()?;
            other.restore(fp.family, &fp.payload())?;
            report.other_backend_cleaned.push(fp.family);
        }
    }
    for c in s.changes.iter().filter(|c| c.live.is_some()) {
        set_sysctl(host, txn, c, &mut report)?;
    }
    store_record(host, txn, &s.record_during, &s.record_after)?;
    Ok(report)
}

fn set_sysctl(
    host: &Host,
    txn: &Transaction,
    c: &SysctlChange,
    report: &mut Report,
) -> Result<(), Error> {
    txn.step()?;
    host.sysctl
        .set(&c.setting.key.proc_path(), &c.setting.value)?;
    report
        .sysctls_set
        .push(format!("{} = {}", c.setting.key, c.setting.value));
    Ok(())
}

/// Replace the record of the values pfstate found (`now` -> `want`); an empty one removes
/// the file. The transaction journalled the record as it was (see `cmd::prepare`).
fn store_record(host: &Host, txn: &Transaction, now: &Record, want: &Record) -> Result<(), Error> {
    if now == want {
        return Ok(());
    }
    txn.step()?;
    if want.is_empty() {
        host.files.remove(SYSCTL_BEFORE_PATH)?;
    } else {
        host.files
            .write(SYSCTL_BEFORE_PATH, &sysctl_before::render(want))?;
    }
    Ok(())
}

/// Make the managed files hold what `files` says (`None`: absent), each write a step of
/// `txn`; `live` is what they hold now. Adds each file changed to `report`.
pub fn converge_files(
    host: &Host,
    txn: &Transaction,
    files: &[ManagedFile],
    live: impl Fn(&str) -> Option<String>,
    report: &mut Report,
) -> Result<(), Error> {
    for f in files {
        if live(f.target) == f.content {
            continue;
        }
        txn.step()?;
        match &f.content {
            Some(c) => host.files.write(f.target, c)?,
            None => {
                host.files.remove(f.target)?;
            }
        }
        report.files_changed.push(f.target);
    }
    Ok(())
}

/// After a committed apply: flush the conntrack entries of changed forwards (warnings only:
/// a flow that survives is not a reason to undo the rules). Returns the warnings and how many
/// active connections of each entry were cut.
pub fn flush_conntrack(
    host: &Host,
    model: &Model,
    observed: &Observed,
    plan: &Plan,
) -> (Vec<String>, Vec<(String, usize)>) {
    let listens = conntrack::stale_listens(model, observed, plan);
    if listens.is_empty() {
        return (Vec::new(), Vec::new());
    }
    conntrack::flush_all(host.conntrack, &listens)
}

/// The error of a step that failed, saying what state the rollback left the host in.
pub fn rolled_back(cause: Error, rollback: Result<(), Error>) -> Error {
    match rollback {
        Ok(()) => Error::RolledBack {
            cause: Box::new(cause),
        },
        Err(rb) => Error::RollbackFailed {
            cause: Box::new(cause),
            failed: vec![rb.to_string()],
        },
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
