//! Where pfstate's jump goes in a chain it does not own, and whether a live jump is still there.
//!
//! Placement is relative to the other systems' rules, never a fixed index
//! (see docs/coexistence.md for the reasoning per built-in chain):
//!
//! - Calico's Felix keeps every built-in chain as `[its inserts][other rules][its appends]` and
//!   moves anything that breaks that layout on its next refresh. pfstate's jump therefore lives
//!   in the "other rules" window: after Felix's last inserted `cali:` rule and before its first
//!   appended one (nat POSTROUTING `-j cali-POSTROUTING`, filter FORWARD's mark rules). Felix
//!   never moves a rule that sits in that window, so neither side fights the other.
//! - Inside the window a new jump is inserted at the top (the first position after Felix's
//!   inserts), above kube-proxy, kubelet, libvirt, Docker's nat jumps and ufw, none of which
//!   moves an existing jump, except in nat POSTROUTING where it is appended (before Calico's
//!   trailing rule), so the source NAT of other systems keeps precedence.
//! - A jump below an unconditional verdict (`-j RETURN`, as old Docker versions appended to
//!   DOCKER-USER, or `-j ACCEPT`/`DROP`) is never reached: such a position is misplaced too.
//!
//! A live jump is "well placed" when it is anywhere in that window; it is not moved merely
//! because a foreign tool inserted a rule above it later (libvirt and kube-proxy insert their
//! missing jumps at position 1 and never move them again, so there is nothing to fight over).

use crate::ruleset::dump;
use crate::ruleset::words::{option, unquote, words};
use crate::ruleset::{Builtin, Table};

/// Whether a rule belongs to Calico (Felix tags every rule it writes with `cali:<hash>`).
pub fn is_cali(rule: &str) -> bool {
    option(&words(rule), "--comment").is_some_and(|c| unquote(c).starts_with("cali:"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Felix {
    Insert,
    Append,
}

/// How Felix places one of its rules in a built-in chain (calico felix/rules: it appends in
/// nat POSTROUTING and the mark rules of filter FORWARD, and inserts everywhere else).
fn felix_kind(table: Table, chain: &str, rule: &str) -> Option<Felix> {
    if !is_cali(rule) {
        return None;
    }
    if table == Table::Nat && chain == Builtin::Postrouting.name() {
        return Some(Felix::Append);
    }
    if table == Table::Filter
        && chain == Builtin::Forward.name()
        && dump::target(rule) != Some("cali-FORWARD")
    {
        return Some(Felix::Append);
    }
    Some(Felix::Insert)
}

/// `-A CHAIN -j ACCEPT|DROP|REJECT|RETURN` with no match at all: nothing below it is reached.
fn unconditional_verdict(rule: &str) -> bool {
    let toks = words(rule);
    toks.len() == 4 && toks[2] == "-j" && matches!(toks[3], "ACCEPT" | "DROP" | "REJECT" | "RETURN")
}

/// The window of acceptable 0-based insertion indices `(lo, hi)` among `others` (the chain's
/// rules without pfstate's jump).
fn window(table: Table, chain: &str, others: &[&str]) -> (usize, usize) {
    let lo = others
        .iter()
        .rposition(|r| felix_kind(table, chain, r) == Some(Felix::Insert))
        .map_or(0, |i| i + 1);
    let mut hi = others
        .iter()
        .position(|r| felix_kind(table, chain, r) == Some(Felix::Append))
        .unwrap_or(others.len());
    if let Some(v) = others.iter().position(|r| unconditional_verdict(r)) {
        hi = hi.min(v);
    }
    // A layout Felix has not repaired yet (its appends above its inserts): stay after the
    // inserts, which is where Felix will leave us once it has.
    (lo, hi.max(lo))
}

/// The 1-based `-I` position for a new jump into `chain`, given the chain's other rules;
/// `None` means append.
pub fn insert_position(table: Table, chain: &str, others: &[&str]) -> Option<usize> {
    let (lo, hi) = window(table, chain, others);
    if table == Table::Nat && chain == Builtin::Postrouting.name() {
        return (hi < others.len()).then_some(hi + 1);
    }
    Some(lo + 1)
}

/// Whether the jump at 0-based `index` of `rules` (the whole live chain) is well placed.
pub fn well_placed(table: Table, chain: &str, rules: &[&str], index: usize) -> bool {
    let others: Vec<&str> = rules
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, r)| *r)
        .collect();
    let (lo, hi) = window(table, chain, &others);
    (lo..=hi).contains(&index)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALI_PRE: &str =
        "-A PREROUTING -m comment --comment \"cali:6gwbT8clXdHdC1b1\" -j cali-PREROUTING";
    const KUBE: &str =
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
    const DOCKER: &str = "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER";
    const JUMP: &str = "-A PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING";
    const CALI_POST: &str =
        "-A POSTROUTING -m comment --comment \"cali:0i8pjzKKPyA34aQD\" -j cali-POSTROUTING";
    const MASQ: &str = "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE";
    const PJUMP: &str = "-A POSTROUTING -m comment --comment pfstate -j PFSTATE-POSTROUTING";

    #[test]
    fn inserts_after_calico_block_and_top_otherwise() {
        assert_eq!(
            insert_position(Table::Nat, "PREROUTING", &[CALI_PRE, KUBE, DOCKER]),
            Some(2)
        );
        assert_eq!(
            insert_position(Table::Nat, "PREROUTING", &[KUBE, DOCKER]),
            Some(1)
        );
        assert_eq!(insert_position(Table::Nat, "PREROUTING", &[]), Some(1));
    }

    #[test]
    fn postrouting_appends_before_calico_trailing_rule() {
        assert_eq!(
            insert_position(Table::Nat, "POSTROUTING", &[MASQ, CALI_POST]),
            Some(2)
        );
        assert_eq!(insert_position(Table::Nat, "POSTROUTING", &[MASQ]), None);
    }

    #[test]
    fn window_accepts_any_position_felix_leaves_alone() {
        // After the calico block, anywhere among the other rules.
        assert!(well_placed(
            Table::Nat,
            "PREROUTING",
            &[CALI_PRE, JUMP, KUBE, DOCKER],
            1
        ));
        assert!(well_placed(
            Table::Nat,
            "PREROUTING",
            &[CALI_PRE, KUBE, JUMP, DOCKER],
            2
        ));
        // Above Felix's insert: Felix would move itself above us again and again.
        assert!(!well_placed(
            Table::Nat,
            "PREROUTING",
            &[JUMP, CALI_PRE, KUBE],
            0
        ));
        // Below Felix's trailing append.
        assert!(!well_placed(
            Table::Nat,
            "POSTROUTING",
            &[MASQ, CALI_POST, PJUMP],
            2
        ));
        assert!(well_placed(
            Table::Nat,
            "POSTROUTING",
            &[MASQ, PJUMP, CALI_POST],
            1
        ));
    }

    #[test]
    fn below_an_unconditional_return_is_misplaced() {
        let ret = "-A DOCKER-USER -j RETURN";
        let j = "-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD";
        assert!(!well_placed(Table::Filter, "DOCKER-USER", &[ret, j], 1));
        assert!(well_placed(Table::Filter, "DOCKER-USER", &[j, ret], 0));
        assert_eq!(
            insert_position(Table::Filter, "DOCKER-USER", &[ret]),
            Some(1)
        );
    }

    #[test]
    fn felix_forward_marks_are_appends() {
        let cali_fwd = "-A FORWARD -m comment --comment \"cali:wUHhoiAYhphO9Mso\" -j cali-FORWARD";
        let mark = "-A FORWARD -m comment --comment \"cali:mp77cMpurHhyjLrM\" -j MARK --set-xmark 0x10000/0x10000";
        let j = "-A FORWARD -m comment --comment pfstate -j PFSTATE-FORWARD";
        assert_eq!(
            insert_position(
                Table::Filter,
                "FORWARD",
                &[cali_fwd, "-A FORWARD -j X", mark]
            ),
            Some(2)
        );
        assert!(!well_placed(
            Table::Filter,
            "FORWARD",
            &[cali_fwd, mark, j],
            2
        ));
    }
}
