//! What "untouched" means: the foreign part of a save, compared before and after.

use super::*;

pub(super) const BUILTINS: &[(&str, &[&str])] = &[
    ("raw", &["PREROUTING", "OUTPUT"]),
    (
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("security", &["INPUT", "FORWARD", "OUTPUT"]),
];

/// Everything not in a chain `P-*` of one of `prefixes` and not a jump/goto to one: built-in
/// policies (absent = ACCEPT), user chain declarations, the rules of each chain in order.
/// Counters, comments and table/chain print order are ignored (as check-untouched.sh does).
pub(super) fn foreign(save: &str, prefixes: &[&str]) -> String {
    let owned = |c: &str| prefixes.iter().any(|p| c.starts_with(&format!("{p}-")));
    let saved = pfstate::ruleset::dump::parse(save);
    let mut out = String::new();
    for (table, builtins) in BUILTINS {
        out.push_str(&format!("*{table}\n"));
        let t = saved.table(table).cloned().unwrap_or_default();
        for b in *builtins {
            let pol = t.chain(b).map_or("ACCEPT", |c| c.policy.as_str());
            out.push_str(&format!(":{b} {pol}\n"));
        }
        let mut users: Vec<&String> = t
            .chains
            .keys()
            .filter(|c| !builtins.contains(&c.as_str()) && !owned(c))
            .collect();
        users.sort();
        for u in &users {
            out.push_str(&format!(":{u} -\n"));
        }
        for (name, chain) in &t.chains {
            if owned(name) {
                continue;
            }
            for r in &chain.rules {
                if pfstate::ruleset::dump::target(r).is_some_and(owned) {
                    continue;
                }
                out.push_str(r);
                out.push('\n');
            }
        }
    }
    out
}

/// pfstate's own part of a save (prefix PFSTATE): its chains with their rules and its jumps
/// with the chain they hang from. Positions relative to foreign rules are not part of it.
pub(super) fn own(save: &str) -> String {
    let saved = pfstate::ruleset::dump::parse(save);
    let mut out = String::new();
    for (table, t) in &saved.tables {
        for (name, chain) in &t.chains {
            if name.starts_with("PFSTATE-") {
                out.push_str(&format!("{table} :{name}\n"));
            }
            for r in &chain.rules {
                if name.starts_with("PFSTATE-")
                    || pfstate::ruleset::dump::target(r).is_some_and(|t| t.starts_with("PFSTATE-"))
                {
                    out.push_str(&format!("{table} {r}\n"));
                }
            }
        }
    }
    out
}

/// The save without counters and `#` lines: what "changes nothing" is compared on.
pub(super) fn plain(save: &str) -> String {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) => &l[..i],
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

pub(super) fn assert_untouched(ns: &Ns, before: &[String; 2], prefixes: &[&str], step: &str) {
    let now = ns.saves();
    for (i, fam) in ["IPv4", "IPv6"].iter().enumerate() {
        let a = foreign(&before[i], prefixes);
        let b = foreign(&now[i], prefixes);
        if a != b {
            panic!(
                "{step}: foreign {fam} rules changed:\n{}",
                pfstate::plan::view::unified(&a, &b, "before", "now")
            );
        }
    }
}

pub(super) fn assert_same(a: &[String; 2], b: &[String; 2], step: &str) {
    for i in 0..2 {
        let (x, y) = (plain(&a[i]), plain(&b[i]));
        if x != y {
            panic!(
                "{step}: the ruleset changed:\n{}",
                pfstate::plan::view::unified(&x, &y, "before", "after")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// States
