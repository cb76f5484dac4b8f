//! Wiring between lab namespaces: veth pairs, addresses, routes and Linux bridges.
//!
//! Every link is created directly inside lab namespaces (`ip -n A link add X type veth peer
//! name Y netns B`), never in the root namespace, so parallel labs can reuse the same
//! interface names and nothing is ever visible (or routable) from the host.

use ipnet::IpNet;

use super::error::NetlabError;
use super::netns::Netns;

/// A veth pair that was created: which interface ended up in which namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veth {
    pub a_netns: String,
    pub a_if: String,
    pub b_netns: String,
    pub b_if: String,
}

impl Veth {
    /// Create a veth pair `a_if` (in `a`) ── `b_if` (in `b`) and bring both ends up.
    pub fn create(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<Veth, NetlabError> {
        check_ifname(a_if)?;
        check_ifname(b_if)?;
        if a.name() == b.name() {
            return Err(NetlabError::Invalid(format!(
                "veth {a_if}/{b_if}: both ends in {}; use two namespaces",
                a.name()
            )));
        }
        a.ip(&[
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name(),
        ])?;
        a.link_up(a_if)?;
        b.link_up(b_if)?;
        Ok(Veth {
            a_netns: a.name().to_string(),
            a_if: a_if.to_string(),
            b_netns: b.name().to_string(),
            b_if: b_if.to_string(),
        })
    }
}

/// A Linux bridge inside one namespace (the gateway's `br0` in bridge mode, or the switch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub netns: String,
    pub name: String,
}

impl Bridge {
    /// Create bridge `name` in `ns`: STP off (ports forward at once instead of after 15 s of
    /// listening/learning) and multicast snooping off (IPv6 neighbour discovery floods, so no
    /// querier is needed), then bring it up.
    pub fn create(ns: &Netns, name: &str) -> Result<Bridge, NetlabError> {
        check_ifname(name)?;
        ns.ip(&[
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        ns.link_up(name)?;
        Ok(Bridge {
            netns: ns.name().to_string(),
            name: name.to_string(),
        })
    }

    /// Enslave `port` (an interface of the same namespace) and bring it up.
    pub fn add_port(&self, ns: &Netns, port: &str) -> Result<(), NetlabError> {
        self.same_ns(ns)?;
        ns.ip(&["link", "set", port, "master", &self.name, "up"])?;
        Ok(())
    }

    /// `bridge link set dev PORT hairpin on|off`: lets a frame leave by the port it came in,
    /// which backend→itself through a DNAT on a bridged gateway needs (Docker sets it).
    pub fn set_hairpin(&self, ns: &Netns, port: &str, on: bool) -> Result<(), NetlabError> {
        self.same_ns(ns)?;
        let state = if on { "on" } else { "off" };
        super::netns::run(
            "bridge",
            &[
                "-n",
                ns.name(),
                "link",
                "set",
                "dev",
                port,
                "hairpin",
                state,
            ],
        )?;
        Ok(())
    }

    fn same_ns(&self, ns: &Netns) -> Result<(), NetlabError> {
        if ns.name() != self.netns {
            return Err(NetlabError::Invalid(format!(
                "bridge {} lives in {}, not {}",
                self.name,
                self.netns,
                ns.name()
            )));
        }
        Ok(())
    }
}

impl Netns {
    /// `ip link set IF up`.
    pub fn link_up(&self, ifname: &str) -> Result<(), NetlabError> {
        self.ip(&["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// Add an IPv4 or IPv6 address in CIDR form (`10.77.0.1/24`, `fd00:77::1/64`).
    ///
    /// IPv6 addresses are added `nodad`: duplicate address detection would keep them
    /// tentative (unusable) for about a second, and the lab has no duplicates.
    pub fn addr_add(&self, ifname: &str, cidr: &str) -> Result<(), NetlabError> {
        let net: IpNet = cidr
            .parse()
            .map_err(|_| NetlabError::Invalid(format!("address {cidr:?}: not a CIDR")))?;
        let mut args = vec!["addr", "add", cidr, "dev", ifname];
        if matches!(net, IpNet::V6(_)) {
            args.push("nodad");
        }
        self.ip(&args)?;
        Ok(())
    }

    /// `ip route add DST via GW` (`dst` is `default` or a CIDR; the family follows `via`).
    pub fn route_add(&self, dst: &str, via: std::net::IpAddr) -> Result<(), NetlabError> {
        let fam = if via.is_ipv6() { "-6" } else { "-4" };
        let via = via.to_string();
        self.ip(&[fam, "route", "add", dst, "via", &via])?;
        Ok(())
    }

    /// `ip route del DST` for one family (e.g. remove a backend's default route mid-test).
    pub fn route_del(&self, dst: &str, ipv6: bool) -> Result<(), NetlabError> {
        let fam = if ipv6 { "-6" } else { "-4" };
        self.ip(&[fam, "route", "del", dst])?;
        Ok(())
    }

    /// Set `net.bridge.bridge-nf-call-{iptables,ip6tables}` in this namespace: whether bridged
    /// frames traverse iptables (kernel default 1; Docker hosts rely on it). Per netns; needs
    /// br_netfilter, which this module never loads (that would change the host's bridges too).
    pub fn set_bridge_nf_call(&self, iptables: bool, ip6tables: bool) -> Result<(), NetlabError> {
        if self.sysctl("net.bridge.bridge-nf-call-iptables")?.is_none() {
            return Err(NetlabError::Invalid(
                "net.bridge.bridge-nf-call-iptables missing: br_netfilter is not loaded \
                 (modprobe br_netfilter on the host; this lab does not load modules)"
                    .into(),
            ));
        }
        let b = |on: bool| if on { "1" } else { "0" };
        self.set_sysctls(&[
            ("net.bridge.bridge-nf-call-iptables", b(iptables)),
            ("net.bridge.bridge-nf-call-ip6tables", b(ip6tables)),
        ])
    }
}

/// Interface names: 1-15 bytes (IFNAMSIZ), no `/`, whitespace or `:`.
fn check_ifname(name: &str) -> Result<(), NetlabError> {
    if name.is_empty()
        || name.len() > 15
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
    {
        return Err(NetlabError::Invalid(format!(
            "interface name {name:?}: 1-15 bytes without '/', ':' or spaces"
        )));
    }
    Ok(())
}
