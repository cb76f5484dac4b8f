//! `pfstate render FILE` and `pfstate diff OLD NEW`: what a state installs on an empty host,
//! and how two states' renders differ. Neither reads the host's rules.

use std::path::Path;

use crate::error::Error;
use crate::host::Host;
use crate::model::{Family, Model};
use crate::plan::view;
use crate::render::files::unit::STATE_PATH;
use crate::render::{self, files};
use crate::spec::load;

use super::ctx::Outcome;

/// The full text `render` prints for a state: what apply would install on an empty host.
/// Only the binary path (the unit's ExecStart) comes from `host`: the rules are the file's.
pub fn render_text(host: &Host, model: &Model, source: &str) -> Result<String, Error> {
    let desired = render::render(model);
    let mut out = String::new();
    for rs in &desired.rulesets {
        let plan = crate::plan::rules::plan_family(&desired.prefix, rs, &Default::default());
        let tool = match rs.family {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        };
        if !plan.is_empty() {
            out.push_str(&format!(
                "# {}: {tool} --noflush\n{}",
                rs.family,
                plan.payload()
            ));
        }
    }
    for f in files::desired_files(model, &desired, source, &host.binary.unit_binary())? {
        if let Some(c) = f.content.filter(|_| f.target != STATE_PATH) {
            out.push_str(&format!("# {}\n{c}", f.target));
            if !c.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    Ok(out)
}

pub(super) fn render_file(host: &Host, path: &Path) -> Result<Outcome, Error> {
    let (model, source) = load(path)?;
    Ok(Outcome {
        diff: render_text(host, &model, &source)?,
        ..Outcome::default()
    })
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
    Ok(Outcome {
        changed: !d.is_empty(),
        diff: d,
        changes_exit_2: true,
        ..Outcome::default()
    })
}
