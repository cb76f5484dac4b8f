//! Living next to other firewall managers: warnings about what pfstate cannot fix by itself.
//!
//! - A forward whose listen port another system also DNATs (a Docker published port in chain
//!   `DOCKER`, a Kubernetes NodePort in `KUBE-NODEPORTS`, anyone's `-j DNAT`/`REDIRECT`): both
//!   rules match the same packets and the first one in nat PREROUTING wins, so the warning
//!   names the foreign chain and rule.
//! - Native nftables tables (firewalld's default backend, Docker's and libvirt's nftables
//!   backends, kube-proxy and Calico in nftables mode) that `iptables-save` cannot show but
//!   that still filter every packet: an ACCEPT in pfstate's chains does not override their drop.
//!
//! Pure: the live facts (rules, local addresses, nf_tables tables) come from `observe`.

use std::net::IpAddr;

use ipnet::IpNet;

use super::observe::Observed;
use crate::model::{Family, Forward, Model};
use crate::names;
use crate::ruleset::Table;
use crate::ruleset::dump::SavedTable;
use crate::ruleset::words::{unquote, words};

/// Every coexistence warning for a plan or apply of `model` against the observed host.
pub fn warnings(model: &Model, observed: &Observed) -> Vec<String> {
    if model.forwards.is_empty() && model.snats.is_empty() && model.filters.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if !model.forwards.is_empty() {
        let local = &observed.local_addresses;
        for family in Family::ALL {
            if let Some(nat) = observed.saved(family).table(Table::Nat.name()) {
                let fwds: Vec<&Forward> = model
                    .forwards
                    .iter()
                    .filter(|f| f.family == family)
                    .collect();
                out.extend(port_conflicts(&model.prefix, &fwds, nat, local));
            }
        }
    }
    if let Some(listing) = &observed.nft_tables {
        out.extend(nft_blind_spots(listing));
    }
    out
}

/// What a foreign nat rule claims: protocol, destination ports and destination network.
#[derive(Debug, Default, PartialEq, Eq)]
struct Claim {
    proto: Option<String>,
    ports: Vec<(u16, u16)>,
    dest: Option<IpNet>,
    target: Option<String>,
    comment: Option<String>,
}

fn parse_ports(text: &str) -> Vec<(u16, u16)> {
    text.split(',')
        .filter_map(|p| match p.split_once(':') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => p.parse().ok().map(|n| (n, n)),
        })
        .collect()
}

fn claim(rule: &str) -> Claim {
    let w = words(rule);
    let mut c = Claim::default();
    let mut i = 2;
    while i < w.len() {
        let negated = i > 0 && w[i - 1] == "!";
        let next = w.get(i + 1).map(|v| unquote(v).into_owned());
        match w[i] {
            "-p" if !negated => c.proto = next,
            "-d" if !negated => c.dest = next.and_then(|d| parse_net(&d)),
            "--dport" | "--dports" | "--destination-ports" if !negated => {
                if let Some(p) = next {
                    c.ports.extend(parse_ports(&p));
                }
            }
            "-j" | "-g" => c.target = next,
            "--comment" if c.comment.is_none() => c.comment = next,
            _ => {}
        }
        i += 1;
    }
    c
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether a foreign rule with destination `dest` can see packets the forward translates.
fn dest_overlaps(f: &Forward, dest: Option<IpNet>, local: &[IpAddr]) -> bool {
    let Some(net) = dest else { return true };
    match f.address {
        Some(a) => net.contains(&a),
        // Without an address the forward matches every local address (`--dst-type LOCAL`);
        // loopback ones only for `local: true`, through nat OUTPUT.
        None => local
            .iter()
            .chain([
                &IpAddr::from([127, 0, 0, 1]),
                &IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            ])
            .any(|a| net.contains(a) && (f.local || !a.is_loopback())),
    }
}

/// Foreign rules in a nat table that DNAT a port one of `forwards` listens on.
pub fn port_conflicts(
    prefix: &str,
    forwards: &[&Forward],
    nat: &SavedTable,
    local: &[IpAddr],
) -> Vec<String> {
    let mut out = Vec::new();
    for chain in nat.order.iter().filter(|c| !names::is_owned(c, prefix)) {
        for rule in &nat.chains[chain].rules {
            let c = claim(rule);
            let nodeport = chain == "KUBE-NODEPORTS";
            let dnat = matches!(c.target.as_deref(), Some("DNAT" | "REDIRECT"));
            if !(nodeport || dnat) || c.ports.is_empty() {
                continue;
            }
            for f in forwards {
                let proto_ok = c
                    .proto
                    .as_deref()
                    .is_some_and(|p| f.protos.iter().any(|fp| fp.name() == p));
                let port_ok = c
                    .ports
                    .iter()
                    .any(|(lo, hi)| *lo <= f.port.hi && f.port.lo <= *hi);
                if !(proto_ok && port_ok && dest_overlaps(f, c.dest, local)) {
                    continue;
                }
                let what = if nodeport {
                    match &c.comment {
                        Some(svc) => format!("a Kubernetes NodePort ({svc})"),
                        None => "a Kubernetes NodePort".to_string(),
                    }
                } else if chain.starts_with("DOCKER") {
                    "a Docker published port".to_string()
                } else {
                    "a foreign DNAT".to_string()
                };
                out.push(format!(
                    "forward `{}` ({} port {}) is also claimed by {what} in nat chain {chain}: `{rule}`; packets both match go to whichever rule nat PREROUTING reaches first",
                    f.name,
                    c.proto.as_deref().unwrap_or("?"),
                    f.port.match_text().replace(':', "-"),
                ));
            }
        }
    }
    out
}

/// Tables iptables-nft itself creates: they hold what `iptables-save` shows, pfstate included.
fn is_xtables_table(family: &str, name: &str) -> bool {
    matches!(family, "ip" | "ip6" | "arp" | "bridge")
        && matches!(
            name,
            "filter" | "nat" | "mangle" | "raw" | "security" | "broute"
        )
}

fn owner_of(name: &str) -> Option<&'static str> {
    Some(match name {
        "firewalld" => "firewalld",
        "docker-bridges" => "Docker's nftables backend",
        "libvirt_network" | "libvirt" => "libvirt's nftables backend",
        "kube-proxy" => "kube-proxy in nftables mode",
        "calico" => "Calico in nftables mode",
        _ => return None,
    })
}

/// A warning per native nftables table that `iptables-save` cannot show.
pub fn nft_blind_spots(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "table").then_some(())?;
            let (family, name) = (w.next()?, w.next()?);
            if is_xtables_table(family, name) {
                return None;
            }
            let who = owner_of(name)
                .map(|o| format!(" ({o})"))
                .unwrap_or_default();
            Some(format!(
                "nftables table `{family} {name}`{who} is invisible to iptables-save but still filters packets: a packet pfstate accepts can still be dropped there (see `nft list table {family} {name}`)"
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Balance, Hairpin, PortRange, Proto, SourceNat};
    use crate::ruleset::dump;

    fn fwd(name: &str, port: u16, address: Option<&str>, local: bool) -> Forward {
        Forward {
            name: name.into(),
            family: Family::V4,
            protos: vec![Proto::Tcp],
            port: PortRange::single(port),
            address: address.map(|a| a.parse().unwrap()),
            interface: None,
            from: vec![],
            backends: vec![],
            balance: Balance::Random,
            snat: SourceNat::None,
            hairpin: Hairpin::Off,
            local,
            via: None,
            accept: true,
        }
    }

    fn fixture(name: &str) -> SavedTable {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        dump::parse(&text).table("nat").unwrap().clone()
    }

    #[test]
    fn docker_published_port_is_named() {
        let nat = fixture("docker.rules");
        let web = fwd("web", 8080, None, false);
        let w = port_conflicts("PFSTATE", &[&web], &nat, &[]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("forward `web`"), "{}", w[0]);
        assert!(
            w[0].contains("Docker published port in nat chain DOCKER"),
            "{}",
            w[0]
        );
        assert!(
            w[0].contains("--dport 8080 -j DNAT --to-destination 172.17.0.2:80"),
            "{}",
            w[0]
        );
        // Another port, or another listen address than Docker's 127.0.0.1:5000: no conflict.
        let other = fwd("other", 8081, None, false);
        assert!(port_conflicts("PFSTATE", &[&other], &nat, &[]).is_empty());
        let api = fwd("api", 5000, None, false);
        assert!(port_conflicts("PFSTATE", &[&api], &nat, &[]).is_empty());
        // ... unless the forward also serves local clients, which reach 127.0.0.1.
        let api_local = fwd("api", 5000, None, true);
        let w = port_conflicts("PFSTATE", &[&api_local], &nat, &[]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("-d 127.0.0.1/32"), "{}", w[0]);
        // A udp forward on the same port does not collide with Docker's tcp port.
        let mut udp = fwd("dns", 8080, None, false);
        udp.protos = vec![Proto::Udp];
        assert!(port_conflicts("PFSTATE", &[&udp], &nat, &[]).is_empty());
    }

    #[test]
    fn kubernetes_nodeport_is_named() {
        for file in ["microk8s.rules", "all-in-one.rules"] {
            let nat = fixture(file);
            let mut web = fwd("np", 31000, None, false);
            web.port = PortRange {
                lo: 31000,
                hi: 31100,
            };
            let w = port_conflicts("PFSTATE", &[&web], &nat, &[]);
            assert_eq!(w.len(), 1, "{file}: {w:?}");
            assert!(
                w[0].contains("Kubernetes NodePort (default/web:http) in nat chain KUBE-NODEPORTS"),
                "{}",
                w[0]
            );
            assert!(w[0].contains("--dport 31080"), "{}", w[0]);
            // Cluster IP services (`-d 10.152.183.x`) are not local addresses: no conflict.
            let https = fwd("https", 443, None, false);
            assert!(port_conflicts("PFSTATE", &[&https], &nat, &[]).is_empty());
        }
    }

    #[test]
    fn owned_chains_and_other_addresses_are_not_conflicts() {
        let nat = dump::parse(
            "*nat\n:PFSTATE-PREROUTING - [0:0]\n:X - [0:0]\n-A PFSTATE-PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2\n-A X -d 192.0.2.7/32 -p tcp -m multiport --dports 79:81,443 -j DNAT --to-destination 10.0.0.3\nCOMMIT\n",
        )
        .table("nat")
        .unwrap()
        .clone();
        let web = fwd("web", 80, Some("192.0.2.9"), false);
        assert!(port_conflicts("PFSTATE", &[&web], &nat, &[]).is_empty());
        let web = fwd("web", 80, Some("192.0.2.7"), false);
        let w = port_conflicts("PFSTATE", &[&web], &nat, &[]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("a foreign DNAT in nat chain X"), "{}", w[0]);
        // Without a listen address, a foreign rule bound to one of our addresses collides.
        let any = fwd("any", 443, None, false);
        assert!(port_conflicts("PFSTATE", &[&any], &nat, &[]).is_empty());
        let ours: Vec<IpAddr> = vec!["192.0.2.7".parse().unwrap()];
        assert_eq!(port_conflicts("PFSTATE", &[&any], &nat, &ours).len(), 1);
        // Another pfstate prefix's DNAT is foreign to this one.
        assert_eq!(port_conflicts("EDGE", &[&any], &nat, &[]).len(), 0);
        let p80 = fwd("p80", 80, None, false);
        assert_eq!(port_conflicts("EDGE", &[&p80], &nat, &[]).len(), 1);
    }

    #[test]
    fn claims_keep_quoted_comments_whole() {
        let c =
            claim("-A X -p tcp -m tcp --dport 80 -m comment --comment \"a \\\"b\\\" -j Z\" -j Y");
        assert_eq!(c.comment.as_deref(), Some("a \"b\" -j Z"));
        assert_eq!(c.target.as_deref(), Some("Y"));
        assert_eq!(c.ports, [(80, 80)]);
    }

    #[test]
    fn native_nft_tables_are_blind_spots() {
        let listing = "table ip filter\ntable ip nat\ntable ip6 filter\ntable inet firewalld\ntable ip docker-bridges\ntable ip libvirt_network\ntable ip kube-proxy\ntable ip calico\ntable bridge filter\ntable inet custom\n";
        let w = nft_blind_spots(listing);
        assert_eq!(w.len(), 6, "{w:?}");
        assert!(
            w[0].starts_with("nftables table `inet firewalld` (firewalld)"),
            "{}",
            w[0]
        );
        assert!(w.iter().any(|x| x.contains("`ip docker-bridges` (Docker")));
        assert!(
            w.iter()
                .any(|x| x.contains("`ip libvirt_network` (libvirt"))
        );
        assert!(w.iter().any(|x| x.contains("`ip kube-proxy` (kube-proxy")));
        assert!(w.iter().any(|x| x.contains("`ip calico` (Calico")));
        assert!(w.iter().any(|x| x.contains("`inet custom` is invisible")));
        assert!(nft_blind_spots("table ip filter\ntable ip6 nat\n").is_empty());
    }
}
