//! A consistency checker for the restore payloads pfstate renders, independent of the renderer
//! (its own word splitter, its own tables), so that a renderer bug cannot hide itself:
//!
//! - every declared chain is owned (`PREFIX-...`), declared once, and fits the kernel's
//!   chain-name limit;
//! - every rule is in a declared owned chain or a built-in chain of its table;
//! - every `-j`/`-g` target is a built-in target valid in that table or a declared owned chain
//!   (pfstate never jumps into another system's chain: unmatched packets fall through);
//! - every rule in an owned chain carries exactly one comment, `pfstate:ENTRY` of an entry of
//!   the file (or the port-tree comment), and a target;
//! - a built-in chain holds exactly one rule of pfstate: `-m comment --comment pfstate -j
//!   PREFIX-HOOK`, into the owned chain named after it; every owned chain except the canary is
//!   reached from such a jump.

use std::collections::{BTreeMap, BTreeSet};

/// iptables' limit on chain names: XT_EXTENSION_MAXNAMELEN (29) minus the NUL.
const MAX_CHAIN_LEN: usize = 28;
/// The comment of rules in the port-range tree's dispatch chains (render_tree.rs).
const TREE_COMMENT: &str = "pfstate:[tree]";

/// The built-in chains of the tables pfstate uses.
fn builtin_chains(table: &str) -> &'static [&'static str] {
    match table {
        "nat" => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "filter" => &["INPUT", "FORWARD", "OUTPUT"],
        _ => &[],
    }
}

/// The targets pfstate may use in a table (terminal verdicts and the NAT/LOG extensions).
fn builtin_targets(table: &str) -> &'static [&'static str] {
    match table {
        "nat" => &["ACCEPT", "RETURN", "DNAT", "SNAT", "MASQUERADE"],
        "filter" => &["ACCEPT", "DROP", "RETURN", "REJECT", "LOG"],
        _ => &[],
    }
}

/// Split a rule into words as iptables-restore does: white space separates, double quotes
/// group, a backslash escapes the next character inside quotes.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let w = cur.get_or_insert_with(String::new);
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        _ => w.push(q),
                    }
                }
            }
            c if c.is_whitespace() => out.extend(cur.take()),
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(cur);
    out
}

/// One table of a payload: declared chains and rules as (chain, words after the chain).
#[derive(Default)]
struct Table {
    declared: Vec<String>,
    rules: Vec<(String, Vec<String>)>,
}

/// Read a payload into tables; lines it does not expect are problems.
fn tables(payload: &str, problems: &mut Vec<String>) -> BTreeMap<String, Table> {
    let mut out: BTreeMap<String, Table> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in payload.lines() {
        if let Some(t) = line.strip_prefix('*') {
            current = Some(t.to_string());
            out.entry(t.to_string()).or_default();
            continue;
        }
        let Some(table) = current.as_ref().and_then(|t| out.get_mut(t)) else {
            problems.push(format!("line outside a table: {line}"));
            continue;
        };
        let w = words(line);
        match w.first().map(String::as_str) {
            Some("COMMIT") => current = None,
            Some(d) if d.starts_with(':') => table.declared.push(d[1..].to_string()),
            Some("-A") if w.len() > 1 => table.rules.push((w[1].clone(), w[2..].to_vec())),
            Some("-I") if w.len() > 2 && w[2].parse::<u32>().is_ok() => {
                table.rules.push((w[1].clone(), w[3..].to_vec()))
            }
            _ => problems.push(format!("unexpected line: {line}")),
        }
    }
    if let Some(t) = current {
        problems.push(format!("table {t} has no COMMIT"));
    }
    out
}

/// The value after an option, for each time the option occurs.
fn values_of<'a>(rule: &'a [String], option: &str) -> Vec<&'a str> {
    rule.windows(2)
        .filter(|w| w[0] == option)
        .map(|w| w[1].as_str())
        .collect()
}

/// Every problem of a payload rendered under `prefix` for a file with these entry names.
pub fn check(payload: &str, prefix: &str, entries: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, table) in tables(payload, &mut problems) {
        check_table(&name, &table, prefix, entries, &mut problems);
    }
    problems
}

fn check_table(name: &str, t: &Table, prefix: &str, entries: &[String], out: &mut Vec<String>) {
    if builtin_chains(name).is_empty() {
        out.push(format!("table {name}: pfstate uses only nat and filter"));
    }
    let owned_prefix = format!("{prefix}-");
    let mut declared = BTreeSet::new();
    for c in &t.declared {
        let chain = c.split_whitespace().next().unwrap_or_default();
        if !chain.starts_with(&owned_prefix) || chain.len() == owned_prefix.len() {
            out.push(format!(
                "{name}: declared chain {chain} is not owned ({prefix}-...)"
            ));
        }
        if chain.len() > MAX_CHAIN_LEN {
            out.push(format!(
                "{name}: chain {chain} is longer than {MAX_CHAIN_LEN}"
            ));
        }
        if !declared.insert(chain.to_string()) {
            out.push(format!("{name}: chain {chain} declared twice"));
        }
    }
    let mut jumped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (chain, rule) in &t.rules {
        let line = format!("-A {chain} {}", rule.join(" "));
        check_targets(name, &line, rule, &declared, out);
        if declared.contains(chain) {
            check_owned_rule(&line, rule, entries, out);
        } else if builtin_chains(name).contains(&chain.as_str()) {
            match hook_jump(rule) {
                Some(to) => jumped.entry(chain).or_default().push(to),
                None => out.push(format!("{name}: not pfstate's jump: {line}")),
            }
        } else {
            out.push(format!("{name}: rule in an undeclared chain: {line}"));
        }
    }
    check_hooks(name, &jumped, &declared, &owned_prefix, out);
    check_reachable(name, t, &declared, &jumped, prefix, out);
}

/// Every `-j`/`-g` target exists; a rule has exactly one.
fn check_targets(
    table: &str,
    line: &str,
    rule: &[String],
    declared: &BTreeSet<String>,
    out: &mut Vec<String>,
) {
    let targets: Vec<&str> = ["-j", "-g"]
        .iter()
        .flat_map(|o| values_of(rule, o))
        .collect();
    if targets.len() != 1 {
        out.push(format!("{table}: {} targets: {line}", targets.len()));
    }
    for t in targets {
        if !builtin_targets(table).contains(&t) && !declared.contains(t) {
            out.push(format!(
                "{table}: target {t} is neither built in nor declared: {line}"
            ));
        }
    }
}

/// A rule of an owned chain: exactly one comment, naming an entry of the file.
fn check_owned_rule(line: &str, rule: &[String], entries: &[String], out: &mut Vec<String>) {
    let comments = values_of(rule, "--comment");
    let ok = match comments.as_slice() {
        [c] => {
            *c == TREE_COMMENT
                || c.strip_prefix("pfstate:")
                    .is_some_and(|e| entries.iter().any(|n| n == e))
        }
        _ => false,
    };
    if !ok {
        out.push(format!(
            "owned rule without its pfstate:ENTRY comment: {line}"
        ));
    }
}

/// The owned chain a built-in chain's rule jumps to, when the rule is exactly pfstate's jump.
fn hook_jump(rule: &[String]) -> Option<&str> {
    match rule {
        [m, comment, opt, text, j, to]
            if m == "-m"
                && comment == "comment"
                && opt == "--comment"
                && text == "pfstate"
                && j == "-j" =>
        {
            Some(to)
        }
        _ => None,
    }
}

/// One jump per built-in chain, into the owned chain of the same name, and one for every
/// owned chain named after a built-in chain.
fn check_hooks(
    table: &str,
    jumped: &BTreeMap<&str, Vec<&str>>,
    declared: &BTreeSet<String>,
    owned_prefix: &str,
    out: &mut Vec<String>,
) {
    for (from, tos) in jumped {
        if tos.len() != 1 {
            out.push(format!(
                "{table}: {from} has {} jumps of pfstate",
                tos.len()
            ));
        }
        for to in tos {
            if *to != format!("{owned_prefix}{from}") {
                out.push(format!(
                    "{table}: {from} jumps to {to}, not {owned_prefix}{from}"
                ));
            }
        }
    }
    for hook in builtin_chains(table) {
        let base = format!("{owned_prefix}{hook}");
        if declared.contains(&base) && !jumped.contains_key(hook) {
            out.push(format!(
                "{table}: {base} is declared but {hook} has no jump to it"
            ));
        }
    }
}

/// Every owned chain but the canary is reached from a hook jump: no dead rules.
fn check_reachable(
    table: &str,
    t: &Table,
    declared: &BTreeSet<String>,
    jumped: &BTreeMap<&str, Vec<&str>>,
    prefix: &str,
    out: &mut Vec<String>,
) {
    let mut reached: BTreeSet<&str> = jumped.values().flatten().copied().collect();
    let mut frontier: Vec<&str> = reached.iter().copied().collect();
    while let Some(chain) = frontier.pop() {
        for (_, rule) in t.rules.iter().filter(|(c, _)| c == chain) {
            for to in ["-j", "-g"].iter().flat_map(|o| values_of(rule, o)) {
                if declared.contains(to) && reached.insert(to) {
                    frontier.push(to);
                }
            }
        }
    }
    let canary = format!("{prefix}-CANARY");
    if t.rules.iter().any(|(c, _)| *c == canary) {
        out.push(format!("{table}: {canary} must stay empty"));
    }
    for c in declared {
        if *c != canary && !reached.contains(c.as_str()) {
            out.push(format!("{table}: {c} is reached by no jump"));
        }
    }
}
