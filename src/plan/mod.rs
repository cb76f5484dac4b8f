//! Stage ③: desired state x observed host -> what to change ([`Plan`]).
//!
//! - [`observe`] - every read of the host (rules of both families, ...);
//! - [`rules`] - the per-family rule diff and its restore payload;
//! - [`placement`] - where a jump goes relative to other systems' rules;
//! - [`coexist`] - warnings about foreign rules that claim the same ports;
//! - [`backends`] - pfstate's copy in the other iptables backend, removed;
//! - [`ssh_guard`] - warnings about filter entries that would cut the operator off;
//! - [`managers`] - warnings about the managers that flush or bypass pfstate's rules;
//! - [`units`] - the companion units' enablement and its plan lines;
//! - [`host_facts`] - warnings where the live host contradicts what the file states;
//! - [`other_states`] - other pfstate states on the same kernel (their sysctls stay);
//! - [`sysctls`] - runtime sysctls to set, and to put back as pfstate found them;
//! - [`packaged_unit`] - with the package's unit installed, apply enables it, writes no copy;
//! - [`view`] - the unified diffs a reviewer reads.

pub mod backends;
pub mod coexist;
pub mod host_facts;
mod jumps;
pub mod managers;
pub mod observe;
pub mod other_states;
pub mod packaged_unit;
mod payload;
pub mod placement;
pub mod rules;
pub mod ssh_guard;
pub mod sysctls;
pub mod units;
pub mod view;

use crate::model::Family;
use crate::render::Desired;
use observe::Observed;
use rules::FamilyPlan;

pub use rules::plan_family;
pub use sysctls::{SysctlChange, SysctlPlan};

#[derive(Debug, Clone)]
pub struct Plan {
    pub families: Vec<FamilyPlan>,
    /// Removal of pfstate's chains from the other iptables backend (only families that
    /// hold some).
    pub other_backend: Vec<FamilyPlan>,
    pub sysctls: SysctlPlan,
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
        self.sysctls.has_changes()
    }
}

/// What to change so the host matches `desired`. Pure: everything live comes in `observed`.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let families = Family::ALL
        .iter()
        .map(|f| rules::plan_family(&desired.prefix, desired.ruleset(*f), observed.saved(*f)))
        .collect();
    let mut warnings = observed.warnings.clone();
    let other_backend = backends::remove_other_copy(&desired.prefix, observed);
    warnings.extend(backends::warning(&other_backend, observed));
    let sysctls = sysctls::plan_sysctls(desired, observed);
    warnings.extend(sysctls.warnings.iter().cloned());
    if observed_forwarding_off(desired, observed) {
        warnings.push("an interface has forwarding=0 although ip_forward=1: writing ip_forward resets the per-interface flags only on a 0->1 change; check `sysctl net.ipv4.conf`".into());
    }
    Plan {
        families,
        other_backend,
        sysctls,
        warnings,
    }
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
