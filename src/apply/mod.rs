//! Stage ④: a [`Plan`] -> the machine, all or nothing.
//!
//! A multi-table restore is not one transaction (each COMMIT stands alone), and IPv4 and
//! IPv6 are two restores. So apply keeps the live owned state it started from, and if any
//! step fails it converges the kernel back to that snapshot and resets the sysctls it wrote:
//! nothing is left half-applied.

pub mod conntrack;
pub mod journal;
pub mod pending;
pub mod revert;

use crate::error::Error;
use crate::host::Host;
use crate::model::{Family, Model};
use crate::names;
use crate::plan::observe::Observed;
use crate::plan::rules;
use crate::plan::{Plan, SysctlChange};
use crate::render::Desired;
use crate::ruleset::dump::{self, Saved};
use crate::ruleset::{Chain, Jump, Ruleset, TABLES, TableRules};

/// What an apply did.
#[derive(Debug, Default)]
pub struct Report {
    pub restored_families: Vec<Family>,
    pub sysctls_set: Vec<String>,
    pub warnings: Vec<String>,
}

/// Apply a plan: kernel first (one restore per family that changes), then sysctls, then the
/// conntrack flush of changed forwards. Any failure puts the previous state back.
pub fn apply(
    host: &Host,
    model: &Model,
    desired: &Desired,
    observed: &Observed,
    plan: &Plan,
) -> Result<Report, Error> {
    let mut report = Report::default();
    let mut touched: Vec<Family> = Vec::new();
    let mut set: Vec<&SysctlChange> = Vec::new();
    let result = (|| -> Result<(), Error> {
        for fp in plan.families.iter().filter(|f| !f.is_empty()) {
            touched.push(fp.family);
            host.netfilter.restore(fp.family, &fp.payload())?;
            report.restored_families.push(fp.family);
        }
        for c in plan.sysctls.iter().filter(|c| c.live.is_some()) {
            set.push(c);
            host.sysctl
                .set(&c.setting.key.proc_path(), &c.setting.value)?;
            report
                .sysctls_set
                .push(format!("{} = {}", c.setting.key, c.setting.value));
        }
        Ok(())
    })();
    if let Err(cause) = result {
        return Err(rolled_back(
            cause,
            rollback(host, &desired.prefix, observed, &touched, &set),
        ));
    }
    let listens = conntrack::stale_listens(model, observed, plan);
    report
        .warnings
        .extend(conntrack::flush_all(host.conntrack, &listens));
    Ok(report)
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

/// Put the kernel and sysctls back as observed before an apply that completed (both
/// families, every sysctl change of the plan): for a later step (files, unit) that failed.
pub fn undo(host: &Host, prefix: &str, before: &Observed, plan: &Plan) -> Result<(), Error> {
    let changed: Vec<&SysctlChange> = plan.sysctls.iter().collect();
    rollback(host, prefix, before, &Family::ALL, &changed)
}

/// Converge the touched families back to the owned state observed before apply, and write
/// back the sysctls that were changed.
pub fn rollback(
    host: &Host,
    prefix: &str,
    before: &Observed,
    touched: &[Family],
    set: &[&SysctlChange],
) -> Result<(), Error> {
    for family in touched {
        let target = ruleset_from_live(prefix, *family, before.saved(*family));
        let now = dump::parse(&host.netfilter.save(*family, "")?);
        let back = rules::plan_family(prefix, &target, &now);
        if !back.is_empty() {
            host.netfilter.restore(*family, &back.payload())?;
        }
    }
    for c in set {
        if let Some(old) = &c.live {
            host.sysctl.set(&c.setting.key.proc_path(), old)?;
        }
    }
    Ok(())
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
