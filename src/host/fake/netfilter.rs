//! An in-memory packet filter that answers `iptables-save` and applies `iptables-restore
//! --noflush` payloads the way iptables 1.8 (nf_tables) does, as measured on a real kernel:
//!
//! - each `*table` ... `COMMIT` block stands alone: a block that fails leaves its table as it
//!   was, blocks committed before it stay, and nothing after it is read;
//! - `:CHAIN - [0:0]` creates a user chain, or flushes it when it exists; on a built-in chain
//!   it only sets the policy (`-` sets nothing);
//! - `-A`/`-I` to a missing chain, a jump to a missing chain that is not a target extension,
//!   `-I` past the end + 1, `-D` of a rule that is not there (compared as text), `-X` of a
//!   built-in, missing, non-empty or referenced chain, and a block without `COMMIT` all fail;
//! - `iptables-save` lists tables in the order mangle, security, raw, filter, nat, built-in
//!   chains in hook order, then user chains by name; counters are always `[0:0]`.
//!
//! Every COMMIT is a step of the shared [`Faults`], so a test can make any one of them fail.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::Faults;
use crate::error::HostError;
use crate::host::Netfilter;
use crate::model::Family;
use crate::ruleset::dump::target;

/// Built-in chains per table, in the order `iptables-save` prints them.
const BUILTINS: [(&str, &[&str]); 5] = [
    (
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
    ("security", &["INPUT", "FORWARD", "OUTPUT"]),
    ("raw", &["PREROUTING", "OUTPUT"]),
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
];

/// Targets that are extensions, not chains (a jump to anything else needs the chain).
const TARGETS: &[&str] = &[
    "ACCEPT",
    "DROP",
    "RETURN",
    "QUEUE",
    "NFQUEUE",
    "REJECT",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "REDIRECT",
    "NETMAP",
    "LOG",
    "NFLOG",
    "MARK",
    "CONNMARK",
    "CT",
    "NOTRACK",
    "TCPMSS",
    "CHECKSUM",
    "TPROXY",
    "TRACE",
    "AUDIT",
    "SET",
    "CLASSIFY",
    "DSCP",
    "TOS",
    "TTL",
    "HL",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chain {
    /// `Some` for built-in chains.
    policy: Option<String>,
    /// Rule text after `-A NAME `.
    rules: Vec<String>,
}

/// Chains by name; built-ins are told apart by their policy.
type Table = BTreeMap<String, Chain>;

/// The fake kernel packet filter of both families.
#[derive(Debug, Default)]
pub struct FakeNetfilter {
    tables: Mutex<[BTreeMap<String, Table>; 2]>,
    faults: Faults,
    /// Families whose save fails (a missing or broken `ip6tables-save`).
    unreadable: Mutex<Vec<Family>>,
}

fn index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

fn builtins(table: &str) -> &'static [&'static str] {
    BUILTINS
        .iter()
        .find(|(t, _)| *t == table)
        .map_or(&[], |(_, b)| b)
}

fn new_table(name: &str) -> Table {
    builtins(name)
        .iter()
        .map(|b| {
            let chain = Chain {
                policy: Some("ACCEPT".into()),
                rules: Vec::new(),
            };
            (b.to_string(), chain)
        })
        .collect()
}

fn refused(line: usize, why: impl std::fmt::Display) -> HostError {
    HostError::Command {
        program: "fake iptables-restore".into(),
        message: format!("line {line} failed: {why}"),
    }
}

const NO_CHAIN: &str = "No chain/target/match by that name.";

/// A jump to a chain that is not there (and is no target extension) is refused.
fn check_target(t: &Table, rule: &str) -> Result<(), String> {
    match target(rule) {
        Some(x) if !t.contains_key(x) && !TARGETS.contains(&x) => {
            Err(format!("Chain '{x}' does not exist"))
        }
        _ => Ok(()),
    }
}

/// One command of a block applied to the table being built; `Err` is the refusal's reason.
fn command(t: &mut Table, line: &str) -> Result<(), String> {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    let (chain, rule) = rest.split_once(' ').unwrap_or((rest, ""));
    match cmd {
        "-A" | "-I" => add(t, cmd == "-I", chain, rule)?,
        "-D" => {
            check_target(t, rule)?;
            let c = t.get_mut(chain).ok_or(NO_CHAIN)?;
            let i = c.rules.iter().position(|r| r == rule);
            let i = i.ok_or("Bad rule (does a matching rule exist in that chain?).")?;
            c.rules.remove(i);
        }
        "-N" if !t.contains_key(chain) => {
            let c = Chain {
                policy: None,
                rules: Vec::new(),
            };
            t.insert(chain.to_string(), c);
        }
        "-F" => t
            .iter_mut()
            .filter(|(n, _)| chain.is_empty() || *n == chain)
            .for_each(|(_, c)| c.rules.clear()),
        "-X" => {
            let c = t.get(chain).ok_or(NO_CHAIN)?;
            let referenced = t
                .values()
                .flat_map(|c| &c.rules)
                .any(|r| target(r) == Some(chain));
            if c.policy.is_some() || !c.rules.is_empty() || referenced {
                return Err(format!(
                    "CHAIN_DEL failed (Device or resource busy): chain {chain}"
                ));
            }
            t.remove(chain);
        }
        _ => return Err(format!("unknown command `{line}`")),
    }
    Ok(())
}

/// `-A CHAIN rule`, or `-I CHAIN [n] rule` (1-based, at most one past the end).
fn add(t: &mut Table, insert: bool, chain: &str, rule: &str) -> Result<(), String> {
    check_target(t, rule)?;
    let c = t.get_mut(chain).ok_or(NO_CHAIN)?;
    let (pos, rule) = match rule.split_once(' ') {
        _ if !insert => (None, rule),
        Some((n, r)) if n.parse::<usize>().is_ok() => (n.parse().ok(), r),
        _ => (Some(1), rule),
    };
    match pos {
        None => c.rules.push(rule.to_string()),
        Some(p) if p >= 1 && p <= c.rules.len() + 1 => c.rules.insert(p - 1, rule.to_string()),
        Some(_) => return Err("Index of insertion too big.".into()),
    }
    Ok(())
}

/// `:NAME POLICY [p:b]`: create or flush a user chain, or set a built-in chain's policy.
fn declare(t: &mut Table, line: &str) {
    let mut w = line[1..].split_whitespace();
    let (name, policy) = (w.next().unwrap_or_default(), w.next().unwrap_or("-"));
    match t.get_mut(name) {
        Some(c) if c.policy.is_some() => {
            if policy != "-" {
                c.policy = Some(policy.to_string());
            }
        }
        Some(c) => c.rules.clear(),
        None => {
            t.insert(
                name.to_string(),
                Chain {
                    policy: None,
                    rules: Vec::new(),
                },
            );
        }
    }
}

impl FakeNetfilter {
    pub(super) fn new(faults: Faults) -> FakeNetfilter {
        FakeNetfilter {
            tables: Mutex::default(),
            faults,
            unreadable: Mutex::default(),
        }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, [BTreeMap<String, Table>; 2]> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make every later save of `family` fail.
    pub fn fail_saves(&self, family: Family) {
        if let Ok(mut u) = self.unreadable.lock() {
            u.push(family);
        }
    }

    /// Replace whole tables with those of an `iptables-save` text (a fixture): what
    /// `iptables-restore` without `--noflush` does. Counters are dropped.
    pub fn load(&self, family: Family, save: &str) {
        let mut all = self.tables();
        let mut current: Option<(String, Table)> = None;
        for line in save.lines().map(str::trim_end) {
            if let Some(name) = line.strip_prefix('*') {
                let mut t = new_table(name);
                t.values_mut().for_each(|c| c.rules.clear());
                current = Some((name.to_string(), t));
            } else if line == "COMMIT" {
                if let Some((name, t)) = current.take() {
                    all[index(family)].insert(name, t);
                }
            } else if let Some((_, t)) = current.as_mut() {
                if line.starts_with(':') {
                    declare(t, line);
                } else if let Some(rest) = line.strip_prefix("-A ") {
                    let (chain, rule) = rest.split_once(' ').unwrap_or((rest, ""));
                    if let Some(c) = t.get_mut(chain) {
                        c.rules.push(rule.to_string());
                    }
                }
            }
        }
    }

    /// The `iptables-save` text of one family (`table` empty: every table), as 1.8 prints it.
    pub fn dump(&self, family: Family, table: &str, counters: bool) -> String {
        let all = self.tables();
        let mut names: Vec<&String> = all[index(family)].keys().collect();
        let rank = |n: &str| {
            BUILTINS
                .iter()
                .position(|(t, _)| *t == n)
                .unwrap_or(BUILTINS.len())
        };
        names.sort_by_key(|n| (rank(n), n.to_string()));
        let mut out = String::new();
        for name in names
            .into_iter()
            .filter(|n| table.is_empty() || *n == table)
        {
            let t = &all[index(family)][name];
            let order = builtins(name);
            let mut chains: Vec<(&String, &Chain)> = t.iter().collect();
            chains.sort_by_key(|(n, c)| {
                let pos = order.iter().position(|b| b == n).unwrap_or(order.len());
                (c.policy.is_none(), pos, n.to_string())
            });
            out.push_str(&format!("*{name}\n"));
            for (n, c) in &chains {
                out.push_str(&format!(
                    ":{n} {} [0:0]\n",
                    c.policy.as_deref().unwrap_or("-")
                ));
            }
            for (n, c) in &chains {
                for r in &c.rules {
                    let count = if counters { "[0:0] " } else { "" };
                    out.push_str(&format!("{count}-A {n} {r}\n"));
                }
            }
            out.push_str("COMMIT\n");
        }
        out
    }

    /// Apply one `*table` block (lines after `*table`, up to and including `COMMIT`).
    fn block(&self, family: Family, name: &str, lines: &[(usize, &str)]) -> Result<(), HostError> {
        let mut t = self.tables()[index(family)]
            .get(name)
            .cloned()
            .unwrap_or_else(|| new_table(name));
        for &(no, line) in lines {
            if line == "COMMIT" {
                self.faults
                    .step(format!("restore {} {name}", family.name()))?;
                self.tables()[index(family)].insert(name.to_string(), t);
                return Ok(());
            }
            if line.starts_with(':') {
                declare(&mut t, line);
            } else {
                command(&mut t, line).map_err(|why| refused(no, why))?;
            }
        }
        Err(refused(lines.last().map_or(0, |l| l.0), "COMMIT expected"))
    }
}

impl Netfilter for FakeNetfilter {
    fn save(&self, family: Family, table: &str) -> Result<String, HostError> {
        if self.unreadable.lock().is_ok_and(|u| u.contains(&family)) {
            return Err(HostError::Command {
                program: format!("fake {family} save"),
                message: "cannot read the rules".into(),
            });
        }
        Ok(self.dump(family, table, false))
    }

    fn save_counters(&self, family: Family, table: &str) -> Result<String, HostError> {
        Ok(self.dump(family, table, true))
    }

    fn restore(&self, family: Family, payload: &str) -> Result<(), HostError> {
        let lines: Vec<(usize, &str)> = payload
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let mut i = 0;
        while i < lines.len() {
            let (no, line) = lines[i];
            let name = line
                .strip_prefix('*')
                .ok_or_else(|| refused(no, "a table (`*name`) expected"))?;
            let end = lines[i + 1..]
                .iter()
                .position(|(_, l)| l.starts_with('*'))
                .map_or(lines.len(), |p| i + 1 + p);
            self.block(family, name, &lines[i + 1..end])?;
            i = end;
        }
        Ok(())
    }
}
