//! The two sides of the lab's gateway, worked out from the model: the LAN nets, gateway
//! addresses, backend hosts and LAN clients; the WAN addresses, client and routes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::addressing::*;
use crate::model::{Family, Model, Proto, SourceNat};

/// A host on the LAN: one per backend address, plus the LAN client.
#[derive(Debug, Clone)]
pub(super) struct LanHost {
    pub(super) role: String,
    pub(super) addrs: Vec<IpNet>,
    /// Servers to start: (protocol, port).
    pub(super) serve: BTreeSet<(Proto, u16)>,
}

/// One LAN interface of the gateway with its own switch, addresses and LAN client.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub(super) iface: String,
    /// Gateway addresses on the interface (with the prefix of their net).
    pub(super) gw: Vec<IpNet>,
    pub(super) client: LanHost,
}

/// The LAN side: nets and the interface each is on, around the backends of forwards with
/// `via`, then of the others (default LAN interface unless a `via` forward placed that net),
/// then around `snat` sources.
pub(super) struct Lan {
    pub(super) default_lan: String,
    pub(super) nets: Vec<(IpNet, String)>,
    pub(super) lan_nets: Vec<IpNet>,
    /// The LAN interfaces, in the order their first net was placed.
    pub(super) seg_ifaces: Vec<String>,
    pub(super) backend_addrs: Vec<IpAddr>,
    pub(super) listen_addrs: Vec<IpAddr>,
}

impl Lan {
    pub(super) fn of(m: &Model) -> Lan {
        let default_lan = m
            .interfaces
            .get("lan")
            .cloned()
            .or_else(|| m.forwards.iter().find_map(|f| f.via.clone()))
            .unwrap_or_else(|| "lan0".into());
        let mut nets: Vec<(IpNet, String)> = Vec::new();
        for with_via in [true, false] {
            for f in m.forwards.iter().filter(|f| f.via.is_some() == with_via) {
                let iface = f.via.clone().unwrap_or_else(|| default_lan.clone());
                for b in f.backends.iter().filter(|b| is_usable(&b.addr)) {
                    let n = net_around(b.addr);
                    if !nets.iter().any(|(x, _)| *x == n) {
                        nets.push((n, iface.clone()));
                    }
                }
            }
        }
        for s in &m.snats {
            if !nets.iter().any(|(n, _)| n.contains(&s.source.network())) {
                // The /24 (/64) at the start of the source: the LAN client is put inside the
                // source itself, even when that is narrower.
                nets.push((net_around(s.source.network()), default_lan.clone()));
            }
        }
        let mut seg_ifaces: Vec<String> = Vec::new();
        for (_, i) in &nets {
            if !seg_ifaces.contains(i) {
                seg_ifaces.push(i.clone());
            }
        }
        if seg_ifaces.is_empty() {
            seg_ifaces.push(default_lan.clone());
        }
        Lan {
            lan_nets: nets.iter().map(|(n, _)| *n).collect(),
            backend_addrs: m
                .forwards
                .iter()
                .flat_map(|f| f.backends.iter().map(|b| b.addr))
                .filter(is_usable)
                .collect(),
            listen_addrs: m.forwards.iter().filter_map(|f| f.address).collect(),
            default_lan,
            nets,
            seg_ifaces,
        }
    }

    pub(super) fn iface_of(&self, net: &IpNet) -> String {
        self.nets
            .iter()
            .find(|(n, _)| n == net)
            .map(|(_, i)| i.clone())
            .unwrap_or_else(|| self.default_lan.clone())
    }

    pub(super) fn in_lan(&self, a: &IpAddr) -> bool {
        self.lan_nets.iter().any(|n| n.contains(a))
    }

    /// The gateway's LAN addresses: a listen address in the net, else .1, .254 or the first
    /// free one; other SNAT targets inside a LAN net are the gateway's too.
    pub(super) fn gateway_addrs(&self, m: &Model) -> Vec<IpNet> {
        let mut lan_gw: Vec<IpNet> = Vec::new();
        for net in &self.lan_nets {
            let free = |a: &IpAddr| net.contains(a) && !self.backend_addrs.contains(a);
            let own = self.listen_addrs.iter().find(|a| free(a));
            let addr = own.copied().or_else(|| {
                [1u32, 254]
                    .iter()
                    .map(|n| nth(net, *n))
                    .chain(candidates(net, 2))
                    .find(free)
            });
            if let Some(a) = addr {
                lan_gw.push(with_prefix(a, net));
            }
        }
        for f in &m.forwards {
            if let SourceNat::To(a) = f.snat
                && let Some(net) = self.lan_nets.iter().find(|n| n.contains(&a))
                && !lan_gw.iter().any(|g| g.addr() == a)
                && !self.backend_addrs.contains(&a)
            {
                lan_gw.push(with_prefix(a, net));
            }
        }
        lan_gw
    }
}

/// The WAN side: the gateway's addresses, the client and the client's host routes.
#[derive(Default)]
pub(super) struct Wan {
    pub(super) gw: Vec<IpNet>,
    pub(super) client: Vec<IpNet>,
    pub(super) routes: Vec<(IpNet, IpAddr)>,
}

impl Wan {
    /// One family's WAN side: listen addresses (and SNAT targets) outside the LAN nets, or a
    /// documentation address; the client preferably inside every forward's `listen.from`.
    pub(super) fn add_family(
        &mut self,
        m: &Model,
        lan: &Lan,
        family: Family,
        notes: &mut Vec<String>,
    ) {
        let used = m.forwards.iter().any(|f| f.family == family)
            || m.snats.iter().any(|s| s.family == family);
        if !used {
            return;
        }
        let snat_to = m.snats.iter().filter_map(|s| match s.to {
            SourceNat::To(a) => Some(a),
            _ => None,
        });
        let mine: Vec<IpAddr> = lan
            .listen_addrs
            .iter()
            .copied()
            .filter(|a| !lan.in_lan(a))
            .chain(snat_to)
            .filter(|a| Family::of(a) == family)
            .collect();
        let primary = mine
            .first()
            .copied()
            .unwrap_or_else(|| default_wan(family, lan));
        let net = net_around(primary);
        let mut taken: Vec<IpAddr> = vec![primary];
        self.gw.push(with_prefix(primary, &net));
        for a in mine.iter().skip(1) {
            if self.gw.iter().any(|g| g.addr() == *a) {
                continue;
            }
            taken.push(*a);
            if net.contains(a) {
                self.gw.push(with_prefix(*a, &net));
            } else {
                let host = IpNet::new(*a, family.host_prefix()).expect("host prefix");
                self.gw.push(host);
                self.routes.push((host, primary));
            }
        }
        // Listen addresses the gateway holds on the LAN side are reached through it too.
        for a in lan.listen_addrs.iter().filter(|a| Family::of(a) == family) {
            if lan.in_lan(a) {
                let host = IpNet::new(*a, family.host_prefix()).expect("host prefix");
                if !self.routes.contains(&(host, primary)) {
                    self.routes.push((host, primary));
                }
            }
        }
        self.add_client(m, family, &net, &taken, notes);
    }

    /// The WAN client: the free address inside the most `listen.from` nets.
    pub(super) fn add_client(
        &mut self,
        m: &Model,
        family: Family,
        net: &IpNet,
        taken: &[IpAddr],
        notes: &mut Vec<String>,
    ) {
        let froms: Vec<&Vec<IpNet>> = m
            .forwards
            .iter()
            .filter(|f| f.family == family && !f.from.is_empty())
            .map(|f| &f.from)
            .collect();
        let first = match family {
            Family::V4 => 100,
            Family::V6 => 0x100,
        };
        let cands: Vec<IpAddr> = candidates(net, first)
            .into_iter()
            .filter(|a| !taken.contains(a))
            .collect();
        let score = |a: &IpAddr| {
            froms
                .iter()
                .filter(|fr| fr.iter().any(|n| n.contains(a)))
                .count()
        };
        let best = cands
            .iter()
            .enumerate()
            .max_by_key(|(i, a)| (score(a), std::cmp::Reverse(*i)));
        if let Some((_, c)) = best {
            self.client.push(with_prefix(*c, net));
            if score(c) < froms.len() {
                notes.push(format!(
                    "the WAN client {c} is outside some `listen.from`: those forwards are expected to refuse it"
                ));
            }
        }
    }
}

/// A documentation address for the WAN side of a family, outside the LAN nets.
pub(super) fn default_wan(family: Family, lan: &Lan) -> IpAddr {
    let defaults: [IpAddr; 2] = match family {
        Family::V4 => [
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(198, 51, 100, 1).into(),
        ],
        Family::V6 => [
            "2001:db8::1".parse().expect("literal"),
            "2001:db8:ffff::1".parse().expect("literal"),
        ],
    };
    defaults
        .into_iter()
        .find(|d| !lan.in_lan(d))
        .unwrap_or(defaults[0])
}

/// Backend hosts, one per address, with the servers each must run.
pub(super) fn backend_hosts(
    m: &Model,
    lan: &Lan,
    notes: &mut Vec<String>,
) -> Vec<(usize, LanHost)> {
    let mut backends: Vec<(usize, LanHost)> = Vec::new();
    let mut backend_of = BTreeMap::new();
    for f in &m.forwards {
        for b in &f.backends {
            if !is_usable(&b.addr) {
                notes.push(format!(
                    "forward `{}`: backend {} is not a LAN host; not modelled",
                    f.name, b.addr
                ));
                continue;
            }
            let idx = *backend_of.entry(b.addr).or_insert_with(|| {
                let net = net_around(b.addr);
                let iface = lan.iface_of(&net);
                let seg = lan.seg_ifaces.iter().position(|i| *i == iface).unwrap_or(0);
                let host = LanHost {
                    role: format!("be{}", backends.len() + 1),
                    addrs: vec![with_prefix(b.addr, &net)],
                    serve: BTreeSet::new(),
                };
                backends.push((seg, host));
                backends.len() - 1
            });
            for p in probe_ports(f) {
                for proto in &f.protos {
                    let port = backend_port(f, b, p);
                    backends[idx].1.serve.insert((*proto, port));
                }
            }
        }
    }
    backends
}

/// Per LAN interface: the gateway's addresses, and a LAN client in the first net of each
/// family, preferably inside the `snat` sources, on an address not already used.
pub(super) fn segments(m: &Model, lan: &Lan, lan_gw: &[IpNet]) -> Vec<Segment> {
    let mut segments = Vec::new();
    for (k, iface) in lan.seg_ifaces.iter().enumerate() {
        let gw: Vec<IpNet> = lan_gw
            .iter()
            .copied()
            .filter(|g| lan.iface_of(&g.trunc()) == *iface)
            .collect();
        let role = if k == 0 {
            "lanc".into()
        } else {
            format!("lanc{}", k + 1)
        };
        let mut client = LanHost {
            role,
            addrs: Vec::new(),
            serve: BTreeSet::new(),
        };
        let used: Vec<IpAddr> = lan
            .backend_addrs
            .iter()
            .copied()
            .chain(lan_gw.iter().map(|g| g.addr()))
            .collect();
        for family in Family::ALL {
            let Some(net) = lan
                .nets
                .iter()
                .find(|(n, i)| i == iface && Family::of(&n.addr()) == family)
                .map(|(n, _)| n)
            else {
                continue;
            };
            let first = match family {
                Family::V4 => 50,
                Family::V6 => 0x50,
            };
            let cands: Vec<IpAddr> = candidates(net, first)
                .into_iter()
                .filter(|a| !used.contains(a))
                .collect();
            let in_snat = |a: &IpAddr| m.snats.iter().filter(|s| s.source.contains(a)).count();
            if let Some((_, c)) = cands
                .iter()
                .enumerate()
                .max_by_key(|(i, a)| (in_snat(a), std::cmp::Reverse(*i)))
            {
                client.addrs.push(with_prefix(*c, net));
            }
        }
        segments.push(Segment {
            iface: iface.clone(),
            gw,
            client,
        });
    }
    segments
}
