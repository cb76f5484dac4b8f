//! `pfstate validate FILE...`: every file (a directory: each of its `*.yaml`) parsed and
//! checked on its own, every problem reported.

use serde_json::{Value, json};

use crate::error::Error;
use crate::spec::{self, multi};

use super::ctx::Outcome;

pub(super) fn validate_files(paths: &[std::path::PathBuf]) -> Result<Outcome, Error> {
    let mut failed = Vec::new();
    let mut out = Outcome::default();
    let mut files = Vec::new();
    for p in multi::expand(paths)? {
        let result = spec::load(&p);
        files.push(json!({"file": p.display().to_string(), "ok": result.is_ok()}));
        match result {
            Ok(_) => out.notes.push(format!("{}: ok", p.display())),
            Err(e) => failed.push(e),
        }
    }
    out.set("files", Value::Array(files));
    if !failed.is_empty() {
        out.failure = Some(Error::Files(failed));
    }
    Ok(out)
}
