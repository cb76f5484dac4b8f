//! `pfstate try FILE`: try the file in a throwaway lab of network namespaces
//! ([`crate::lab::trial`]) and report what reached which backend.

use std::path::Path;

use crate::cli::Format;
use crate::error::Error;
use crate::lab::{have_root, trial};
use crate::spec::load;

use super::ctx::{Ctx, Outcome};

/// `pfstate try FILE`.
pub(super) fn try_file(ctx: &Ctx, path: &Path) -> Result<Outcome, Error> {
    let (model, _source) = load(path)?;
    if !have_root() {
        return Err(Error::Usage(
            "pfstate try builds network namespaces and needs root (sudo pfstate try FILE)".into(),
        ));
    }
    let t = trial::run(&model, path)?;
    if t.failed > 0 {
        if ctx.format == Format::Text {
            print!("{}", t.text);
            return Err(Error::Usage(format!(
                "try: {} of {} check(s) failed",
                t.failed, t.checks
            )));
        }
        return Err(Error::Usage(t.text));
    }
    Ok(Outcome {
        diff: t.text,
        ..Outcome::default()
    })
}
