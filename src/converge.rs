//! Observe the live host, plan against the desired state, and apply with rollback.
//!
//! A multi-table restore is not one transaction (each COMMIT stands alone), and IPv4 and
//! IPv6 are two restores. So apply keeps the live owned state it started from, and if any
//! step fails it converges the kernel back to that snapshot and resets the sysctls it wrote:
//! nothing is left half-applied.

use crate::error::{Error, HostError};
use crate::host::{Netfilter, Sysctl};
use crate::iptsave::{self, Saved};
use crate::model::{Family, Model, Sysctl as SysctlSetting};
use crate::plan::{self, FamilyPlan};
use crate::render::Desired;

/// The machine as pfstate reaches it.
pub struct Host<'a> {
    pub netfilter: &'a dyn Netfilter,
    pub sysctl: &'a dyn Sysctl,
}

/// The live state of both families.
pub struct Observed {
    pub saved: Vec<(Family, Saved)>,
    pub warnings: Vec<String>,
}

impl Observed {
    pub fn saved(&self, family: Family) -> &Saved {
        &self
            .saved
            .iter()
            .find(|(f, _)| *f == family)
            .expect("both families observed")
            .1
    }
}

/// Read both families with one `iptables-save` each. An IPv6 stack that cannot be read is
/// only an error when the desired state has IPv6 rules.
pub fn observe(host: &Host, desired: &Desired) -> Result<Observed, HostError> {
    let mut saved = Vec::new();
    let mut warnings = Vec::new();
    for family in Family::ALL {
        match host.netfilter.save(family, "") {
            Ok(text) => saved.push((family, iptsave::parse(&text))),
            Err(e) if family == Family::V6 && desired.ruleset(family).is_empty() => {
                warnings.push(format!("cannot read IPv6 rules ({e}); skipping IPv6"));
                saved.push((family, Saved::default()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Observed { saved, warnings })
}

/// One runtime sysctl that differs (or whose interface is missing: `live == None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlChange {
    pub setting: SysctlSetting,
    pub live: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub families: Vec<FamilyPlan>,
    pub sysctls: Vec<SysctlChange>,
    /// Every desired sysctl with its live value, for the plan's view.
    pub sysctl_view: (String, String),
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn kernel_changes(&self) -> bool {
        self.families.iter().any(|f| !f.is_empty())
    }
    pub fn sysctl_changes(&self) -> bool {
        self.sysctls.iter().any(|c| c.live.is_some())
    }
}

pub fn plan(host: &Host, desired: &Desired, observed: &Observed) -> Result<Plan, HostError> {
    let families = Family::ALL
        .iter()
        .map(|f| plan::plan_family(&desired.prefix, desired.ruleset(*f), observed.saved(*f)))
        .collect();
    let mut warnings = observed.warnings.clone();
    warnings.extend(desired.warnings.iter().cloned());
    let mut changes = Vec::new();
    let (mut live_view, mut want_view) = (String::new(), String::new());
    for s in &desired.sysctls {
        let live = host.sysctl.get(&s.key.proc_path())?;
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
    if observed_forwarding_off(host, desired)? {
        warnings.push("an interface has forwarding=0 although ip_forward=1: writing ip_forward resets the per-interface flags only on a 0->1 change; check `sysctl net.ipv4.conf`".into());
    }
    Ok(Plan {
        families,
        sysctls: changes,
        sysctl_view: (live_view, want_view),
        warnings,
    })
}

/// Kernel sysctl values print tabs between fields; compare them by their words.
fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A plan also reports an interface whose own `forwarding` flag is 0 (notes: S3) when
/// forwarding is wanted: ip_forward=1 alone does not route through it.
fn observed_forwarding_off(host: &Host, desired: &Desired) -> Result<bool, HostError> {
    let wants = desired
        .sysctls
        .iter()
        .any(|s| s.key.dotted() == "net.ipv4.ip_forward" && s.value == "1");
    if !wants || host.sysctl.get("net/ipv4/ip_forward")?.as_deref() != Some("1") {
        return Ok(false);
    }
    let Ok(dir) = std::fs::read_dir("/proc/sys/net/ipv4/conf") else {
        return Ok(false);
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "all" || name == "default" || name == "lo" {
            continue;
        }
        if host
            .sysctl
            .get(&format!("net/ipv4/conf/{name}/forwarding"))?
            .as_deref()
            == Some("0")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

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
        return Err(
            match rollback(host, &desired.prefix, observed, &touched, &set) {
                Ok(()) => Error::RolledBack {
                    cause: Box::new(cause),
                },
                Err(rb) => Error::RollbackFailed {
                    cause: Box::new(cause),
                    rollback: Box::new(rb),
                },
            },
        );
    }
    let listens = stale_listens(model, observed, plan);
    report
        .warnings
        .extend(crate::conntrack::flush_all(&listens));
    Ok(report)
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
        let target = plan::ruleset_from_live(prefix, *family, before.saved(*family));
        let now = iptsave::parse(&host.netfilter.save(*family, "")?);
        let back = plan::plan_family(prefix, &target, &now);
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

/// The listens whose conntrack entries must go: forwards that are new or changed (their old
/// entries, or un-NATed ones made before the rule existed, would win over the new rules) and
/// forwards that were removed (found from their live DNAT rules, in PREFIX-PREROUTING or, for
/// a large rule set, in the leaves of its tree).
fn stale_listens(model: &Model, observed: &Observed, plan: &Plan) -> Vec<crate::conntrack::Listen> {
    use crate::conntrack::Listen;
    use std::collections::{HashMap, HashSet};
    let prerouting = crate::names::owned_chain(&model.prefix, "PREROUTING");
    let forwards: HashMap<(&str, Family), &crate::model::Forward> = model
        .forwards
        .iter()
        .map(|f| ((f.name.as_str(), f.family), f))
        .collect();
    let mut out: Vec<Listen> = Vec::new();
    for fp in &plan.families {
        if fp.changed_entries.is_empty() {
            continue;
        }
        // The live DNAT dispatch rules of each changed entry, read once.
        let mut live: HashMap<String, Vec<&String>> = HashMap::new();
        if let Some(t) = observed.saved(fp.family).table("nat") {
            for (name, chain) in &t.chains {
                let dispatch = *name == prerouting
                    || crate::render_tree::base_chain(&model.prefix, name).as_deref()
                        == Some(prerouting.as_str());
                if !dispatch {
                    continue;
                }
                for r in &chain.rules {
                    if let Some(e) = plan::entry_of(r).filter(|e| fp.changed_entries.contains(e)) {
                        live.entry(e).or_default().push(r);
                    }
                }
            }
        }
        let mut seen: HashSet<(
            String,
            Vec<crate::model::Proto>,
            crate::model::PortRange,
            Option<std::net::IpAddr>,
        )> = HashSet::new();
        let mut push = |l: Listen, out: &mut Vec<Listen>| {
            if seen.insert((l.name.clone(), l.protos.clone(), l.port, l.address)) {
                out.push(l);
            }
        };
        for name in &fp.changed_entries {
            if let Some(f) = forwards.get(&(name.as_str(), fp.family)) {
                push(Listen::of(f), &mut out);
            }
            // The old listen too: a changed port or address leaves entries on the old one.
            for r in live.get(name).into_iter().flatten() {
                if let Some(l) = Listen::from_rule(name, fp.family, r) {
                    push(l, &mut out);
                }
            }
        }
    }
    out
}
