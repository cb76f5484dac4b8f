//! The sysctl part of a plan: desired values that differ from the live ones, and the values
//! pfstate found before it changed a sysctl that no entry needs any more (put back), with the
//! record of those values as it must be before and after the apply.

use super::observe::Observed;
use crate::host::sysctl_before::Record;
use crate::model::{Sysctl as SysctlSetting, SysctlKey};
use crate::render::Desired;

/// One runtime sysctl that differs (or whose interface is missing: `live == None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlChange {
    pub setting: SysctlSetting,
    pub live: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SysctlPlan {
    /// Desired values that differ from the live ones.
    pub changes: Vec<SysctlChange>,
    /// Sysctls no entry needs any more, back to the value pfstate found (`setting.value`).
    pub restores: Vec<SysctlChange>,
    /// The record of values pfstate found, as read.
    pub record_before: Record,
    /// ... written before any change: the record plus the live values about to be changed.
    pub record_during: Record,
    /// ... and after a successful apply: only the keys still desired.
    pub record_after: Record,
    /// Every desired (or restored) sysctl with its live value, for the plan's view.
    pub view: (String, String),
    pub warnings: Vec<String>,
}

impl SysctlPlan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.live.is_some())
            || !self.restores.is_empty()
            || self.record_before != self.record_after
    }
}

/// Pure: the live values and the record come in `observed`.
pub fn plan_sysctls(desired: &Desired, observed: &Observed) -> SysctlPlan {
    let record_before = observed.sysctl_before.clone();
    let live_of = |path: &str| observed.sysctls.get(path).cloned().flatten();
    let mut p = SysctlPlan {
        record_during: record_before.clone(),
        record_before,
        ..SysctlPlan::default()
    };
    let (mut live_view, mut want_view) = (String::new(), String::new());
    for s in &desired.sysctls {
        let path = s.key.proc_path();
        let live = live_of(&path);
        match &live {
            None => {
                let what = s
                    .key
                    .interface()
                    .map(|i| format!("interface {i} does not exist (yet)"))
                    .unwrap_or_else(|| "no such key here".into());
                p.warnings.push(format!(
                    "sysctl {}: {what}; it is written to sysctl.d and applies when it appears",
                    s.key
                ));
                live_view.push_str(&format!("# {} (absent)\n", s.key));
            }
            Some(v) => live_view.push_str(&format!("{} = {v}\n", s.key)),
        }
        want_view.push_str(&format!("{} = {}\n", s.key, s.value));
        let differs = live
            .as_deref()
            .is_none_or(|v| normalize(v) != normalize(&s.value));
        if let (true, Some(v)) = (differs, &live) {
            p.record_during.entry(path.clone()).or_insert(v.clone());
        }
        if let Some(found) = p.record_during.get(&path) {
            p.record_after.insert(path, found.clone());
        }
        if differs {
            p.changes.push(SysctlChange {
                setting: s.clone(),
                live,
            });
        }
    }
    for (path, found) in &p.record_before {
        if desired.sysctls.iter().any(|s| s.key.proc_path() == *path) {
            continue;
        }
        let key = SysctlKey(path.split('/').map(str::to_string).collect());
        // A sysctl that is gone (its interface removed) or already back needs nothing.
        let Some(live) = live_of(path) else {
            continue;
        };
        if normalize(&live) == normalize(found) {
            continue;
        }
        live_view.push_str(&format!("{key} = {live}\n"));
        want_view.push_str(&format!("{key} = {found} (as pfstate found it)\n"));
        p.restores.push(SysctlChange {
            setting: SysctlSetting {
                key,
                value: found.clone(),
            },
            live: Some(live),
        });
    }
    p.view = (live_view, want_view);
    p
}

/// Kernel sysctl values print tabs between fields; compare them by their words.
pub fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}
