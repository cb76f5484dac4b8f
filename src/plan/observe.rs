//! Every read of the host a plan needs, done before planning so the plan itself is pure.

use crate::error::HostError;
use crate::host::Host;
use crate::model::Family;
use crate::render::Desired;
use crate::ruleset::dump::{self, Saved};

/// The live state of both families.
pub struct Observed {
    pub saved: Vec<(Family, Saved)>,
    pub warnings: Vec<String>,
}

impl Observed {
    pub fn saved(&self, family: Family) -> &Saved {
        &self
            .saved
            .iter()
            .find(|(f, _)| *f == family)
            .expect("both families observed")
            .1
    }
}

/// Read both families with one `iptables-save` each. An IPv6 stack that cannot be read is
/// only an error when the desired state has IPv6 rules.
pub fn observe(host: &Host, desired: &Desired) -> Result<Observed, HostError> {
    let mut saved = Vec::new();
    let mut warnings = Vec::new();
    for family in Family::ALL {
        match host.netfilter.save(family, "") {
            Ok(text) => saved.push((family, dump::parse(&text))),
            Err(e) if family == Family::V6 && desired.ruleset(family).is_empty() => {
                warnings.push(format!("cannot read IPv6 rules ({e}); skipping IPv6"));
                saved.push((family, Saved::default()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Observed { saved, warnings })
}
