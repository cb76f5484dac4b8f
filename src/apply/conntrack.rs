//! Delete conntrack entries of forwards that changed, so existing flows (notably UDP, whose
//! entries outlive any rule change) do not keep their old translation or lack of one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use crate::host::Conntrack;
use crate::model::{Family, Forward, Model, PortRange, Proto};
use crate::names;
use crate::plan::Plan;
use crate::plan::observe::Observed;
use crate::ruleset::words::{option, words};
use crate::spec::values::parse_port_range;

/// What identifies a forward's connections in the conntrack table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub name: String,
    pub family: Family,
    pub protos: Vec<Proto>,
    pub port: PortRange,
    pub address: Option<IpAddr>,
}

impl Listen {
    pub fn of(f: &Forward) -> Listen {
        Listen {
            name: f.name.clone(),
            family: f.family,
            protos: f.protos.clone(),
            port: f.port,
            address: f.address,
        }
    }

    /// Recover a removed forward's listen from one of its live DNAT dispatch rules
    /// (`-d ADDR/32 -p tcp ... --dport 80 ...`), so its connections can be flushed too.
    pub fn from_rule(name: &str, family: Family, rule: &str) -> Option<Listen> {
        let words = words(rule);
        let after = |flag: &str| option(&words, flag);
        let proto = match after("-p")? {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return None,
        };
        let port = parse_port_range(after("--dport")?).ok()?;
        let address = after("-d")
            .and_then(|d| d.split('/').next())
            .and_then(|a| a.parse().ok());
        Some(Listen {
            name: name.to_string(),
            family,
            protos: vec![proto],
            port,
            address,
        })
    }
}

impl Listen {
    /// Whether a conntrack entry (protocol, original destination port and address) is one of
    /// this listen's: what its flush deletes.
    fn catches(&self, proto: &str, port: u16, dst: &str) -> bool {
        self.protos.iter().any(|p| p.name() == proto)
            && self.port.lo <= port
            && port <= self.port.hi
            && self.address.is_none_or(|a| dst.parse().ok() == Some(a))
    }
}

/// How many active connections the flush of these listens cuts, per entry name (entries with
/// none left out; a connection counted once per entry). `None` when the conntrack table
/// cannot be listed. One `conntrack -L` per family in use.
pub fn count_cut(tool: &dyn Conntrack, listens: &[Listen]) -> Option<Vec<(String, usize)>> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    for family in [Family::V4, Family::V6] {
        let of_family = flushable(listens, family);
        if of_family.is_empty() {
            continue;
        }
        let listed = tool.list(family, false).ok()?;
        count_listed(&of_family, &listed, &mut out);
    }
    Some(out.into_iter().collect())
}

/// The listens of one family whose ports can be flushed one by one.
fn flushable(listens: &[Listen], family: Family) -> Vec<&Listen> {
    listens
        .iter()
        .filter(|l| l.family == family && l.port.width() <= MAX_PORTS_TO_FLUSH)
        .collect()
}

/// Count, among the `listed` entries of one family, those each listen catches.
fn count_listed(listens: &[&Listen], listed: &str, out: &mut BTreeMap<String, usize>) {
    for (proto, port, dst) in listed.lines().filter_map(entry_of_line) {
        let names: BTreeSet<&str> = listens
            .iter()
            .filter(|l| l.catches(&proto, port, &dst))
            .map(|l| l.name.as_str())
            .collect();
        for n in names {
            *out.entry(n.to_string()).or_default() += 1;
        }
    }
}

/// One line per entry whose connections a change cuts: `will be` (plan) or `were` (apply).
pub fn cut_notes(cut: &[(String, usize)], tense: &str) -> Vec<String> {
    cut.iter()
        .map(|(name, n)| {
            let what = if *n == 1 { "connection" } else { "connections" };
            format!("`{name}`: {n} active {what} {tense} cut (its conntrack entries are deleted so no flow keeps the old translation)")
        })
        .collect()
}

/// Ranges wider than this are not flushed port by port (the conntrack tool takes one port).
const MAX_PORTS_TO_FLUSH: u32 = 1024;

const NO_TOOL: &str = "conntrack tool not found: existing connections keep their old translation until they end (install the conntrack package)";

/// Delete the entries of these listens and say how many connections of each entry that cut.
/// The table is listed once per family, after the rules changed: every entry made under the
/// old rules is in that list, and only the ports that have entries are deleted (a first apply
/// of 10,000 forwards would otherwise start 10,000 `conntrack -D`). Returns the warnings and
/// the count, as [`count_cut`] gives it.
pub fn flush_all(tool: &dyn Conntrack, listens: &[Listen]) -> (Vec<String>, Vec<(String, usize)>) {
    let mut warnings: Vec<String> = Vec::new();
    let mut cut: BTreeMap<String, usize> = BTreeMap::new();
    for family in [Family::V4, Family::V6] {
        let of_family: Vec<&Listen> = listens.iter().filter(|l| l.family == family).collect();
        if of_family.is_empty() {
            continue;
        }
        let Ok(listed) = tool.list(family, false) else {
            return (vec![NO_TOOL.to_string()], Vec::new());
        };
        count_listed(&flushable(listens, family), &listed, &mut cut);
        for w in flush_listed(tool, family, &of_family, &listed) {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    (warnings, cut.into_iter().collect())
}

/// Delete, among the `listed` entries of one family, those of the given listens.
fn flush_listed(
    tool: &dyn Conntrack,
    family: Family,
    listens: &[&Listen],
    listed: &str,
) -> Vec<String> {
    let mut warnings = Vec::new();
    // (proto, port, original destination) of every entry; usually few, often none.
    let mut entries: Vec<(String, u16, String)> =
        listed.lines().filter_map(entry_of_line).collect();
    entries.sort();
    entries.dedup();
    let mut done: Vec<(String, u16, Option<IpAddr>)> = Vec::new();
    for l in listens {
        if l.port.width() > MAX_PORTS_TO_FLUSH {
            warnings.push(format!(
                "forward `{}`: not flushing conntrack entries of {} ports",
                l.name,
                l.port.width()
            ));
            continue;
        }
        for (proto, port, dst) in &entries {
            let hit = l.catches(proto, *port, dst);
            let key = (proto.clone(), *port, l.address);
            if hit && !done.contains(&key) {
                let _ = tool.delete(family, proto, *port, l.address);
                done.push(key);
            }
        }
    }
    warnings
}

/// `tcp 6 431999 ESTABLISHED src=.. dst=.. sport=.. dport=.. ...` -> (proto, original dport,
/// original dst): the first `dst=`/`dport=` belong to the original direction.
fn entry_of_line(line: &str) -> Option<(String, u16, String)> {
    let proto = line.split_whitespace().next()?.to_string();
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(name))
            .map(str::to_string)
    };
    Some((proto, field("dport=")?.parse().ok()?, field("dst=")?))
}

/// The listens whose conntrack entries must go: forwards that are new or changed (their old
/// entries, or un-NATed ones made before the rule existed, would win over the new rules) and
/// forwards that were removed (found from their live DNAT rules, in PREFIX-PREROUTING or, for
/// a large rule set, in the leaves of its tree).
pub(crate) fn stale_listens(model: &Model, observed: &Observed, plan: &Plan) -> Vec<Listen> {
    let prerouting = names::owned_chain(&model.prefix, "PREROUTING");
    let forwards: HashMap<(&str, Family), &Forward> = model
        .forwards
        .iter()
        .map(|f| ((f.name.as_str(), f.family), f))
        .collect();
    let mut out: Vec<Listen> = Vec::new();
    for fp in &plan.families {
        if fp.changed_entries.is_empty() {
            continue;
        }
        // The live DNAT dispatch rules of each changed entry, read once.
        let mut live: HashMap<String, Vec<&String>> = HashMap::new();
        if let Some(t) = observed
            .saved(fp.family)
            .table(crate::ruleset::Table::Nat.name())
        {
            for (name, chain) in &t.chains {
                let dispatch = *name == prerouting
                    || crate::ruleset::table::tree_base_chain(&model.prefix, name).as_deref()
                        == Some(prerouting.as_str());
                if !dispatch {
                    continue;
                }
                for r in &chain.rules {
                    if let Some(e) =
                        crate::ruleset::rule::entry_of(r).filter(|e| fp.changed_entries.contains(e))
                    {
                        live.entry(e).or_default().push(r);
                    }
                }
            }
        }
        let mut seen: HashSet<(String, Vec<Proto>, PortRange, Option<std::net::IpAddr>)> =
            HashSet::new();
        let mut push = |l: Listen, out: &mut Vec<Listen>| {
            if seen.insert((l.name.clone(), l.protos.clone(), l.port, l.address)) {
                out.push(l);
            }
        };
        for name in &fp.changed_entries {
            if let Some(f) = forwards.get(&(name.as_str(), fp.family)) {
                push(Listen::of(f), &mut out);
            }
            // The old listen too: a changed port or address leaves entries on the old one.
            for r in live.get(name).into_iter().flatten() {
                if let Some(l) = Listen::from_rule(name, fp.family, r) {
                    push(l, &mut out);
                }
            }
        }
    }
    out
}
