//! `pfstate remove [--prefix P]`: take away everything pfstate installed under a prefix.

use crate::apply::journal::FileJournal;
use crate::error::Error;
use crate::host::fs::{self, RunLock};
use crate::host::{Files, Host};
use crate::model::Model;
use crate::names;
use crate::render::files::{
    self,
    unit::{STATE_PATH, UNIT_NAME},
};
use crate::spec;

use super::ctx::{Ctx, Outcome};
use super::prepare::{plan_diff, prepare};

/// The prefix of the persisted state, if there is one that parses.
fn persisted_prefix(files: &dyn Files) -> Option<String> {
    let text = files.read(STATE_PATH).ok().flatten()?;
    spec::load_str(STATE_PATH, &text).ok().map(|m| m.prefix)
}

pub(super) fn remove(ctx: &Ctx, host: &Host, prefix: Option<&str>) -> Result<Outcome, Error> {
    let _lock = RunLock::acquire(&ctx.root, fs::DEFAULT_LOCK_TIMEOUT)?;
    if let Some(p) = crate::apply::pending::Pending::load(host.files)? {
        return Err(Error::Usage(p.refusal()));
    }
    let prefix = prefix
        .map(str::to_string)
        .or_else(|| persisted_prefix(host.files))
        .unwrap_or_else(|| names::DEFAULT_PREFIX.to_string());
    if let Some(problem) = names::prefix_problem(&prefix) {
        return Err(Error::Usage(problem));
    }
    let p = prepare(
        host,
        Model::empty(&prefix),
        "",
        Some(files::no_files()),
        true,
    )?;
    let (d, changed) = plan_diff(ctx, &p, false);
    let mut out = Outcome {
        changed,
        diff: d,
        warnings: p.plan.warnings.clone(),
        ..Outcome::default()
    };
    super::report::fill(&p, false, &mut out);
    if p.unit_enabled() == Some(true) {
        match host.services.disable(UNIT_NAME) {
            Ok(()) => {}
            Err(e) => out
                .warnings
                .push(format!("could not disable {UNIT_NAME}: {e}")),
        }
    }
    let report = crate::apply::apply(host, &p.model, &p.desired, &p.observed, &p.plan)?;
    out.notes
        .extend(crate::apply::conntrack::cut_notes(&report.cut, "were"));
    let mut journal = FileJournal::default();
    for f in &p.files {
        journal.converge(host.files, f)?;
    }
    if !ctx.root.is_offline() {
        let _ = host.services.reload();
    }
    out.notes.push(if changed {
        format!("removed everything under prefix {prefix}")
    } else {
        "nothing to remove".into()
    });
    Ok(out)
}
