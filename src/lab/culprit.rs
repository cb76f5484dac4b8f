//! Which of pfstate's entries dropped a probe: the packet counters of the owned rules that
//! drop or reject, read before and after the probe in the lab's gateway. The lab holds no one
//! else's rules, so a counter that moved names the entry (by its `pfstate:NAME` comment).

use std::collections::BTreeMap;

use super::netns::Netns;
use crate::model::Family;

/// Packets counted so far by each dropping rule of pfstate's, by rule text.
pub fn drop_counters(gw: &Netns, family: Family) -> BTreeMap<String, u64> {
    let save = match family {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    };
    let text = gw.exec(save, &["-c", "-t", "filter"]).unwrap_or_default();
    text.lines().filter_map(dropping_rule).collect()
}

/// `[12:720] -A PFSTATE-FORWARD ... -j DROP` -> (rule, 12) for DROP and REJECT rules.
fn dropping_rule(line: &str) -> Option<(String, u64)> {
    let (counts, rule) = line.strip_prefix('[')?.split_once("] ")?;
    let packets = counts.split_once(':')?.0.parse().ok()?;
    let drops = rule.ends_with(" -j DROP") || rule.contains(" -j REJECT");
    (drops && entry(rule).is_some()).then(|| (rule.to_string(), packets))
}

/// The entry named by a rule's `pfstate:NAME` comment.
pub fn entry(rule: &str) -> Option<&str> {
    let rest = rule.split_once("--comment ")?.1;
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let name = rest.strip_prefix("pfstate:")?;
    Some(name.split(['"', ' ']).next().unwrap_or(name))
}

/// The entry whose dropping rule counted packets between two snapshots, if one did.
pub fn culprit(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Option<String> {
    after
        .iter()
        .find(|(rule, n)| **n > before.get(*rule).copied().unwrap_or(0))
        .and_then(|(rule, _)| entry(rule).map(str::to_string))
}

/// How a culprit reads in `try`'s table.
pub fn explain(entry: &str) -> String {
    match entry {
        "default-input" | "default-forward" => format!(
            "dropped by the default verdict (`default:`, {entry}): nothing accepted it before"
        ),
        _ => format!("dropped by filter entry `{entry}`, which comes before the forward's accept"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_counter_names_its_entry() {
        let line =
            "[3:180] -A PFSTATE-FORWARD -p tcp -m comment --comment \"pfstate:block\" -j DROP";
        let (rule, n) = dropping_rule(line).unwrap();
        assert_eq!(n, 3);
        let before = BTreeMap::from([(rule.clone(), 1)]);
        let after = BTreeMap::from([(rule, 3)]);
        assert_eq!(culprit(&before, &after).as_deref(), Some("block"));
        assert_eq!(culprit(&after, &after), None);
        assert_eq!(
            dropping_rule(
                "[3:180] -A PFSTATE-FORWARD -m comment --comment \"pfstate:a\" -j ACCEPT"
            ),
            None
        );
        assert_eq!(
            entry("-A X -m comment --comment pfstate:default-input -j DROP"),
            Some("default-input")
        );
    }
}
