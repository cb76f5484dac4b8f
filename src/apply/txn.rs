//! One `apply` or `remove` as a transaction over everything it may change: the owned rules of
//! both families, the sysctls, the managed files and the unit's enablement.
//!
//! Before the first change, the state it started from ([`PreState`]) is written to an on-disk
//! journal; it is removed when every step succeeded. A step that fails, or a SIGTERM, SIGINT
//! or SIGHUP seen between steps, puts everything back to that state, each part on its own, so
//! one part that cannot be put back does not stop the others, and the error names exactly the
//! parts that could not. After a SIGKILL or a power loss the journal is still there: the next
//! run (the boot unit too) puts the host back to it first, then converges as usual.

use serde::{Deserialize, Serialize};

use crate::apply::signals;
use crate::apply::snapshot::FamilyBefore;
use crate::error::{Error, HostError};
use crate::host::{Host, Netfilter};
use crate::model::Family;
use crate::plan::Plan;
use crate::plan::observe::Observed;
use crate::plan::rules::{self, FamilyPlan};
use crate::render::files::unit::{UNIT_NAME, UNIT_PATH};
use crate::ruleset::dump::{self, Saved};

/// Where the journal of a running transaction lives (persistent: it must survive a power loss
/// that leaves the files half-converged).
pub const JOURNAL_PATH: &str = "/var/lib/pfstate/transaction.json";

/// Everything a transaction may change, as it was before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreState {
    pub prefix: String,
    /// The owned rules the transaction changes, per family it writes.
    pub rules: Vec<FamilyBefore>,
    /// The same in the other iptables backend (see `plan::backends`).
    #[serde(default)]
    pub other_rules: Vec<FamilyBefore>,
    /// /proc/sys key and the value it held.
    pub sysctls: Vec<(String, String)>,
    /// Managed file and what it held (`None`: absent).
    pub files: Vec<(String, Option<String>)>,
    /// Whether the unit was enabled (`None`: not touched by this transaction).
    pub unit_enabled: Option<bool>,
}

impl PreState {
    /// The state a transaction of `plan`, made from `observed`, starts in: what it changes
    /// of the owned rules (both backends), the sysctls it sets, the files it converges and
    /// the unit.
    pub fn capture(
        prefix: &str,
        observed: &Observed,
        plan: &Plan,
        files: &[&'static str],
        unit_enabled: Option<bool>,
    ) -> PreState {
        let part = |fp: &FamilyPlan, saved: Option<&Saved>| {
            saved.map(|s| FamilyBefore::capture(prefix, fp, s))
        };
        let other_saved = |f: Family| observed.other.iter().find(|(g, _)| *g == f).map(|(_, s)| s);
        PreState {
            prefix: prefix.to_string(),
            rules: (plan.families.iter().filter(|fp| !fp.is_empty()))
                .filter_map(|fp| part(fp, Some(observed.saved(fp.family))))
                .collect(),
            other_rules: (plan.other_backend.iter())
                .filter_map(|fp| part(fp, other_saved(fp.family)))
                .collect(),
            // Sysctls put back as found, then those set: both kinds are journalled.
            sysctls: (plan.sysctls.restores.iter().chain(&plan.sysctls.changes))
                .filter_map(|c| Some((c.setting.key.proc_path(), c.live.clone()?)))
                .collect(),
            files: files
                .iter()
                .map(|t| (t.to_string(), observed.file(t).map(str::to_string)))
                .collect(),
            unit_enabled,
        }
    }
}

/// A transaction in progress; [`Transaction::finish`] commits it or puts everything back.
pub struct Transaction<'h> {
    host: Host<'h>,
    pre: PreState,
}

impl<'h> Transaction<'h> {
    /// Journal `pre` before anything changes. Nothing has changed when this fails.
    pub fn begin(host: Host<'h>, pre: PreState) -> Result<Transaction<'h>, Error> {
        if let Err(e) = signals::check() {
            return Err(Error::RolledBack { cause: Box::new(e) });
        }
        let text = serde_json::to_string(&pre).map_err(|e| HostError::Command {
            program: "pfstate".into(),
            message: format!("cannot encode the transaction journal: {e}"),
        })?;
        if let Err(e) = host.files.write(JOURNAL_PATH, &text) {
            // Nothing changed yet; a partial journal file is gone with the failed write.
            return Err(Error::RolledBack {
                cause: Box::new(e.into()),
            });
        }
        Ok(Transaction { host, pre })
    }

    /// Called before each change: a signal caught since the last step ends the transaction
    /// here, and everything done so far is put back.
    pub fn step(&self) -> Result<(), Error> {
        signals::check()
    }

    /// Commit (remove the journal) when `result` is a success; otherwise, or when the journal
    /// cannot be removed, put everything back and say what could not be.
    pub fn finish<T>(self, result: Result<T, Error>) -> Result<T, Error> {
        let cause = match result {
            Ok(v) => match self.host.files.remove(JOURNAL_PATH) {
                Ok(_) => return Ok(v),
                Err(e) => Error::from(e),
            },
            Err(cause) => cause,
        };
        let failed = put_back(&self.host, &self.pre);
        if failed.is_empty() {
            let _ = self.host.files.remove(JOURNAL_PATH);
            return Err(Error::RolledBack {
                cause: Box::new(cause),
            });
        }
        Err(Error::RollbackFailed {
            cause: Box::new(cause),
            failed,
        })
    }
}

/// Finish a transaction a previous run left behind (killed, or the power went): put the host
/// back to the state it started from, then drop the journal. `Ok(None)`: there was none.
///
/// At boot (`at_boot`) the unit's enablement is left alone: the boot apply runs before
/// dbus.service, where asking systemd would wait for the bus, and the unit that runs it is
/// enabled by definition.
pub fn recover(host: &Host, at_boot: bool) -> Result<Option<String>, Error> {
    let Some(text) = host.files.read(JOURNAL_PATH)? else {
        return Ok(None);
    };
    let pre: PreState = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{JOURNAL_PATH}: an interrupted run left a journal that cannot be read ({e}); check the host with `pfstate plan`, then delete the file"
        ))
    })?;
    let mut pre = pre;
    if at_boot {
        pre.unit_enabled = None;
    }
    let failed = put_back(host, &pre);
    if !failed.is_empty() {
        return Err(Error::RecoveryFailed { failed });
    }
    host.files.remove(JOURNAL_PATH)?;
    Ok(Some(
        "an interrupted pfstate run was found (journal): its changes were put back first".into(),
    ))
}

/// Put every part of the host back to `pre`, newest kind first (unit, files, sysctls, rules),
/// each part on its own. Returns what could not be put back, in words.
pub fn put_back(host: &Host, pre: &PreState) -> Vec<String> {
    let mut failed = Vec::new();
    let mut unit_file_back = false;
    for (target, old) in pre.files.iter().rev() {
        match put_file_back(host, target, old.as_deref()) {
            Ok(changed) => unit_file_back |= changed && target == UNIT_PATH,
            Err(e) => failed.push(format!("{target}: {e}")),
        }
    }
    if let Err(e) = put_unit_back(host, pre.unit_enabled, unit_file_back) {
        failed.push(format!("unit {UNIT_NAME}: {e}"));
    }
    // route_localnet back on (a change had turned it off) only after the rules have its guard
    // back; every other sysctl, route_localnet back off included, before the rules (issue 11).
    let (after_rules, before_rules): (Vec<_>, Vec<_>) = pre
        .sysctls
        .iter()
        .rev()
        .partition(|(key, old)| key.ends_with("/route_localnet") && old.trim() != "0");
    put_sysctls_back(host, &before_rules, &mut failed);
    if let Some(other) = host.netfilter.other_backend() {
        for family in Family::ALL.into_iter().rev() {
            if let Err(e) = put_rules_back(other, pre, family, true) {
                let name = other.backend_name();
                failed.push(format!("{family} rules in the {name} backend: {e}"));
            }
        }
    }
    for family in Family::ALL.into_iter().rev() {
        if let Err(e) = put_rules_back(host.netfilter, pre, family, false) {
            failed.push(format!("{family} rules: {e}"));
        }
    }
    put_sysctls_back(host, &after_rules, &mut failed);
    failed
}

fn put_sysctls_back(host: &Host, sysctls: &[&(String, String)], failed: &mut Vec<String>) {
    for (key, old) in sysctls {
        let now = host.sysctl.get(key);
        if now
            .as_ref()
            .is_ok_and(|v| v.as_deref() == Some(old.as_str()))
        {
            continue;
        }
        if let Err(e) = host.sysctl.set(key, old) {
            failed.push(format!(
                "sysctl {} (should be {old}): {e}",
                key.replace('/', ".")
            ));
        }
    }
}

/// Returns whether the file had to be put back.
fn put_file_back(host: &Host, target: &str, old: Option<&str>) -> Result<bool, HostError> {
    if host.files.read(target)?.as_deref() == old {
        return Ok(false);
    }
    match old {
        Some(c) => host.files.write(target, c)?,
        None => {
            host.files.remove(target)?;
        }
    }
    Ok(true)
}

/// The unit as it was; `None`: the unit is not this transaction's to touch (nor systemd to
/// ask: the boot apply), even when its file was put back.
fn put_unit_back(host: &Host, was: Option<bool>, reload: bool) -> Result<(), HostError> {
    let Some(was) = was else {
        return Ok(());
    };
    if reload {
        host.services.reload()?;
    }
    if host.services.is_enabled(UNIT_NAME)? == was {
        return Ok(());
    }
    if was {
        host.services.enable(UNIT_NAME)
    } else {
        host.services.disable(UNIT_NAME)
    }
}

fn put_rules_back(
    netfilter: &dyn Netfilter,
    pre: &PreState,
    family: Family,
    other: bool,
) -> Result<(), HostError> {
    let parts = if other { &pre.other_rules } else { &pre.rules };
    // A family the transaction does not write needs nothing put back.
    let Some(part) = parts.iter().find(|p| p.family() == Some(family)) else {
        return Ok(());
    };
    let now = dump::parse(&netfilter.save(family, "")?);
    let target = part.target(&pre.prefix, family, &now);
    let back = rules::plan_family(&pre.prefix, &target, &now);
    if back.is_empty() {
        return Ok(());
    }
    netfilter.restore(family, &back.payload())
}
