//! Stage ③: desired state x observed host -> what to change ([`Plan`]).
//!
//! - [`observe`] - every read of the host (rules of both families, ...);
//! - [`rules`] - the per-family rule diff and its restore payload;
//! - [`placement`] - where a jump goes relative to other systems' rules;
//! - [`coexist`] - warnings about foreign rules that claim the same ports;
//! - [`backends`] - pfstate's copy in the other iptables backend, removed;
//! - [`ssh_guard`] - warnings about filter entries that would cut the operator off;
//! - [`packaged_unit`] - with the package's unit installed, apply enables it, writes no copy;
//! - [`view`] - the unified diffs a reviewer reads.

pub mod backends;
pub mod coexist;
mod jumps;
pub mod observe;
pub mod packaged_unit;
mod payload;
pub mod placement;
pub mod rules;
pub mod ssh_guard;
pub mod view;

use crate::model::{Family, Sysctl as SysctlSetting};
use crate::render::Desired;
use observe::Observed;
use rules::FamilyPlan;

pub use rules::plan_family;

/// One runtime sysctl that differs (or whose interface is missing: `live == None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlChange {
    pub setting: SysctlSetting,
    pub live: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub families: Vec<FamilyPlan>,
    /// Removal of pfstate's chains from the other iptables backend (only families that
    /// hold some).
    pub other_backend: Vec<FamilyPlan>,
    pub sysctls: Vec<SysctlChange>,
    /// Every desired sysctl with its live value, for the plan's view.
    pub sysctl_view: (String, String),
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn kernel_changes(&self) -> bool {
        self.families
            .iter()
            .chain(&self.other_backend)
            .any(|f| !f.is_empty())
    }
    pub fn sysctl_changes(&self) -> bool {
        self.sysctls.iter().any(|c| c.live.is_some())
    }
}

/// What to change so the host matches `desired`. Pure: everything live comes in `observed`.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let families = Family::ALL
        .iter()
        .map(|f| rules::plan_family(&desired.prefix, desired.ruleset(*f), observed.saved(*f)))
        .collect();
    let mut warnings = observed.warnings.clone();
    warnings.extend(desired.warnings.iter().cloned());
    let other_backend = backends::remove_other_copy(&desired.prefix, observed);
    warnings.extend(backends::warning(&other_backend, observed));
    let mut changes = Vec::new();
    let (mut live_view, mut want_view) = (String::new(), String::new());
    for s in &desired.sysctls {
        let live = observed.sysctls.get(&s.key.proc_path()).cloned().flatten();
        match &live {
            None => {
                let what = s
                    .key
                    .interface()
                    .map(|i| format!("interface {i} does not exist (yet)"))
                    .unwrap_or_else(|| "no such key here".into());
                warnings.push(format!(
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
        if differs {
            changes.push(SysctlChange {
                setting: s.clone(),
                live,
            });
        }
    }
    if observed_forwarding_off(desired, observed) {
        warnings.push("an interface has forwarding=0 although ip_forward=1: writing ip_forward resets the per-interface flags only on a 0->1 change; check `sysctl net.ipv4.conf`".into());
    }
    Plan {
        families,
        other_backend,
        sysctls: changes,
        sysctl_view: (live_view, want_view),
        warnings,
    }
}

/// Kernel sysctl values print tabs between fields; compare them by their words.
fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A plan also reports an interface whose own `forwarding` flag is 0 (notes: S3) when
/// forwarding is wanted: ip_forward=1 alone does not route through it.
fn observed_forwarding_off(desired: &Desired, observed: &Observed) -> bool {
    let ip_forward = observed
        .sysctls
        .get("net/ipv4/ip_forward")
        .cloned()
        .flatten();
    observe::wants_forwarding(desired)
        && ip_forward.as_deref() == Some("1")
        && observed
            .forwarding
            .iter()
            .any(|(_, v)| v.as_deref() == Some("0"))
}
