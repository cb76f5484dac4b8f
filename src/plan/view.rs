//! What a reviewer reads: unified diffs of the rules, sysctls and files (coloured, when
//! writing to a terminal, by `cmd::output`).

use similar::TextDiff;

use super::Plan;
use super::observe::Observed;
use super::rules::FamilyPlan;
use crate::host::fs::Root;
use crate::render::files::ManagedFile;

/// A unified diff of two texts with file-style headers; empty when they are equal.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

/// The diff of one family's owned rules and jumps, live -> desired.
pub fn rules_diff(fp: &FamilyPlan) -> String {
    if fp.is_empty() {
        return String::new();
    }
    let name = fp.family.name();
    let d = unified(
        &fp.live_view,
        &fp.desired_view,
        &format!("{name} rules (live)"),
        &format!("{name} rules (desired)"),
    );
    if d.is_empty() {
        // Same text, different placement (e.g. a jump in the wrong chain position).
        return format!("{name}: jumps to re-place\n");
    }
    d
}

/// The whole diff of a plan: rules per family, runtime sysctls, files (shown at their path
/// under `root`), and the state of `unit` (`want_enabled`). Returns it and whether anything
/// would change.
pub fn plan_view(
    plan: &Plan,
    observed: &Observed,
    files: &[ManagedFile],
    root: &Root,
    unit: &str,
    want_enabled: bool,
) -> (String, bool) {
    let mut out = String::new();
    let mut changed = false;
    for fp in &plan.families {
        changed |= !fp.is_empty();
        out.push_str(&rules_diff(fp));
    }
    for fp in &plan.other_backend {
        changed = true;
        out.push_str(&format!(
            "# {} backend: pfstate's copy there is removed\n",
            observed.other_name
        ));
        out.push_str(&rules_diff(fp));
    }
    let (live, want) = &plan.sysctls.view;
    if plan.sysctl_changes() {
        changed = true;
        out.push_str(&unified(live, want, "sysctl (live)", "sysctl (desired)"));
    }
    for f in files {
        let live = observed.file(f.target);
        if live != f.content.as_deref() {
            changed = true;
            let shown = root.path(f.target).display().to_string();
            out.push_str(&unified(
                live.unwrap_or_default(),
                f.content.as_deref().unwrap_or_default(),
                &format!("{shown} (live)"),
                &format!("{shown} (desired)"),
            ));
        }
    }
    match observed.unit_enabled {
        Some(e) if e != want_enabled => {
            changed = true;
            out.push_str(&format!(
                "unit {unit}: {} -> {}\n",
                enabled_word(e),
                enabled_word(want_enabled)
            ));
        }
        _ => {}
    }
    (out, changed)
}

pub fn enabled_word(e: bool) -> &'static str {
    if e { "enabled" } else { "disabled" }
}
