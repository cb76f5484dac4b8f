//! `pfstate status`: owned chains with counters per entry, active connections per forward,
//! drift, and a pending confirmation.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::apply::pending::{Pending, rfc3339};
use crate::error::Error;
use crate::host::{Conntrack, Host};
use crate::model::{Family, Model};
use crate::names;
use crate::plan::{self, observe};
use crate::render;
use crate::render::files::unit::STATE_PATH;
use crate::ruleset::rule::entry_of;
use crate::ruleset::words::split_rule;
use crate::ruleset::{TABLES, Table, dump};
use crate::spec::{self, multi};

use super::ctx::{Ctx, Outcome};

pub fn status(ctx: &Ctx, host: &Host, files: &[PathBuf]) -> Result<Outcome, Error> {
    let path = ctx.root.path(STATE_PATH);
    let applied = !files.is_empty() || path.exists();
    let (model, _source) = if !files.is_empty() {
        multi::load_all(files)?
    } else if applied {
        spec::load(&path)?
    } else {
        (Model::empty(names::DEFAULT_PREFIX), String::new())
    };
    let counters = entry_counters(host, &model);
    let conns = connections_per_forward(host.conntrack, &model);
    let (text, entries) = entry_rows(&model, &counters, &conns);
    let desired = render::render(&model);
    let observed = observe::observe(host, &model, &desired, &Default::default())?;
    let pl = plan::plan(&desired, &observed);
    let drift = pl.kernel_changes() || pl.sysctl_changes();
    let mut out = Outcome {
        diff: text,
        changed: drift,
        ..Outcome::default()
    };
    out.notes.push(if drift {
        "drift: the live rules or sysctls differ from the applied state; run `pfstate plan` to see, `pfstate apply` to repair".into()
    } else {
        "in sync".into()
    });
    out.set("drift", json!(drift));
    out.set("applied", json!(applied));
    out.set("entries", Value::Array(entries));
    let confirm = pending_confirmation(host, &mut out)?;
    out.set("confirm", confirm);
    Ok(out)
}

/// The table of entries, as text and as the JSON `entries` records.
fn entry_rows(
    model: &Model,
    counters: &BTreeMap<String, (u64, u64)>,
    conns: &BTreeMap<String, usize>,
) -> (String, Vec<Value>) {
    let mut text = format!(
        "{:<24} {:>12} {:>14} {:>12}\n",
        "entry", "packets", "bytes", "connections"
    );
    let mut entries = Vec::new();
    let kinds = [
        (
            "forward",
            model.forwards.iter().map(|f| &f.name).collect::<Vec<_>>(),
        ),
        ("snat", model.snats.iter().map(|s| &s.name).collect()),
        ("filter", model.filters.iter().map(|f| &f.name).collect()),
    ];
    for (kind, names) in kinds {
        for n in names {
            let (p, b) = counters.get(n).copied().unwrap_or_default();
            let c = conns.get(n).copied();
            let shown = c.map_or_else(|| "-".to_string(), |c| c.to_string());
            text.push_str(&format!("{n:<24} {p:>12} {b:>14} {shown:>12}\n"));
            entries
                .push(json!({"name": n, "kind": kind, "packets": p, "bytes": b, "connections": c}));
        }
    }
    (text, entries)
}

/// A pending `apply --confirm`, as a note and as the JSON `confirm` object.
fn pending_confirmation(host: &Host, out: &mut Outcome) -> Result<Value, Error> {
    let Some(p) = Pending::load(host.files)? else {
        return Ok(Value::Null);
    };
    out.notes.push(format!(
        "pending confirmation: the change applied at {} is put back at {} ({} s left) unless `pfstate confirm` runs",
        rfc3339(p.applied_unix),
        rfc3339(p.deadline_unix),
        p.remaining()
    ));
    let mut v = p.json();
    v["remaining_seconds"] = json!(p.remaining());
    Ok(v)
}

/// Packets and bytes per entry, from the counters of the owned rules.
fn entry_counters(host: &Host, model: &Model) -> BTreeMap<String, (u64, u64)> {
    let forwards: HashSet<&str> = model.forwards.iter().map(|f| f.name.as_str()).collect();
    let mut counters: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for family in Family::ALL {
        for table in TABLES {
            let Ok(save) = host.netfilter.save_counters(family, table.name()) else {
                continue;
            };
            for line in save.lines() {
                let rule = dump::strip_counters(line);
                let (Some((p, b)), Some((chain, _))) = (dump::counters(line), split_rule(rule))
                else {
                    continue;
                };
                if let Some(name) = counted(table, chain, rule, &model.prefix, &forwards) {
                    let e = counters.entry(name).or_default();
                    e.0 += p;
                    e.1 += b;
                }
            }
        }
    }
    counters
}

/// The entry whose counters a rule adds to, if any. Each connection counts once: at the DNAT
/// dispatch (nat) for forwards, at the rule itself for snat and filter entries.
fn counted(
    table: Table,
    chain: &str,
    rule: &str,
    prefix: &str,
    forwards: &HashSet<&str>,
) -> Option<String> {
    if !names::is_owned(chain, prefix) || names::is_lb_chain(prefix, chain) {
        return None;
    }
    let source_nat = matches!(dump::target(rule), Some("MASQUERADE" | "SNAT"));
    if table == Table::Nat && source_nat {
        return None;
    }
    let name = entry_of(rule)?;
    (table == Table::Nat || !forwards.contains(name.as_str())).then_some(name)
}

/// Active conntrack entries per forward: DNATed flows whose original destination port is the
/// forward's listen port and whose reply comes from one of its backends.
fn connections_per_forward(conntrack: &dyn Conntrack, model: &Model) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for family in Family::ALL {
        // Forwards by listen port, so each entry is matched against a few candidates rather
        // than every forward (10,000 forwards x 10,000 connections would be 10^8 checks).
        let mut by_port: std::collections::HashMap<u16, Vec<&crate::model::Forward>> =
            std::collections::HashMap::new();
        for f in model.forwards.iter().filter(|f| f.family == family) {
            for port in f.port.lo..=f.port.hi {
                by_port.entry(port).or_default().push(f);
            }
        }
        if by_port.is_empty() {
            continue;
        }
        let Ok(listed) = conntrack.list(family, true) else {
            continue;
        };
        for line in listed.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let proto = fields.first().copied().unwrap_or_default();
            let get =
                |key: &str, nth: usize| fields.iter().filter_map(|f| f.strip_prefix(key)).nth(nth);
            let (Some(dport), Some(reply_src)) = (
                get("dport=", 0).and_then(|p| p.parse::<u16>().ok()),
                get("src=", 1),
            ) else {
                continue;
            };
            for f in by_port.get(&dport).into_iter().flatten() {
                let proto_ok = f.protos.iter().any(|p| p.name() == proto);
                let backend_ok = f.backends.iter().any(|b| b.addr.to_string() == reply_src);
                if proto_ok && backend_ok {
                    *counts.entry(f.name.clone()).or_insert(0) += 1;
                }
            }
        }
    }
    for f in &model.forwards {
        counts.entry(f.name.clone()).or_insert(0);
    }
    counts
}
