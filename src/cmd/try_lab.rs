//! `pfstate try FILE`: try the file in a throwaway lab of network namespaces
//! ([`crate::lab::trial`]) and report what reached which backend.

use std::path::Path;

use crate::error::Error;
use crate::lab::{have_root, trial};
use crate::spec::load;

use super::ctx::Outcome;

/// `pfstate try FILE`.
pub(super) fn try_file(path: &Path) -> Result<Outcome, Error> {
    let (model, _source) = load(path)?;
    if !have_root() {
        return Err(Error::Usage(
            "pfstate try builds network namespaces and needs root (sudo pfstate try FILE)".into(),
        ));
    }
    let t = trial::run(&model, path)?;
    let mut out = Outcome::default();
    let probes: Vec<serde_json::Value> = t
        .probes
        .iter()
        .map(|p| {
            serde_json::json!({"entry": p.entry, "proto": p.proto, "from": p.from,
                               "to": p.to, "result": p.result, "reached": p.reached})
        })
        .collect();
    out.set("lab", serde_json::json!(t.lab));
    out.set(
        "passed",
        serde_json::json!(t.checks - t.failed - skipped(&t)),
    );
    out.set("failed", serde_json::json!(t.failed));
    out.set("probes", serde_json::Value::Array(probes));
    out.diff = t.text;
    if t.failed > 0 {
        out.failure = Some(Error::Usage(format!(
            "try: {} of {} check(s) failed",
            t.failed, t.checks
        )));
    }
    Ok(out)
}

fn skipped(t: &trial::Trial) -> usize {
    t.probes.iter().filter(|p| p.result == "skip").count()
}
