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

/// Whether applying the plan would change anything: rules in either backend, runtime sysctls,
/// a managed file, or the state of the unit. The one place this is decided; [`plan_view`]
/// shows the same parts.
pub fn plan_changes(
    plan: &Plan,
    observed: &Observed,
    files: &[ManagedFile],
    want_enabled: bool,
) -> bool {
    plan.families.iter().any(|fp| !fp.is_empty())
        || !plan.other_backend.is_empty()
        || plan.sysctl_changes()
        || files
            .iter()
            .any(|f| observed.file(f.target) != f.content.as_deref())
        || observed.unit_enabled.is_some_and(|e| e != want_enabled)
}

/// The whole diff of a plan: rules per family, runtime sysctls, files (shown at their path
/// under `root`), and the state of `unit` (`want_enabled`): the parts [`plan_changes`] looks at.
pub fn plan_view(
    plan: &Plan,
    observed: &Observed,
    files: &[ManagedFile],
    root: &Root,
    unit: &str,
    want_enabled: bool,
) -> String {
    let mut out = String::new();
    for fp in &plan.families {
        append(&mut out, rules_diff(fp));
    }
    for fp in &plan.other_backend {
        out.push_str(&format!(
            "# {} backend: pfstate's copy there is removed\n",
            observed.other_name
        ));
        out.push_str(&rules_diff(fp));
    }
    let (live, want) = &plan.sysctls.view;
    if plan.sysctl_changes() {
        out.push_str(&unified(live, want, "sysctl (live)", "sysctl (desired)"));
    }
    for f in files {
        let live = observed.file(f.target);
        if live != f.content.as_deref() {
            let shown = root.path(f.target).display().to_string();
            out.push_str(&unified(
                live.unwrap_or_default(),
                f.content.as_deref().unwrap_or_default(),
                &format!("{shown} (live)"),
                &format!("{shown} (desired)"),
            ));
        }
    }
    if let Some(e) = observed.unit_enabled.filter(|e| *e != want_enabled) {
        out.push_str(&format!(
            "unit {unit}: {} -> {}\n",
            enabled_word(e),
            enabled_word(want_enabled)
        ));
    }
    out
}

/// `out` followed by `part`, without a second copy of a first part (a whole rule set's diff is
/// megabytes at 10,000 forwards).
fn append(out: &mut String, part: String) {
    if out.is_empty() {
        *out = part;
    } else {
        out.push_str(&part);
    }
}

pub fn enabled_word(e: bool) -> &'static str {
    if e { "enabled" } else { "disabled" }
}
