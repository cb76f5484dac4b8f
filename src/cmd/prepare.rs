//! What `plan`, `apply` and `remove` share: the live host, the preparation (render, observe,
//! plan, files, unit state) and the diff a reviewer reads.

use crate::error::{Error, HostError};
use crate::host::facts::Facts;
use crate::host::fs::{self, Root};
use crate::host::iptables::Iptables;
use crate::host::sysctl::ProcSys;
use crate::host::systemd::{DbusServiceManager, OfflineServiceManager};
use crate::host::{Host, ServiceManager};
use crate::model::Model;
use crate::plan::observe::{self, Observed};
use crate::plan::view;
use crate::plan::{self, Plan};
use crate::render::files::unit::UNIT_NAME;
use crate::render::files::{self, ManagedFile};
use crate::render::{self, Desired};

use super::ctx::Ctx;

/// Everything a plan or apply needs, computed once.
pub(super) struct Prepared {
    pub(super) model: Model,
    pub(super) desired: Desired,
    pub(super) observed: Observed,
    pub(super) plan: Plan,
    pub(super) files: Vec<ManagedFile>,
    pub(super) unit_enabled: Option<bool>,
}

pub(super) fn service_manager(root: &Root) -> Result<Box<dyn ServiceManager>, HostError> {
    match &root.dir {
        Some(dir) => Ok(Box::new(OfflineServiceManager::new(dir.clone()))),
        None => Ok(Box::new(DbusServiceManager::system()?)),
    }
}

pub(super) fn prepare(
    ctx: &Ctx,
    host: &Host,
    model: Model,
    source: &str,
    files_wanted: Option<Vec<ManagedFile>>,
    query_unit: bool,
) -> Result<Prepared, Error> {
    let desired = render::render(&model);
    let observed = observe::observe(host, &desired)?;
    let mut plan = plan::plan(host, &desired, &observed)?;
    // Port conflicts with foreign DNATs and nftables tables iptables-save cannot show.
    plan.warnings
        .extend(plan::coexist::warnings(&model, &observed));
    // What the live host says about the facts the file states: warnings only.
    if let Some(facts) = Facts::read() {
        plan.warnings
            .extend(plan::host_facts::warnings(&model, &facts));
    }
    let files = match files_wanted {
        Some(f) => f,
        None => files::desired_files(&model, &desired, source)?,
    };
    // Not at boot: the boot apply manages neither files nor the unit, and runs before
    // dbus.service (a connect to the socket-activated bus would wait for it).
    let unit_enabled = query_unit
        .then(|| {
            service_manager(&ctx.root)
                .and_then(|sm| sm.is_enabled(UNIT_NAME))
                .ok()
        })
        .flatten();
    Ok(Prepared {
        model,
        desired,
        observed,
        plan,
        files,
        unit_enabled,
    })
}

/// The unified diff of a prepared plan: rules per family, runtime sysctls, files, unit state.
pub(super) fn plan_diff(
    ctx: &Ctx,
    p: &Prepared,
    want_enabled: bool,
) -> Result<(String, bool), Error> {
    let mut out = String::new();
    let mut changed = false;
    for fp in &p.plan.families {
        let d = view::rules_diff(fp);
        changed |= !fp.is_empty();
        out.push_str(&d);
    }
    let (live, want) = &p.plan.sysctls.view;
    if p.plan.sysctl_changes() {
        changed = true;
        out.push_str(&view::unified(
            live,
            want,
            "sysctl (live)",
            "sysctl (desired)",
        ));
    }
    for f in &p.files {
        let live = fs::read(&ctx.root, f.target)?;
        if live != f.content {
            changed = true;
            let shown = ctx.root.path(f.target).display().to_string();
            let a = live.unwrap_or_default();
            let b = f.content.clone().unwrap_or_default();
            let d = view::unified(
                &a,
                &b,
                &format!("{shown} (live)"),
                &format!("{shown} (desired)"),
            );
            out.push_str(&d);
        }
    }
    match p.unit_enabled {
        Some(e) if e != want_enabled => {
            changed = true;
            out.push_str(&format!(
                "unit {UNIT_NAME}: {} -> {}\n",
                enabled_word(e),
                enabled_word(want_enabled)
            ));
        }
        _ => {}
    }
    Ok((out, changed))
}

pub(super) fn enabled_word(e: bool) -> &'static str {
    if e { "enabled" } else { "disabled" }
}
pub(super) fn live_host() -> (Iptables, ProcSys) {
    (Iptables::detect(), ProcSys)
}
