//! Warnings about the other firewall managers on the host that flush or bypass pfstate's rules
//! (what was measured with the real programs, docs/coexistence.md):
//!
//! - firewalld (1.3, either backend) deletes every iptables table on start, stop, restart and
//!   `firewall-cmd --reload`; with its nftables backend its own `inet firewalld` table filters
//!   too, so a port pfstate accepts in INPUT is still rejected unless the zone allows it.
//!   DNATed connections pass (`ct status dnat accept`); other forwarded traffic (what pfstate
//!   masquerades) needs the zone to forward.
//! - nftables.service runs `nft flush ruleset` on start, reload and stop: iptables-nft rules go
//!   with it.
//! - Docker (20.10) sets the FORWARD policy to DROP only when it turns on ip_forward itself; when
//!   pfstate already did, the policy stays ACCEPT and the host forwards everything.
//!
//! [`gather`] reads the facts (through the host's traits) while observing; [`warnings`] and the
//! checks below are pure.

use crate::host::Host;
use crate::host::firewalld_zone::{self, Zone};
use crate::model::{Action, Family, FilterChain, FilterProto, Model};
use crate::plan::observe::Observed;
use crate::render::Desired;

/// What the plan needs to know about the other managers, read by [`gather`].
#[derive(Debug, Default)]
pub struct Managers {
    /// firewalld runs (its `inet firewalld` table, or its unit is active) or is enabled.
    pub firewalld: bool,
    pub nftables_service: bool,
    pub docker_service: bool,
    pub zones: firewalld_zone::Zones,
}

/// Ask the service manager and read firewalld's files (only where apply would ask systemd
/// anyway: not at boot).
pub fn gather(host: &Host, nft_tables: Option<&str>) -> Managers {
    let enabled = |u: &str| host.services.is_enabled(u).unwrap_or(false);
    let active = |u: &str| {
        host.services
            .active_state(u)
            .is_ok_and(|s| matches!(s.as_str(), "active" | "activating" | "reloading"))
    };
    let table = nft_tables.is_some_and(|t| t.lines().any(|l| l.trim() == "table inet firewalld"));
    let firewalld = table || active("firewalld.service") || enabled("firewalld.service");
    let zones = if firewalld {
        firewalld_zone::Zones::read(&|p: &str| host.files.read(p).ok().flatten())
    } else {
        firewalld_zone::Zones::default()
    };
    Managers {
        firewalld,
        nftables_service: enabled("nftables.service"),
        docker_service: enabled("docker.service"),
        zones,
    }
}

/// Every manager warning for a plan or apply of `model`.
pub fn warnings(model: &Model, desired: &Desired, observed: &Observed) -> Vec<String> {
    let m = &observed.managers;
    let repairer = repairer(model.watch, observed.legacy);
    let mut out = Vec::new();
    if m.firewalld {
        out.push(firewalld_flushes(&repairer));
        out.extend(zone_rejections(model, &m.zones));
    }
    if !observed.legacy && m.nftables_service {
        out.push(nftables_service_flushes(&repairer));
    }
    let filter = observed.saved(Family::V4).table("filter");
    let docker_runs = filter.is_some_and(|t| t.chains.contains_key("DOCKER-USER"));
    let policy = filter
        .and_then(|t| t.chain("FORWARD"))
        .map(|c| c.policy.as_str())
        .unwrap_or("ACCEPT");
    if (docker_runs || m.docker_service)
        && let Some(w) = docker_forward_policy(turns_on_forwarding(desired), policy)
    {
        out.push(w);
    }
    out
}

/// What repairs pfstate's rules after a flush on this host, for the warnings' wording.
fn repairer(watch: bool, legacy: bool) -> String {
    match (watch, legacy) {
        (true, false) => "pfstate-watch.service puts them back within a second".into(),
        (true, true) => "pfstate-watch.service puts them back after firewalld's signals, pfstate-recheck.timer after anything else within 60 s".into(),
        (false, _) => "with `watch: false` only pfstate-reapply.service (on unit starts) and pfstate-recheck.timer (within 60 s) put them back; remove `watch: false` for a repair within a second".into(),
    }
}

pub fn firewalld_flushes(repairer: &str) -> String {
    format!(
        "firewalld is running or enabled: each of its starts, stops, restarts and `firewall-cmd --reload` deletes every iptables table, pfstate's rules included; {repairer}"
    )
}

pub fn nftables_service_flushes(repairer: &str) -> String {
    format!(
        "nftables.service is enabled: its start, reload and stop run `nft flush ruleset`, which deletes pfstate's iptables-nft rules too; {repairer}"
    )
}

/// Whether the rendered state sets net.ipv4.ip_forward=1 (explicitly or implied by its rules).
pub fn turns_on_forwarding(desired: &Desired) -> bool {
    desired
        .sysctls
        .iter()
        .any(|s| s.key.dotted() == "net.ipv4.ip_forward" && s.value == "1")
}

/// Docker leaves FORWARD at ACCEPT when forwarding was on before it started.
pub fn docker_forward_policy(forwarding: bool, forward_policy: &str) -> Option<String> {
    (forwarding && forward_policy == "ACCEPT").then(|| {
        "Docker is present and pfstate turns on net.ipv4.ip_forward: Docker sets the FORWARD policy to DROP only when it turns forwarding on itself, so the policy stays ACCEPT and this host forwards any traffic between its interfaces, not only pfstate's forwards and Docker's ports; add a filter rule that drops the rest (e.g. `{name: forward-rest, chain: forward, in_interface: wan, action: drop}`) or set the policy in a unit ordered after docker.service".to_string()
    })
}

fn proto_name(p: FilterProto) -> &'static str {
    match p {
        FilterProto::Tcp => "tcp",
        FilterProto::Udp => "udp",
        FilterProto::Icmp => "icmp",
    }
}

/// pfstate rules firewalld's zones still reject: INPUT accepts of ports the zone does not
/// allow, and masquerading or forward accepts where the zone does not forward.
pub fn zone_rejections(model: &Model, zones: &firewalld_zone::Zones) -> Vec<String> {
    let mut out = Vec::new();
    let zone_of = |iface: Option<&str>| -> Option<&Zone> { zones.zone_of(iface) };
    for f in &model.filters {
        if f.action != Action::Accept {
            continue;
        }
        let Some(zone) = zone_of(f.in_interface.as_deref()) else {
            continue;
        };
        if zone.accepts_everything() {
            continue;
        }
        match f.chain {
            FilterChain::Input => {
                let Some(proto) = f.proto else {
                    continue;
                };
                let name = proto_name(proto);
                for port in f.dports.iter().filter(|p| !zone.allows(name, p.lo, p.hi)) {
                    let spec = port.match_text().replace(':', "-");
                    out.push(format!(
                        "firewalld's zone `{}` does not allow {name} port {spec}: its nftables rules reject what pfstate's INPUT rule `{}` accepts; allow it there too (`firewall-cmd --permanent --zone={} --add-port={spec}/{name}`)",
                        zone.name, f.name, zone.name
                    ));
                }
            }
            FilterChain::Forward if !zone.forwards() => out.push(forward_rejected(
                &zone.name,
                &format!("pfstate's FORWARD rule `{}` accepts", f.name),
            )),
            _ => {}
        }
    }
    for s in &model.snats {
        if let Some(zone) = zone_of(s.out_interface.as_deref())
            && !zone.accepts_everything()
            && !zone.forwards()
        {
            out.push(forward_rejected(
                &zone.name,
                &format!("pfstate's masquerade `{}` translates", s.name),
            ));
        }
    }
    out
}

fn forward_rejected(zone: &str, what: &str) -> String {
    format!(
        "firewalld's zone `{zone}` neither forwards nor masquerades: its nftables rules reject forwarded connections that are not port forwards, such as what {what}; enable it there (`firewall-cmd --permanent --zone={zone} --add-forward`, or `--add-masquerade`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::firewalld_zone::{Zones, parse_zone};

    fn model(yaml: &str) -> Model {
        crate::spec::load_str("t.yaml", yaml).unwrap()
    }

    fn zones(public: &str) -> Zones {
        let ssh = |s: &str| {
            if s == "ssh" {
                vec![("tcp".to_string(), 22, 22)]
            } else {
                vec![]
            }
        };
        Zones {
            zones: vec![
                parse_zone("public", public, &ssh),
                parse_zone(
                    "trusted",
                    "<zone target=\"ACCEPT\"><interface name=\"lan0\"/></zone>",
                    &ssh,
                ),
            ],
            default: Some("public".into()),
        }
    }

    const STATE: &str = "version: 1\ninterfaces: {wan: wan0, lan: lan0}\nsnat:\n  - {name: lan-out, source: 10.0.0.0/24, out_interface: wan}\nfilter:\n  - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}\n  - {name: web, chain: input, proto: tcp, dport: 8080, action: accept}\n  - {name: lan-web, chain: input, in_interface: lan, proto: tcp, dport: 8081, action: accept}\n  - {name: fwd, chain: forward, in_interface: wan, action: accept}\n";

    #[test]
    fn zone_settings_that_still_reject() {
        let m = model(STATE);
        // public: ssh only, no forwarding.
        let w = zone_rejections(&m, &zones("<zone><service name=\"ssh\"/></zone>"));
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(
            w[0].contains("zone `public` does not allow tcp port 8080"),
            "{}",
            w[0]
        );
        assert!(
            w[0].contains("`web`") && w[0].contains("--add-port=8080/tcp"),
            "{}",
            w[0]
        );
        assert!(w[1].contains("FORWARD rule `fwd`"), "{}", w[1]);
        assert!(w[2].contains("masquerade `lan-out`"), "{}", w[2]);
        // Forwarding on: only the closed port remains; lan0 is in the trusted zone.
        let w = zone_rejections(&m, &zones("<zone><service name=\"ssh\"/><forward/></zone>"));
        assert_eq!(w.len(), 1, "{w:#?}");
        let w = zone_rejections(&m, &zones("<zone target=\"ACCEPT\"/>"));
        assert!(w.is_empty(), "{w:#?}");
    }

    #[test]
    fn docker_forward_policy_left_at_accept() {
        let render = |yaml: &str| crate::render::render(&model(yaml));
        // The masquerade implies ip_forward=1.
        let forwarding = turns_on_forwarding(&render(STATE));
        assert!(forwarding);
        let w = docker_forward_policy(forwarding, "ACCEPT").unwrap();
        assert!(w.contains("the policy stays ACCEPT"), "{w}");
        assert_eq!(docker_forward_policy(forwarding, "DROP"), None);
        let input_only = "version: 1\nfilter:\n  - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}\n";
        assert!(!turns_on_forwarding(&render(input_only)));
    }

    #[test]
    fn the_repairer_named_depends_on_watch_and_backend() {
        assert!(firewalld_flushes(&repairer(true, false)).contains("within a second"));
        assert!(nftables_service_flushes(&repairer(false, false)).contains("watch: false"));
        assert!(repairer(true, true).contains("pfstate-recheck.timer"));
    }
}
