//! pfstate's chains in the other iptables backend.
//!
//! pfstate writes into the backend that holds the host's rules (see `host::iptables`). When
//! those move (one nf_tables rule appears on a host whose rules were legacy), its own chains
//! in the old backend would keep filtering packets, unseen by the new tools. The plan removes
//! that copy, so exactly one is left, and says so.

use crate::plan::observe::Observed;
use crate::plan::rules::{self, FamilyPlan};
use crate::ruleset::Ruleset;

/// The removal of every owned chain and jump from the other backend, per family that has any.
pub fn remove_other_copy(prefix: &str, observed: &Observed) -> Vec<FamilyPlan> {
    observed
        .other
        .iter()
        .map(|(family, saved)| {
            let nothing = Ruleset {
                family: *family,
                tables: Vec::new(),
            };
            rules::plan_family(prefix, &nothing, saved)
        })
        .filter(|fp| !fp.is_empty())
        .collect()
}

/// What a reviewer is told when the other backend holds a copy.
pub fn warning(removals: &[FamilyPlan], observed: &Observed) -> Option<String> {
    if removals.is_empty() {
        return None;
    }
    let families: Vec<&str> = removals.iter().map(|f| f.family.name()).collect();
    Some(format!(
        "pfstate's chains are also in the {} backend ({}), where the host's rules no longer live; that copy is removed so exactly one is left",
        observed.other_name,
        families.join(", ")
    ))
}
