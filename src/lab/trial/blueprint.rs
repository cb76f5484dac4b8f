//! What to build: the lab's interfaces, addresses, clients and backends, worked out from the
//! model alone (pure).

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Family, Forward, Model};

use super::addressing::*;
use super::sides::{Lan, LanHost, Segment, Wan, backend_hosts, segments};

#[derive(Debug, Clone)]
pub(super) struct LabPlan {
    pub(super) wan_if: String,
    pub(super) dummies: Vec<String>,
    /// Gateway addresses on the WAN interface (first of each family: the "public" address).
    pub(super) wan_gw: Vec<IpNet>,
    pub(super) client: Vec<IpNet>,
    /// Host routes the client needs towards listen addresses outside its net.
    pub(super) client_routes: Vec<(IpNet, IpAddr)>,
    pub(super) segments: Vec<Segment>,
    /// Backend hosts with the index of their segment.
    pub(super) backends: Vec<(usize, LanHost)>,
    pub(super) ipv6: bool,
    pub(super) notes: Vec<String>,
}

impl LabPlan {
    pub(super) fn from_model(m: &Model) -> LabPlan {
        let mut notes = Vec::new();
        let lan = Lan::of(m);
        let (wan_if, dummies) = interfaces(m, &lan.seg_ifaces);
        let lan_gw = lan.gateway_addrs(m);
        let mut wan = Wan::default();
        for family in Family::ALL {
            wan.add_family(m, &lan, family, &mut notes);
        }
        let backends = backend_hosts(m, &lan, &mut notes);
        let segments = segments(m, &lan, &lan_gw);
        let ipv6 = wan.client.iter().any(|c| c.addr().is_ipv6())
            || lan_gw.iter().any(|c| c.addr().is_ipv6());
        LabPlan {
            wan_if,
            dummies,
            wan_gw: wan.gw,
            client: wan.client,
            client_routes: wan.routes,
            segments,
            backends,
            ipv6,
            notes,
        }
    }

    /// The segment a forward's backends are on.
    pub(super) fn segment_of(&self, f: &Forward) -> usize {
        f.backends
            .iter()
            .find_map(|b| {
                self.segments
                    .iter()
                    .position(|s| s.gw.iter().any(|g| g.contains(&b.addr)))
            })
            .unwrap_or(0)
    }

    pub(super) fn public(&self, family: Family) -> Option<IpAddr> {
        self.wan_gw
            .iter()
            .map(|n| n.addr())
            .find(|a| Family::of(a) == family)
    }

    pub(super) fn lan_gw_addr(&self, seg: usize, family: Family) -> Option<IpAddr> {
        self.segments
            .get(seg)?
            .gw
            .iter()
            .map(|n| n.addr())
            .find(|a| Family::of(a) == family)
    }

    pub(super) fn describe(&self) -> String {
        let list = |v: &[IpNet]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = String::new();
        let lans: Vec<String> = self
            .segments
            .iter()
            .map(|g| format!("{} {}", g.iface, list(&g.gw)))
            .collect();
        let _ = writeln!(
            s,
            "lab gateway: {} {}; {}{}",
            self.wan_if,
            list(&self.wan_gw),
            lans.join("; "),
            if self.dummies.is_empty() {
                String::new()
            } else {
                format!("; dummy {}", self.dummies.join(", "))
            }
        );
        let _ = writeln!(
            s,
            "WAN client {}; LAN client {}; backends {} (routing via the gateway)",
            list(&self.client),
            self.segments
                .iter()
                .map(|g| list(&g.client.addrs))
                .collect::<Vec<_>>()
                .join(", "),
            if self.backends.is_empty() {
                "none".to_string()
            } else {
                self.backends
                    .iter()
                    .map(|(_, b)| list(&b.addrs))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}
