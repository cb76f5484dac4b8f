//! The `--format json` document (docs/json.md, `format_version` 1): the fields every command
//! has, the error records, and each command's own fields from its [`Outcome`].

use serde_json::{Map, Value, json};

use crate::error::{Error, SpecError};

use super::ctx::{Ctx, Outcome};

/// The contract's version. Raise it only for a change that is not an addition.
pub const FORMAT_VERSION: u32 = 1;

/// The one JSON object a command prints.
pub fn document(ctx: &Ctx, result: &Result<Outcome, Error>) -> Value {
    let mut doc = Map::new();
    doc.insert("format_version".into(), json!(FORMAT_VERSION));
    doc.insert("command".into(), json!(ctx.command));
    match result {
        Ok(out) => {
            doc.insert("ok".into(), json!(out.failure.is_none()));
            doc.insert("changed".into(), json!(out.changed));
            doc.insert("warnings".into(), json!(out.warnings));
            let errors = out.failure.as_ref().map(records).unwrap_or_default();
            doc.insert("errors".into(), Value::Array(errors));
            for (k, v) in &out.json {
                doc.insert(k.clone(), v.clone());
            }
        }
        Err(e) => {
            doc.insert("ok".into(), json!(false));
            // Only a failed rollback leaves the host changed (SPEC: nothing half-applied).
            let changed = matches!(
                e,
                Error::RollbackFailed { .. } | Error::RecoveryFailed { .. }
            );
            doc.insert("changed".into(), json!(changed));
            doc.insert("warnings".into(), json!([]));
            doc.insert("errors".into(), Value::Array(records(e)));
        }
    }
    Value::Object(doc)
}

/// An error as records: one per problem in a file (with its place), one per other message.
pub fn records(e: &Error) -> Vec<Value> {
    match e {
        Error::Spec(s) => spec_records(s),
        Error::Files(list) => list.iter().flat_map(records).collect(),
        Error::RolledBack { cause } => {
            let mut r = records(cause);
            r.push(plain(
                "nothing was changed: the previous state was restored",
            ));
            r
        }
        Error::RollbackFailed { cause, failed } => {
            let mut r = records(cause);
            r.extend(failed.iter().map(|f| {
                plain(&format!(
                    "could not be put back: {f}; run `pfstate plan` to see what is live"
                ))
            }));
            r
        }
        Error::Read { path, source } => vec![json!({
            "file": path, "line": null, "column": null, "message": source.to_string(),
        })],
        other => other.to_string().lines().map(plain).collect(),
    }
}

fn spec_records(s: &SpecError) -> Vec<Value> {
    s.diagnostics
        .iter()
        .map(|d| {
            json!({
                "file": s.file_name(d.location),
                "line": d.location.line,
                "column": d.location.column,
                "message": d.message,
            })
        })
        .collect()
}

fn plain(message: &str) -> Value {
    json!({"file": null, "line": null, "column": null, "message": message})
}
