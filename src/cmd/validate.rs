//! `pfstate validate FILE...`: every file parsed and checked, every problem reported.

use crate::error::Error;
use crate::spec;

use super::ctx::Outcome;

pub(super) fn validate_files(paths: &[std::path::PathBuf]) -> Result<Outcome, Error> {
    let mut errors = Vec::new();
    let mut out = Outcome::default();
    for p in paths {
        match spec::load(p) {
            Ok(_) => out.notes.push(format!("{}: ok", p.display())),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Usage(errors.join("\n")))
    }
}
