//! `pfstate watch [FILE]`: the watcher loop ([`crate::watch`]) around the boot apply.
//!
//! Each check is exactly `pfstate apply --repair FILE` (the boot apply, which leaves a pending
//! `apply --confirm` alone): the same observe, plan and apply, under
//! the same run lock, rewriting only the families that drifted and nothing when all is in
//! place. The file is read again for every check, so a later `pfstate apply` is followed.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::host::Host;
use crate::render::files::unit::STATE_PATH;
use crate::spec::load;
use crate::watch::{self, Repair};

use super::apply::{Mode, apply_files};
use super::ctx::{Ctx, Outcome};

/// What one check reports to the loop.
fn repair_of(out: Outcome) -> Repair {
    Repair {
        rewrote: out.changed,
        summary: out.notes.join("; "),
    }
}

pub(super) fn watch(ctx: &Ctx, host: &Host, file: Option<&Path>) -> Result<Outcome, Error> {
    let path: PathBuf = file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ctx.root.path(STATE_PATH));
    let (model, _) = load(&path)?;
    let legacy = host.netfilter.is_legacy();
    let check = || {
        // Removed (`pfstate remove`) or switched off (`watch: false`): nothing left to watch.
        // remove and apply hold the run lock while they change the file, and so does the
        // check below, so a removal is never undone by a last repair.
        match load(&path) {
            Err(_) if !path.exists() => return Ok(None),
            Ok((m, _)) if !m.watch => return Ok(None),
            _ => {}
        }
        apply_files(ctx, host, std::slice::from_ref(&path), Mode::Repair, None)
            .map(|out| Some(repair_of(out)))
            .map_err(|e| e.to_string())
    };
    match watch::run(&model.prefix, legacy, check) {
        Ok(()) => Ok(Outcome::default()),
        Err(e) => Err(Error::Usage(format!("watch: {e}"))),
    }
}
