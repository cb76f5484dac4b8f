//! `pfstate render FILE` and `pfstate diff OLD NEW`: what a state installs on an empty host,
//! and how two states' renders differ. Neither reads the host's rules.

use std::path::Path;

use serde_json::json;

use crate::cli::Format;
use crate::error::Error;
use crate::host::Host;
use crate::model::{Family, Model};
use crate::plan::view;
use crate::render::files::unit::STATE_PATH;
use crate::render::{self, files};
use crate::spec::load;

use super::ctx::{Ctx, Outcome};

/// What a state installs on an empty host: the restore payload per family (empty when the
/// family has no rules), the files except the persisted state, and the render's warnings.
pub struct Rendered {
    pub payloads: Vec<(Family, String)>,
    pub files: Vec<(&'static str, String)>,
    pub warnings: Vec<String>,
}

/// Render `model`; only the binary path (the unit's ExecStart) comes from `host`: the rules
/// are the file's alone.
pub fn render_parts(host: &Host, model: &Model, source: &str) -> Result<Rendered, Error> {
    let desired = render::render(model);
    let payloads = desired
        .rulesets
        .iter()
        .map(|rs| {
            let plan = crate::plan::rules::plan_family(&desired.prefix, rs, &Default::default());
            (rs.family, plan.payload())
        })
        .collect();
    let binary = host.binary.unit_binary();
    let mut wanted = files::desired_files(model, &desired, source, &binary)?;
    // With the companion units of an iptables-nft host (rendering does not look at the rules).
    wanted.extend(files::companions::managed_files(
        &binary,
        model.watch,
        false,
    ));
    let files = wanted
        .into_iter()
        .filter(|f| f.target != STATE_PATH)
        .filter_map(|f| f.content.map(|c| (f.target, c)))
        .collect();
    Ok(Rendered {
        payloads,
        files,
        // Rendering asks the machine nothing: its only warnings are about the file itself
        // (entries that can never act); what the host says is warned by plan and apply.
        warnings: crate::spec::shadow::warnings(model),
    })
}

/// The full text `render` prints for a state: what apply would install on an empty host.
pub fn render_text(host: &Host, model: &Model, source: &str) -> Result<String, Error> {
    Ok(text_of(&render_parts(host, model, source)?))
}

fn text_of(r: &Rendered) -> String {
    let mut out = String::new();
    for (family, payload) in r.payloads.iter().filter(|(_, p)| !p.is_empty()) {
        let tool = match family {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        };
        out.push_str(&format!("# {family}: {tool} --noflush\n{payload}"));
    }
    for (target, c) in &r.files {
        out.push_str(&format!("# {target}\n{c}"));
        if !c.ends_with('\n') {
            out.push('\n');
        }
    }
    for w in &r.warnings {
        out.push_str(&format!("# warning: {w}\n"));
    }
    out
}

pub(super) fn render_file(ctx: &Ctx, host: &Host, path: &Path) -> Result<Outcome, Error> {
    let (model, source) = load(path)?;
    let r = render_parts(host, &model, &source)?;
    let mut out = Outcome {
        diff: text_of(&r),
        ..Outcome::default()
    };
    let rules: serde_json::Map<String, serde_json::Value> = r
        .payloads
        .iter()
        .map(|(f, p)| (f.name().to_string(), json!(p)))
        .collect();
    let files: serde_json::Map<String, serde_json::Value> = r
        .files
        .iter()
        .map(|(t, c)| (t.to_string(), json!(c)))
        .collect();
    out.set("rules", serde_json::Value::Object(rules));
    out.set("files", serde_json::Value::Object(files));
    // The text shows the render's warnings as comments in the output; JSON has its field.
    if ctx.format == Format::Json {
        out.warnings = r.warnings;
    }
    Ok(out)
}

pub(super) fn diff_files(host: &Host, old: &Path, new: &Path) -> Result<Outcome, Error> {
    let (m_old, s_old) = load(old)?;
    let (m_new, s_new) = load(new)?;
    let a = render_text(host, &m_old, &s_old)?;
    let b = render_text(host, &m_new, &s_new)?;
    let d = view::unified(
        &a,
        &b,
        &old.display().to_string(),
        &new.display().to_string(),
    );
    let mut out = Outcome {
        changed: !d.is_empty(),
        diff: d,
        changes_exit_2: true,
        ..Outcome::default()
    };
    out.set("diff", json!(out.diff));
    Ok(out)
}
