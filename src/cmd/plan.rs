//! `pfstate plan FILE...` (and `apply --dry-run`): what apply would change, as a diff.

use std::path::PathBuf;

use crate::apply::conntrack;
use crate::apply::txn::JOURNAL_PATH;
use crate::error::Error;
use crate::host::Host;
use crate::spec::multi;

use super::ctx::{Ctx, Outcome};
use super::prepare::{plan_diff, prepare};

pub(super) fn plan_files(ctx: &Ctx, host: &Host, paths: &[PathBuf]) -> Result<Outcome, Error> {
    // The live rules are read while the file is parsed and rendered.
    host.prefetch();
    let (model, source) = multi::load_all(paths)?;
    let p = prepare(host, model, &source, None, true)?;
    let (d, changed) = plan_diff(ctx, &p, true);
    let mut out = Outcome {
        changed,
        diff: d,
        changes_exit_2: true,
        warnings: p.plan.warnings.clone(),
        ..Outcome::default()
    };
    if !changed {
        out.notes.push("in sync: nothing to change".into());
    }
    // Connections of changed or removed forwards lose their conntrack entries on apply.
    let listens = conntrack::stale_listens(&p.model, &p.observed, &p.plan);
    if !listens.is_empty()
        && let Some(cut) = conntrack::count_cut(host.conntrack, &listens)
    {
        out.notes.extend(conntrack::cut_notes(&cut, "will be"));
    }
    super::report::fill(ctx, &p, true, &mut out);
    // Plan takes no lock and changes nothing: it only says a transaction is unfinished.
    if host.files.read(JOURNAL_PATH).ok().flatten().is_some() {
        out.warnings.push(format!(
            "an interrupted pfstate run left {JOURNAL_PATH}: the next apply or remove puts its changes back first"
        ));
    }
    if p.unit_enabled().is_none() && !ctx.root.is_offline() {
        out.warnings
            .push("cannot ask systemd whether the unit is enabled (no system bus?)".into());
    }
    Ok(out)
}
