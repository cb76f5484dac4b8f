//! What `plan`, `apply` and `remove` report in `--format json` (docs/json.md): the parts of
//! pfstate's own state that change, `before` and `after`, and one change record per entry,
//! jump, sysctl, file and unit.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::cli::Format;
use crate::model::{Family, Model};
use crate::plan::rules::FamilyPlan;
use crate::plan::view::enabled_word;
use crate::render::files::unit::UNIT_NAME;
use crate::ruleset::rule::entry_of;

use super::ctx::{Ctx, Outcome};
use super::prepare::Prepared;

/// `before` and `after`, section by section (`rules`, `sysctls`, `files`, `unit`).
#[derive(Default)]
struct Sides {
    before: Map<String, Value>,
    after: Map<String, Value>,
}

impl Sides {
    fn put(&mut self, section: &str, key: &str, before: Value, after: Value) {
        for (side, v) in [(&mut self.before, before), (&mut self.after, after)] {
            let map = side
                .entry(section)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = map {
                m.insert(key.to_string(), v);
            }
        }
    }

    fn sections(&mut self, names: &[&str]) {
        for side in [&mut self.before, &mut self.after] {
            for n in names {
                side.entry(*n).or_insert_with(|| Value::Object(Map::new()));
            }
        }
    }
}

/// Fill `before`, `after`, `changes` and `diff` of a plan, apply or remove. Only `--format
/// json` prints them: for text output nothing is built, since at 10,000 forwards the copies of
/// both views and of the diff cost tens of milliseconds and megabytes.
pub(super) fn fill(ctx: &Ctx, p: &Prepared, want_enabled: bool, out: &mut Outcome) {
    if ctx.format != Format::Json {
        return;
    }
    let mut sides = Sides::default();
    let mut changes = rule_changes(p, &mut sides);
    let s = &p.plan.sysctls;
    let sets = s.changes.iter().filter(|c| c.live.is_some());
    for c in sets.chain(&s.restores) {
        let key = c.setting.key.dotted();
        sides.put("sysctls", &key, json!(c.live), json!(c.setting.value));
        changes.push(change(&key, "sysctl", "change"));
    }
    for f in &p.files {
        let live = p.observed.file(f.target);
        if live == f.content.as_deref() {
            continue;
        }
        let action = match (&live, &f.content) {
            (None, _) => "add",
            (_, None) => "remove",
            _ => "change",
        };
        changes.push(change(f.target, "file", action));
        sides.put("files", f.target, json!(live), json!(f.content));
    }
    if let Some(e) = p.unit_enabled().filter(|e| *e != want_enabled) {
        let (was, will) = (enabled_word(e), enabled_word(want_enabled));
        sides.put("unit", UNIT_NAME, json!(was), json!(will));
        let action = if want_enabled { "enable" } else { "disable" };
        changes.push(change(UNIT_NAME, "unit", action));
    }
    sides.sections(&["rules", "sysctls", "files", "unit"]);
    out.set("changes", Value::Array(changes));
    out.set("before", Value::Object(sides.before));
    out.set("after", Value::Object(sides.after));
    out.set("diff", json!(out.diff));
}

/// The owned rules of each family, and the change records of entries (in file order, then
/// removed ones by name) and jumps.
fn rule_changes(p: &Prepared, sides: &mut Sides) -> Vec<Value> {
    let mut entries = BTreeMap::new();
    let kinds = kinds_in_file(&p.model);
    for fp in &p.plan.families {
        let family = fp.family.name();
        sides.put("rules", family, json!(fp.live_view), json!(fp.desired_view));
        entry_changes(&kinds, fp, &mut entries);
    }
    let mut changes = Vec::new();
    let order = p.model.forwards.iter().map(|f| &f.name);
    let order = order.chain(p.model.snats.iter().map(|s| &s.name));
    for name in order.chain(p.model.filters.iter().map(|f| &f.name)) {
        if let Some((kind, action)) = entries.remove(name) {
            changes.push(change(name, kind, action));
        }
    }
    for (name, (kind, action)) in entries {
        changes.push(change(&name, kind, action));
    }
    for fp in &p.plan.families {
        changes.extend(jump_changes(fp));
    }
    changes
}

fn change(entry: &str, kind: &str, action: &str) -> Value {
    json!({"entry": entry, "kind": kind, "action": action})
}

/// Entries whose rules change: `add` when none of their rules is live, `remove` when none is
/// wanted, else `change` (also when the two families disagree). The views hold every rule of
/// the chains that change.
fn entry_changes(
    kinds: &HashMap<&str, &'static str>,
    fp: &FamilyPlan,
    entries: &mut BTreeMap<String, (&'static str, &'static str)>,
) {
    let lines_of = |view: &str| -> BTreeMap<String, Vec<String>> {
        let mut by_entry: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in view.lines() {
            if let Some(e) = entry_of(line).filter(|e| fp.changed_entries.contains(e)) {
                by_entry.entry(e).or_default().push(line.to_string());
            }
        }
        by_entry
    };
    let live = lines_of(&fp.live_view);
    let wanted = lines_of(&fp.desired_view);
    for name in &fp.changed_entries {
        let action = match (live.contains_key(name), wanted.contains_key(name)) {
            (false, _) => "add",
            (true, false) => "remove",
            (true, true) => "change",
        };
        let rules = live.get(name).or_else(|| wanted.get(name));
        let kind = entry_kind(kinds, name, rules.map(Vec::as_slice).unwrap_or_default());
        let e = entries.entry(name.clone()).or_insert((kind, action));
        if e.1 != action {
            e.1 = "change";
        }
    }
}

/// A jump's record names its family when it is IPv6: `nat PREROUTING (ipv6)`.
fn with_family(name: &str, family: Family) -> String {
    match family {
        Family::V4 => name.to_string(),
        Family::V6 => format!("{name} (ipv6)"),
    }
}

/// Each entry of the file by name, with its kind: looked up once per changed entry, so a
/// first apply of 10,000 forwards stays linear.
fn kinds_in_file(model: &Model) -> HashMap<&str, &'static str> {
    let forwards = model.forwards.iter().map(|f| (f.name.as_str(), "forward"));
    let snats = model.snats.iter().map(|s| (s.name.as_str(), "snat"));
    let filters = model.filters.iter().map(|f| (f.name.as_str(), "filter"));
    forwards.chain(snats).chain(filters).collect()
}

/// The entry's kind from the file, or for an entry no longer in it, from its live rules.
fn entry_kind(kinds: &HashMap<&str, &'static str>, name: &str, rules: &[String]) -> &'static str {
    if let Some(kind) = kinds.get(name) {
        kind
    } else if rules.iter().any(|r| r.contains(" -j DNAT ")) {
        "forward"
    } else if rules
        .iter()
        .all(|r| r.contains(" -j SNAT ") || r.ends_with(" -j MASQUERADE"))
    {
        "snat"
    } else {
        "filter"
    }
}

/// Jumps added, removed, or moved (deleted and inserted again elsewhere).
fn jump_changes(fp: &FamilyPlan) -> Vec<Value> {
    let mut out = Vec::new();
    for t in &fp.tables {
        let removed: Vec<&str> = t
            .remove_jumps
            .iter()
            .filter_map(|l| l.split(' ').nth(1))
            .collect();
        let added: Vec<&str> = t.add_jumps.iter().map(|(j, _)| j.from.as_str()).collect();
        for chain in &added {
            let action = if removed.contains(chain) {
                "move"
            } else {
                "add"
            };
            let entry = with_family(&format!("{} {chain}", t.table), fp.family);
            out.push(change(&entry, "jump", action));
        }
        for chain in removed.iter().filter(|c| !added.contains(c)) {
            let entry = with_family(&format!("{} {chain}", t.table), fp.family);
            out.push(change(&entry, "jump", "remove"));
        }
    }
    out
}
