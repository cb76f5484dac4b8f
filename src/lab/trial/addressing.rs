//! Address arithmetic for the lab and the names and ports it takes from the model.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::model::{Forward, Model, PortRange};

/// The WAN interface name and the other names the file uses (made dummies), given the LAN
/// interfaces.
pub(super) fn interfaces(m: &Model, lans: &[String]) -> (String, Vec<String>) {
    let alias = |a: &str| m.interfaces.get(a).cloned();
    let wan = m
        .forwards
        .iter()
        .filter_map(|f| f.interface.clone())
        .chain(m.snats.iter().filter_map(|s| s.out_interface.clone()))
        .chain(alias("wan"))
        .find(|i| !lans.contains(i))
        .unwrap_or_else(|| {
            if lans.iter().any(|l| l == "wan0") {
                "eth0"
            } else {
                "wan0"
            }
            .into()
        });
    let mut all: Vec<String> = m.interfaces.values().cloned().collect();
    for f in &m.forwards {
        all.extend(f.interface.clone());
        all.extend(f.via.clone());
    }
    for s in &m.snats {
        all.extend(s.out_interface.clone());
    }
    for r in &m.filters {
        all.extend(r.in_interface.clone());
        all.extend(r.out_interface.clone());
    }
    for s in &m.sysctls {
        all.extend(s.key.interface().map(str::to_string));
    }
    let mut dummies: Vec<String> = Vec::new();
    for i in all {
        let ok = !i.is_empty()
            && i.len() <= 15
            && i.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        if ok && i != wan && !lans.contains(&i) && i != "lo" && !dummies.contains(&i) {
            dummies.push(i);
        }
    }
    (wan, dummies)
}

/// The listen ports probed: the port, or both ends of a range.
pub(super) fn probe_ports(f: &Forward) -> Vec<u16> {
    if f.port.is_single() {
        vec![f.port.lo]
    } else {
        vec![f.port.lo, f.port.hi]
    }
}

/// The backend port a listen port is translated to.
pub(super) fn backend_port(f: &Forward, b: &crate::model::Backend, listen: u16) -> u16 {
    match b.port {
        None => listen,
        Some(PortRange { lo, hi }) if lo == hi => lo,
        Some(PortRange { lo, .. }) => lo + (listen - f.port.lo),
    }
}

pub(super) fn net_around(addr: IpAddr) -> IpNet {
    let len = match addr {
        IpAddr::V4(_) => 24,
        IpAddr::V6(_) => 64,
    };
    IpNet::new(addr, len).expect("valid prefix").trunc()
}

pub(super) fn with_prefix(addr: IpAddr, net: &IpNet) -> IpNet {
    IpNet::new(addr, net.prefix_len()).expect("valid prefix")
}

/// The `n`th address of a net (host part `n`).
pub(super) fn nth(net: &IpNet, n: u32) -> IpAddr {
    match net {
        IpNet::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4.network()) + n)),
        IpNet::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6.network()) + u128::from(n))),
    }
}

/// Host numbers to try in a net, starting at `first`, wrapping round; never the network or
/// (IPv4) broadcast address.
pub(super) fn candidates(net: &IpNet, first: u32) -> Vec<IpAddr> {
    let size: u32 = match net {
        IpNet::V4(v4) => 1u32
            .checked_shl(32 - u32::from(v4.prefix_len()))
            .unwrap_or(u32::MAX),
        IpNet::V6(_) => 4096,
    };
    let last = if size > 2 { size.min(4096) - 2 } else { 1 };
    let mut v: Vec<IpAddr> = (first..=last)
        .chain(1..first)
        .map(|n| nth(net, n))
        .collect();
    v.retain(|a| net.contains(a));
    v
}

pub(super) fn is_usable(addr: &IpAddr) -> bool {
    !(addr.is_loopback() || addr.is_unspecified() || addr.is_multicast())
}
