//! What a reviewer reads: unified diffs of the rules, sysctls and files (coloured, when
//! writing to a terminal, by `cmd::output`).

use similar::TextDiff;

use super::rules::FamilyPlan;

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
