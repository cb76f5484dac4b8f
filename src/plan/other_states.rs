//! Other pfstate states live on the same kernel (another prefix, another root): a sysctl this
//! state puts back may still be needed by them, so it is left as it is (and said so), except a
//! `route_localnet` without their guard on that interface, which goes back regardless.

use std::collections::BTreeSet;

use super::observe::Observed;
use crate::model::Family;
use crate::names;
use crate::ruleset::dump;

/// The prefixes of other pfstate states: chains hooked by a jump carrying pfstate's comment
/// (`-m comment --comment pfstate -j EDGE-PREROUTING`) that are not this prefix's.
pub fn other_prefixes(prefix: &str, observed: &Observed) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for family in Family::ALL {
        for table in ["nat", "filter"] {
            let Some(t) = observed.saved(family).table(table) else {
                continue;
            };
            for chain in t.chains.values() {
                for rule in &chain.rules {
                    if !rule.contains("-m comment --comment pfstate -j ") {
                        continue;
                    }
                    let Some(to) = dump::target(rule) else {
                        continue;
                    };
                    if let Some((p, _)) = to.rsplit_once('-')
                        && !names::is_owned(to, prefix)
                        && names::prefix_problem(p).is_none()
                    {
                        out.insert(p.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Whether one of those states has its 127.0.0.0/8 guard on `iface` (its INPUT chain).
pub fn guards(others: &BTreeSet<String>, iface: &str, observed: &Observed) -> bool {
    others
        .iter()
        .any(|p| guarded_interfaces(p, observed).iter().any(|i| i == iface))
}

/// The interfaces a state's live INPUT chain guards (`! -s 127.0.0.0/8 -d 127.0.0.0/8 -i IF
/// ... -j DROP`): where it may have turned route_localnet on.
pub fn guarded_interfaces(prefix: &str, observed: &Observed) -> Vec<String> {
    let Some(t) = observed.saved(Family::V4).table("filter") else {
        return Vec::new();
    };
    let Some(c) = t.chain(&names::owned_chain(prefix, "INPUT")) else {
        return Vec::new();
    };
    c.rules
        .iter()
        .filter(|r| r.contains(" -d 127.0.0.0/8 -i ") && r.ends_with("-j DROP"))
        .filter_map(|r| {
            let after = r.split(" -d 127.0.0.0/8 -i ").nth(1)?;
            after.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

/// The /proc/sys key of an interface's route_localnet.
pub fn route_localnet_key(iface: &str) -> String {
    format!("net/ipv4/conf/{iface}/route_localnet")
}
