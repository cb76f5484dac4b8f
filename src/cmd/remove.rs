//! `pfstate remove [--prefix P]`: take away everything pfstate installed under a prefix.

use crate::apply::journal::FileJournal;
use crate::error::Error;
use crate::host::Host;
use crate::host::fs::{self, Root, RunLock};
use crate::host::sysctl_before::FileMemory;
use crate::model::Model;
use crate::names;
use crate::render::files::{
    self,
    unit::{STATE_PATH, UNIT_NAME},
};
use crate::spec;

use super::ctx::{Ctx, Outcome};
use super::prepare::{live_host, plan_diff, prepare, service_manager};

/// The prefix of the persisted state, if there is one that parses.
pub fn persisted_prefix(root: &Root) -> Option<String> {
    let text = fs::read(root, STATE_PATH).ok().flatten()?;
    spec::load_str(STATE_PATH, &text).ok().map(|m| m.prefix)
}

pub(super) fn remove(ctx: &Ctx, prefix: Option<&str>) -> Result<Outcome, Error> {
    let _lock = RunLock::acquire(&ctx.root, fs::DEFAULT_LOCK_TIMEOUT)?;
    let prefix = prefix
        .map(str::to_string)
        .or_else(|| persisted_prefix(&ctx.root))
        .unwrap_or_else(|| names::DEFAULT_PREFIX.to_string());
    if let Some(problem) = names::prefix_problem(&prefix) {
        return Err(Error::Usage(problem));
    }
    let (nf, sc) = live_host();
    let memory = FileMemory {
        root: ctx.root.clone(),
    };
    let host = Host {
        netfilter: &nf,
        sysctl: &sc,
        memory: &memory,
    };
    let p = prepare(
        ctx,
        &host,
        Model::empty(&prefix),
        "",
        Some(files::no_files()),
        true,
    )?;
    let (d, changed) = plan_diff(ctx, &p, false)?;
    let mut out = Outcome {
        changed,
        diff: d,
        warnings: p.plan.warnings.clone(),
        ..Outcome::default()
    };
    if p.unit_enabled == Some(true) {
        match service_manager(&ctx.root).and_then(|sm| sm.disable(UNIT_NAME)) {
            Ok(()) => {}
            Err(e) => out
                .warnings
                .push(format!("could not disable {UNIT_NAME}: {e}")),
        }
    }
    let report = crate::apply::apply(&host, &p.model, &p.desired, &p.observed, &p.plan)?;
    out.notes
        .extend(crate::apply::conntrack::cut_notes(&report.cut, "were"));
    let mut journal = FileJournal::default();
    for f in &p.files {
        journal.converge(&ctx.root, f)?;
    }
    if !ctx.root.is_offline()
        && let Ok(sm) = service_manager(&ctx.root)
    {
        let _ = sm.reload();
    }
    out.notes.push(if changed {
        format!("removed everything under prefix {prefix}")
    } else {
        "nothing to remove".into()
    });
    Ok(out)
}
