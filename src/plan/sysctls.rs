//! The sysctl part of a plan: desired values that differ from the live ones, and the values
//! pfstate found before it changed a sysctl that no entry needs any more (put back), with the
//! record of those values as it must be before and after the apply.

use std::collections::BTreeSet;

use super::observe::Observed;
use super::other_states;
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
    let mut p = SysctlPlan {
        record_during: observed.sysctl_before.clone(),
        record_before: observed.sysctl_before.clone(),
        ..SysctlPlan::default()
    };
    let mut view = (String::new(), String::new());
    desired_values(&mut p, &mut view, desired, observed);
    let others = other_states::other_prefixes(&desired.prefix, observed);
    recorded_values(&mut p, &mut view, desired, observed, &others);
    unguarded_route_localnet(&mut p, &mut view, desired, observed, &others);
    p.view = view;
    p
}

type View = (String, String);

fn live_of(observed: &Observed, path: &str) -> Option<String> {
    observed.sysctls.get(path).cloned().flatten()
}

fn is_desired(desired: &Desired, path: &str) -> bool {
    desired.sysctls.iter().any(|s| s.key.proc_path() == path)
}

fn key_of(path: &str) -> SysctlKey {
    SysctlKey(path.split('/').map(str::to_string).collect())
}

/// Desired values that differ; the live value of each is recorded before its first change.
fn desired_values(p: &mut SysctlPlan, view: &mut View, desired: &Desired, observed: &Observed) {
    for s in &desired.sysctls {
        let path = s.key.proc_path();
        let live = live_of(observed, &path);
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
                view.0.push_str(&format!("# {} (absent)\n", s.key));
            }
            Some(v) => view.0.push_str(&format!("{} = {v}\n", s.key)),
        }
        view.1.push_str(&format!("{} = {}\n", s.key, s.value));
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
}

/// Recorded sysctls no entry needs any more go back to the value pfstate found.
fn recorded_values(
    p: &mut SysctlPlan,
    view: &mut View,
    desired: &Desired,
    observed: &Observed,
    others: &BTreeSet<String>,
) {
    let record = p.record_before.clone();
    for (path, found) in &record {
        // A sysctl that is gone (its interface removed) or already back needs nothing.
        let Some(live) = live_of(observed, path).filter(|_| !is_desired(desired, path)) else {
            continue;
        };
        if normalize(&live) == normalize(found) {
            continue;
        }
        let key = key_of(path);
        if let Some(why) = still_needed(&key, others, observed) {
            p.warnings.push(format!(
                "sysctl {key}: left at {live} (pfstate found {found}): {why}"
            ));
            continue;
        }
        put_back(p, view, key, &live, found, "as pfstate found it");
    }
}

/// One sysctl to put back from `live` to `value`, and the lines of the view that say why.
fn put_back(
    p: &mut SysctlPlan,
    view: &mut View,
    key: SysctlKey,
    live: &str,
    value: &str,
    why: &str,
) {
    view.0.push_str(&format!("{key} = {live}\n"));
    view.1.push_str(&format!("{key} = {value} ({why})\n"));
    p.restores.push(SysctlChange {
        setting: SysctlSetting {
            key,
            value: value.to_string(),
        },
        live: Some(live.to_string()),
    });
}

/// An interface this state guards now but no longer needs: route_localnet goes off with the
/// guard even where pfstate found it on already (another state's record, lost with its
/// remove), unless another state still guards it.
fn unguarded_route_localnet(
    p: &mut SysctlPlan,
    view: &mut View,
    desired: &Desired,
    observed: &Observed,
    others: &BTreeSet<String>,
) {
    for iface in other_states::guarded_interfaces(&desired.prefix, observed) {
        let path = other_states::route_localnet_key(&iface);
        if p.record_before.contains_key(&path)
            || is_desired(desired, &path)
            || live_of(observed, &path).as_deref().map(str::trim) != Some("1")
            || other_states::guards(others, &iface, observed)
        {
            continue;
        }
        put_back(p, view, key_of(&path), "1", "0", "off: its guard rule goes");
    }
}

/// Why a sysctl this state no longer needs must stay: another pfstate state is live on this
/// host (it may need it too). A `route_localnet` goes back anyway unless that state guards
/// the interface: it is never left on without a guard.
fn still_needed(key: &SysctlKey, others: &BTreeSet<String>, observed: &Observed) -> Option<String> {
    if others.is_empty() {
        return None;
    }
    if key.0.last().is_some_and(|c| c == "route_localnet") {
        let iface = key.interface()?;
        if !other_states::guards(others, iface, observed) {
            return None;
        }
    }
    let names: Vec<&str> = others.iter().map(String::as_str).collect();
    Some(format!(
        "another pfstate state ({}) is live on this host and may need it",
        names.join(", ")
    ))
}

/// Kernel sysctl values print tabs between fields; compare them by their words.
pub fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}
