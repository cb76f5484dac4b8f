//! `pfstate status`: owned chains with counters per entry, active connections per forward, drift.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::host::{Conntrack, Host};
use crate::model::{Family, Model};
use crate::names;
use crate::plan::{self, observe, rules};
use crate::render;
use crate::render::files::unit::STATE_PATH;
use crate::ruleset::{TABLES, dump};
use crate::spec;

use super::ctx::{Ctx, Outcome};

pub fn status(ctx: &Ctx, host: &Host, file: Option<&Path>) -> Result<Outcome, Error> {
    let (model, _source) = match file {
        Some(f) => spec::load(f)?,
        None => {
            let path = ctx.root.path(STATE_PATH);
            if path.exists() {
                spec::load(&path)?
            } else {
                (Model::empty(names::DEFAULT_PREFIX), String::new())
            }
        }
    };
    let mut text = String::new();
    let mut counters: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let forward_names: std::collections::HashSet<&str> =
        model.forwards.iter().map(|f| f.name.as_str()).collect();
    for family in Family::ALL {
        for table in TABLES {
            let Ok(save) = host.netfilter.save_counters(family, table) else {
                continue;
            };
            for line in save.lines().filter(|l| l.starts_with('[')) {
                let rule = line.split_once("] ").map(|(_, r)| r).unwrap_or(line);
                let chain = rule.split_whitespace().nth(1).unwrap_or_default();
                if !names::is_owned(chain, &model.prefix) {
                    continue;
                }
                // Count each connection once: at the DNAT dispatch (nat) for forwards, at the
                // rule itself for snat and filter entries.
                let counts = table == "filter"
                    || !rule.contains("-j MASQUERADE") && !rule.contains("-j SNAT");
                if let (Some(name), Some((p, b)), true) =
                    (rules::entry_of(rule), dump::counters(line), counts)
                {
                    if table == "filter" && forward_names.contains(name.as_str()) {
                        continue;
                    }
                    if chain.contains("-LB-") {
                        continue;
                    }
                    let e = counters.entry(name).or_default();
                    e.0 += p;
                    e.1 += b;
                }
            }
        }
    }
    let conns = connections_per_forward(host.conntrack, &model);
    text.push_str(&format!(
        "{:<24} {:>12} {:>14} {:>12}\n",
        "entry", "packets", "bytes", "connections"
    ));
    let mut names_seen: Vec<String> = model.forwards.iter().map(|f| f.name.clone()).collect();
    names_seen.extend(model.snats.iter().map(|s| s.name.clone()));
    names_seen.extend(model.filters.iter().map(|f| f.name.clone()));
    for n in &names_seen {
        let (p, b) = counters.get(n).copied().unwrap_or_default();
        let c = conns
            .get(n)
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        text.push_str(&format!("{n:<24} {p:>12} {b:>14} {c:>12}\n"));
    }
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
    Ok(out)
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
