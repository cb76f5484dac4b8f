//! Every read of the host a plan needs, done before planning so that [`super::plan`] is a pure
//! function of the desired state and what was read here.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::error::HostError;
use crate::host::Host;
use crate::host::facts::Facts;
use crate::host::sysctl_before::{self, Record, SYSCTL_BEFORE_PATH};
use crate::model::{Family, Model};
use crate::render::Desired;
use crate::ruleset::dump::{self, Saved};

/// What the host looks like, as far as a plan is concerned.
#[derive(Debug, Default)]
pub struct Observed {
    /// The parsed `iptables-save` of both families.
    pub saved: Vec<(Family, Saved)>,
    /// The parsed save of each family in the other iptables backend, where it can be read
    /// (see [`crate::host::Netfilter::other_backend`]), and that backend's name.
    pub other: Vec<(Family, Saved)>,
    pub other_name: String,
    /// Families whose rules could not be read (taken as empty), with why.
    pub unreadable: Vec<(Family, String)>,
    pub warnings: Vec<String>,
    /// The live value of every desired or recorded sysctl, by its /proc/sys key (`None`:
    /// absent).
    pub sysctls: HashMap<String, Option<String>>,
    /// `net.ipv4.conf.IF.forwarding` of every interface but `all`, `default` and `lo`; read
    /// only when the desired state wants `ip_forward = 1`.
    pub forwarding: Vec<(String, Option<String>)>,
    /// This namespace's addresses, when the state has forwards (for foreign DNAT conflicts).
    pub local_addresses: Vec<IpAddr>,
    /// `nft list tables`, when the state has entries and the tables could be listed.
    pub nft_tables: Option<String>,
    /// The live content of each managed file asked for (`None`: absent).
    pub files: Vec<(&'static str, Option<String>)>,
    /// Whether the boot unit is enabled, when asked and systemd could tell.
    pub unit_enabled: Option<bool>,
    /// The rules live in iptables-legacy (no change events: the companion units differ).
    pub legacy: bool,
    /// Whether each companion unit apply enables is enabled (asked with the unit).
    pub companions: Vec<(&'static str, Option<bool>)>,
    /// firewalld, nftables.service, Docker (asked with the unit).
    pub managers: super::managers::Managers,
    /// What each sysctl held before pfstate first changed it (the persisted record).
    pub sysctl_before: Record,
    /// Interfaces, addresses and routes, when the state has entries (for warnings only).
    pub facts: Option<Facts>,
}

/// Which optional reads to make.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// Managed files whose live content the plan compares.
    pub files: Vec<&'static str>,
    /// Ask the service manager whether this unit is enabled.
    pub unit: Option<&'static str>,
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

    /// The live content of a managed file read by [`observe`].
    pub fn file(&self, target: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(t, _)| *t == target)
            .and_then(|(_, c)| c.as_deref())
    }
}

/// Read everything a plan of `desired` needs. An IPv6 stack that cannot be read is only an
/// error when the desired state has IPv6 rules.
// Over 60 lines on purpose: every read a plan needs is in this one function (the point of the
// observe stage), each guarded by the scope; a reader sees at once what a command asks the host.
pub fn observe(
    host: &Host,
    model: &Model,
    desired: &Desired,
    scope: &Scope,
) -> Result<Observed, HostError> {
    let mut o = Observed::default();
    for family in Family::ALL {
        match host.netfilter.save(family, "") {
            Ok(text) => o.saved.push((family, dump::parse(&text))),
            Err(e) if family == Family::V6 && desired.ruleset(family).is_empty() => {
                o.warnings
                    .push(format!("cannot read IPv6 rules ({e}); skipping IPv6"));
                o.unreadable.push((family, e.to_string()));
                o.saved.push((family, Saved::default()));
            }
            Err(e) => return Err(e),
        }
    }
    // The record is also kept as a file, so a transaction can journal and put it back.
    let record = host.files.read(SYSCTL_BEFORE_PATH)?;
    o.sysctl_before = record
        .as_deref()
        .map(sysctl_before::parse)
        .unwrap_or_default();
    o.files.push((SYSCTL_BEFORE_PATH, record));
    // Desired keys, recorded ones (to put back) and route_localnet where this state's live
    // rules have a guard (to turn off with it).
    let guarded: Vec<String> = super::other_states::guarded_interfaces(&desired.prefix, &o)
        .iter()
        .map(|i| super::other_states::route_localnet_key(i))
        .collect();
    let keys = desired.sysctls.iter().map(|s| s.key.proc_path());
    for key in keys.chain(o.sysctl_before.keys().cloned()).chain(guarded) {
        if let std::collections::hash_map::Entry::Vacant(e) = o.sysctls.entry(key) {
            let live = host.sysctl.get(e.key())?;
            e.insert(live);
        }
    }
    if wants_forwarding(desired) {
        for name in host.sysctl.interfaces() {
            if name == "all" || name == "default" || name == "lo" {
                continue;
            }
            let live = host
                .sysctl
                .get(&format!("net/ipv4/conf/{name}/forwarding"))?;
            o.forwarding.push((name, live));
        }
    }
    let has_entries =
        !(model.forwards.is_empty() && model.snats.is_empty() && model.filters.is_empty());
    if !model.forwards.is_empty() {
        o.local_addresses = host.addresses.local_addresses();
    }
    if has_entries {
        o.nft_tables = host.nft.list();
        o.facts = host.facts.read();
    }
    if let Some(other) = host.netfilter.other_backend() {
        o.other_name = other.backend_name();
        for family in Family::ALL {
            // A backend whose tools fail (no kernel support) holds nothing of pfstate's.
            if let Ok(text) = other.save(family, "") {
                o.other.push((family, dump::parse(&text)));
            }
        }
    }
    for target in &scope.files {
        o.files.push((target, host.files.read(target)?));
    }
    o.unit_enabled = scope
        .unit
        .and_then(|unit| host.services.is_enabled(unit).ok());
    o.legacy = host.netfilter.is_legacy();
    if scope.unit.is_some() {
        o.companions = super::units::query(Some(host.services));
        o.managers = super::managers::gather(host, o.nft_tables.as_deref());
    }
    Ok(o)
}

/// Whether the desired state sets `net.ipv4.ip_forward = 1`.
pub fn wants_forwarding(desired: &Desired) -> bool {
    desired
        .sysctls
        .iter()
        .any(|s| s.key.dotted() == "net.ipv4.ip_forward" && s.value == "1")
}
