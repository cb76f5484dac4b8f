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

use super::connections::{self, Connection};
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
    let (mut text, entries) = entry_rows(&model, &counters, &conns);
    text.push_str(&connection_lines(&conns));
    let desired = render::render(&model);
    let observed = observe::observe(host, &model, &desired, &Default::default())?;
    let pl = plan::plan(&desired, &observed);
    let drift = pl.kernel_changes() || pl.sysctl_changes();
    let mut out = Outcome {
        diff: text,
        changed: drift,
        // Like plan: 2 when the host is not what the state says.
        changes_exit_2: true,
        ..Outcome::default()
    };
    out.notes.push(verdict(applied, drift));
    out.set("drift", json!(drift));
    out.set("applied", json!(applied));
    out.set("entries", Value::Array(entries));
    let confirm = pending_confirmation(host, &mut out)?;
    out.set("confirm", confirm);
    Ok(out)
}

/// The table of entries, as text and as the JSON `entries` records.
/// The one-line verdict, which also says when there is nothing to compare with.
fn verdict(applied: bool, drift: bool) -> String {
    match (applied, drift) {
        (false, false) => {
            format!("nothing is applied: no {STATE_PATH}; `pfstate apply FILE` installs a state")
        }
        (false, true) => "drift: pfstate's chains are live but no state is applied; `pfstate remove` deletes them".into(),
        (true, true) => "drift: the live rules or sysctls differ from the applied state; run `pfstate plan` to see, `pfstate apply` to repair".into(),
        (true, false) => "in sync".into(),
    }
}

/// One line per tracked connection: who is connected, through which forward, to which backend.
fn connection_lines(conns: &BTreeMap<String, Vec<Connection>>) -> String {
    let mut text = String::new();
    for (name, list) in conns {
        for c in list {
            text.push_str(&format!(
                "  {name}  {} {} -> {} -> {}  {}\n",
                c.proto, c.client, c.listen, c.backend, c.state
            ));
        }
    }
    text
}

fn entry_rows(
    model: &Model,
    counters: &BTreeMap<String, (u64, u64)>,
    conns: &BTreeMap<String, Vec<Connection>>,
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
            let active = conns.get(n);
            let c = active.map(Vec::len);
            let shown = c.map_or_else(|| "-".to_string(), |c| c.to_string());
            text.push_str(&format!("{n:<24} {p:>12} {b:>14} {shown:>12}\n"));
            entries.push(json!({"name": n, "kind": kind, "packets": p, "bytes": b,
                "connections": c, "active_connections": active}));
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

/// The tracked connections of each forward (client, original destination, backend, protocol,
/// state), from both families' conntrack tables.
fn connections_per_forward(
    conntrack: &dyn Conntrack,
    model: &Model,
) -> BTreeMap<String, Vec<Connection>> {
    let mut out: BTreeMap<String, Vec<Connection>> = model
        .forwards
        .iter()
        .map(|f| (f.name.clone(), Vec::new()))
        .collect();
    for family in Family::ALL {
        if !model.forwards.iter().any(|f| f.family == family) {
            continue;
        }
        let Ok(listed) = conntrack.list(family, true) else {
            continue;
        };
        for (name, list) in connections::by_forward(model, &listed) {
            out.entry(name.to_string()).or_default().extend(list);
        }
    }
    out
}
