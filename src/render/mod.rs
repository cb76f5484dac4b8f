//! Model -> the rules pfstate owns, in the canonical text `iptables-save` prints, plus the
//! sysctls the state needs. Pure: a function of the file alone, the same bytes on any machine
//! (facts about the host the rules need, such as `via`, are stated in the file).
//!
//! Each built-in chain of `ruleset::table::HOOKS` jumps into its owned chain `PREFIX-<CHAIN>`
//! (chains exist only when they hold rules); forwards may add a balancing chain
//! `PREFIX-LB-name`, and each table in use an empty `PREFIX-CANARY` (no jump): its absence
//! reveals a flushed table.
//! Owned chains never end in a verdict of their own: packets nothing matched fall through to
//! the rules of Docker, libvirt, Kubernetes or ufw below the jump.

pub mod builder;
pub mod files;
pub mod filter;
pub mod forward;
pub mod tree;

use ipnet::IpNet;

use crate::model::*;
use crate::names;
use crate::ruleset::rule::{Rule, addr_text};
use crate::ruleset::{Ruleset, Table};
use builder::{Builder, Names, RuleChain, RuleTable, comment};
use forward::forward_rules;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub prefix: String,
    pub rulesets: Vec<Ruleset>,
    pub sysctls: Vec<Sysctl>,
}

impl Desired {
    pub fn ruleset(&self, family: Family) -> &Ruleset {
        self.rulesets
            .iter()
            .find(|r| r.family == family)
            .expect("both families are rendered")
    }
}

/// Render a model. Both families are always present (possibly empty), so stale chains of a
/// family the file no longer uses are found and removed. Large rule sets get the port-range
/// tree layout of [`crate::render::tree`]; small ones render exactly as [`render_linear`].
pub fn render(model: &Model) -> Desired {
    render_with(model, Some(tree::THRESHOLD))
}

/// Render with every owned chain linear, whatever its size (the layout of small files).
pub fn render_linear(model: &Model) -> Desired {
    render_with(model, None)
}

/// Render; chains with more keyed rules than `tree_threshold` become trees.
fn render_with(model: &Model, tree_threshold: Option<usize>) -> Desired {
    let rulesets = Family::ALL
        .iter()
        .map(|f| {
            let mut tables = render_family(model, *f);
            if let Some(threshold) = tree_threshold {
                tree::layout(&model.prefix, &mut tables, threshold);
            }
            let tables = tables.into_iter().map(|(t, rt)| (t, rt.print())).collect();
            Ruleset { family: *f, tables }
        })
        .collect();
    let sysctls = sysctls(model);
    Desired {
        prefix: model.prefix.clone(),
        rulesets,
        sysctls,
    }
}

/// The typed tables of one family, before any tree layout.
fn render_family(model: &Model, family: Family) -> Vec<(Table, RuleTable)> {
    let p = model.prefix.as_str();
    let n = Names::new(p);
    let mut nat = Builder::default();
    let mut filter = Builder::default();

    for r in model
        .filters
        .iter()
        .filter(|r| r.families.contains(&family))
    {
        let chain = match r.chain {
            FilterChain::Input => &n.input,
            FilterChain::Forward => &n.forward,
            FilterChain::Output => &n.filter_output,
        };
        for rule in filter::filter_rules(chain, r, family) {
            filter.push(chain, rule);
        }
    }
    for f in model.forwards.iter().filter(|f| f.family == family) {
        forward_rules(model, f, &n, &mut nat, &mut filter);
    }
    for s in model.snats.iter().filter(|s| s.family == family) {
        snat_rules(s, &n, &mut nat, &mut filter);
    }

    // The route_localnet guard (`-d 127.0.0.0/8`) must come before any accepting input rule.
    let loopback: IpNet = "127.0.0.0/8".parse().expect("literal");
    if let Some(input) = filter.chains.iter_mut().find(|c| c.name == n.input) {
        input.rules.sort_by_key(|r| r.dst != Some(loopback));
    }
    let defaults = filter::default_chains(model, family, &mut filter);
    let mut filter = filter.finish(p, Table::Filter);
    filter.jumps.extend(defaults);
    let mut tables = vec![
        (Table::Nat, nat.finish(p, Table::Nat)),
        (Table::Filter, filter),
    ];
    add_canaries(p, &mut tables);
    tables
}

/// The name of the empty chain pfstate keeps in every table it uses (`PREFIX-CANARY`).
pub const CANARY: &str = "CANARY";

/// When a family is in use, an empty `PREFIX-CANARY` chain in each of its tables: if it is gone,
/// the table was flushed as a whole (firewalld's iptables backend, `ufw` with MANAGE_BUILTINS,
/// `netfilter-persistent reload`) even where pfstate has no other rules in that table. Like
/// every owned chain it is desired state, so `plan` reports it missing and `apply` recreates it.
fn add_canaries(prefix: &str, tables: &mut [(Table, RuleTable)]) {
    if tables.iter().all(|(_, t)| t.chains.is_empty()) {
        return;
    }
    let name = names::owned_chain(prefix, CANARY);
    for (_, t) in tables.iter_mut() {
        t.chains.push(RuleChain {
            name: name.clone(),
            rules: Vec::new(),
        });
    }
}

fn snat_rules(s: &OutboundSnat, n: &Names, nat: &mut Builder, filter: &mut Builder) {
    let c = comment(&s.name);
    let r = Rule::new(&n.postrouting)
        .source(s.source)
        .maybe_out_interface(s.out_interface.as_deref())
        .comment(&c);
    let r = match &s.to {
        SourceNat::To(a) => r.target(&format!("SNAT --to-source {}", addr_text(*a))),
        _ => r.target("MASQUERADE"),
    };
    nat.push(&n.postrouting, r);
    if s.accept {
        let out = Rule::new(&n.forward)
            .source(s.source)
            .maybe_out_interface(s.out_interface.as_deref())
            .comment(&c)
            .target("ACCEPT");
        filter.push(&n.forward, out);
        let back = Rule::new(&n.forward)
            .destination(s.source)
            .maybe_in_interface(s.out_interface.as_deref())
            .m("conntrack", "--ctstate RELATED,ESTABLISHED")
            .comment(&c)
            .target("ACCEPT");
        filter.push(&n.forward, back);
    }
}

/// Implied sysctls first (forwarding per family in use, route_localnet per egress interface
/// of `local` forwards), then the file's own; a key given in the file wins.
fn sysctls(model: &Model) -> Vec<Sysctl> {
    let mut out: Vec<Sysctl> = Vec::new();
    let mut add = |key: SysctlKey, value: &str| {
        if !out.iter().any(|s| s.key == key) {
            out.push(Sysctl {
                key,
                value: value.to_string(),
            });
        }
    };
    let uses = |fam: Family| {
        model.forwards.iter().any(|f| f.family == fam)
            || model.snats.iter().any(|s| s.family == fam)
    };
    if uses(Family::V4) {
        add(SysctlKey::from_parts(&["net", "ipv4", "ip_forward"]), "1");
    }
    if uses(Family::V6) {
        add(
            SysctlKey::from_parts(&["net", "ipv6", "conf", "all", "forwarding"]),
            "1",
        );
    }
    for f in model
        .forwards
        .iter()
        .filter(|f| f.local && f.family == Family::V4)
    {
        if let Some(dev) = &f.via {
            add(
                SysctlKey::from_parts(&["net", "ipv4", "conf", dev, "route_localnet"]),
                "1",
            );
        }
    }
    let mut explicit = model.sysctls.clone();
    for s in out {
        if !explicit.iter().any(|e| e.key == s.key) {
            explicit.push(s);
        }
    }
    // Implied keys keep their place before explicit ones for a stable, readable file.
    let implied_count = explicit.len() - model.sysctls.len();
    explicit.rotate_right(implied_count);
    explicit
}
