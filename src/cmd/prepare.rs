//! What `plan`, `apply` and `remove` share: the preparation (render, observe, plan, files)
//! and the diff a reviewer reads.

use crate::apply::{
    self,
    txn::{PreState, Transaction},
};
use crate::error::Error;
use crate::host::Host;
use crate::host::sysctl_before::SYSCTL_BEFORE_PATH;
use crate::model::Model;
use crate::plan::observe::{self, Observed, Scope};
use crate::plan::{self, Plan, view};
use crate::render::files::companions;
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
}

impl Prepared {
    /// Whether the boot unit is enabled, when it was asked and systemd could tell.
    pub(super) fn unit_enabled(&self) -> Option<bool> {
        self.observed.unit_enabled
    }
}

/// Render `model`, observe the host, plan. `files_wanted`: the managed files to converge to
/// (default: those of `model`); `query_unit`: ask systemd about the unit (not at boot: the boot
/// apply manages neither files nor the unit, and runs before dbus.service, where a connect to
/// the socket-activated bus would wait for it).
pub(super) fn prepare(
    host: &Host,
    model: Model,
    source: &str,
    files_wanted: Option<Vec<ManagedFile>>,
    query_unit: bool,
) -> Result<Prepared, Error> {
    let desired = render::render(&model);
    let mut files = match files_wanted {
        Some(f) => f,
        None => {
            let binary = host.binary.unit_binary();
            let mut f = files::desired_files(&model, &desired, source, &binary)?;
            let legacy = host.netfilter.is_legacy();
            f.extend(companions::managed_files(&binary, model.watch, legacy));
            f
        }
    };
    plan::packaged_unit::defer_to_package(host.files, &mut files)?;
    let scope = Scope {
        files: files.iter().map(|f| f.target).collect(),
        unit: query_unit.then_some(UNIT_NAME),
    };
    let observed = observe::observe(host, &model, &desired, &scope)?;
    let mut plan = plan::plan(&desired, &observed);
    // Entries that can never act (a drop before a forward's accept).
    plan.warnings.extend(crate::spec::shadow::warnings(&model));
    // Port conflicts with foreign DNATs and nftables tables iptables-save cannot show.
    plan.warnings
        .extend(plan::coexist::warnings(&model, &observed));
    // What the live host says about the facts the file states: warnings only.
    if let Some(facts) = &observed.facts {
        plan.warnings
            .extend(plan::host_facts::warnings(&model, facts));
    }
    // Filter entries that would cut off the operator, this session first.
    let ssh = plan::ssh_guard::SshConnection::from_env();
    plan.warnings
        .extend(plan::ssh_guard::warnings(&model.filters, ssh.as_ref()));
    // firewalld, nftables.service and Docker: who flushes, what still rejects.
    plan.warnings
        .extend(plan::managers::warnings(&model, &desired, &observed));
    Ok(Prepared {
        model,
        desired,
        observed,
        plan,
        files,
    })
}

/// The unified diff of a prepared plan and whether anything would change, with the
/// companion units whose enablement changes.
pub(super) fn plan_diff(ctx: &Ctx, p: &Prepared, want_enabled: bool) -> (String, bool) {
    let mut d = view::plan_view(
        &p.plan,
        &p.observed,
        &p.files,
        &ctx.root,
        UNIT_NAME,
        want_enabled,
    );
    for line in companion_lines(p, want_enabled) {
        d.push_str(&line);
    }
    (d, plan_changed(p, want_enabled))
}

/// Whether applying the prepared plan would change anything ([`view::plan_changes`], or a
/// companion unit's enablement), without building the diff.
pub(super) fn plan_changed(p: &Prepared, want_enabled: bool) -> bool {
    view::plan_changes(&p.plan, &p.observed, &p.files, want_enabled)
        || !companion_lines(p, want_enabled).is_empty()
}

fn companion_lines(p: &Prepared, want_enabled: bool) -> Vec<String> {
    let (companions, legacy) = (&p.observed.companions, p.observed.legacy);
    plan::units::plan_lines(companions, want_enabled, p.model.watch, legacy)
}

/// Start the transaction of a prepared plan: the state it starts from is journalled first.
/// `unit`: whether the unit is enabled now, when the transaction may change that.
pub(super) fn begin<'h>(
    host: &Host<'h>,
    p: &Prepared,
    unit: Option<bool>,
) -> Result<Transaction<'h>, Error> {
    // The record of sysctl values pfstate found is journalled like a managed file.
    let mut files: Vec<&'static str> = p.files.iter().map(|f| f.target).collect();
    files.push(SYSCTL_BEFORE_PATH);
    let pre = PreState::capture(&p.desired.prefix, &p.observed, &p.plan, &files, unit);
    Transaction::begin(*host, pre)
}

/// The rules and sysctls of a prepared plan, then its files, as steps of `txn`.
pub(super) fn rules_and_files(
    host: &Host,
    txn: &Transaction,
    p: &Prepared,
) -> Result<apply::Report, Error> {
    let mut report = apply::apply(host, txn, &p.plan)?;
    let live = |t: &str| p.observed.file(t).map(str::to_string);
    apply::converge_files(host, txn, &p.files, live, &mut report)?;
    Ok(report)
}
