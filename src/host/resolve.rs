//! Facts about the machine's interfaces that rendering may need: the interface a backend is
//! reached through (for `route_localnet`) and the networks on an interface (for `hairpin:
//! true`). Behind a trait so rendering stays a pure function in tests.

use std::net::IpAddr;
use std::process::Command;

use ipnet::IpNet;

use crate::model::Family;

pub trait Resolver {
    /// The interface the kernel would route `addr` out of, if known.
    fn egress_interface(&self, addr: IpAddr) -> Option<String>;
    /// The networks (connected prefixes) configured on an interface.
    fn networks(&self, interface: &str, family: Family) -> Vec<IpNet>;
    /// Whether the interface is a Linux bridge (then a backend reaching itself through a
    /// hairpin forward needs hairpin mode on its bridge port).
    fn is_bridge(&self, _interface: &str) -> bool {
        false
    }
}

/// Knows nothing: rendering falls back to what the file says (and warns).
pub struct NoLookup;

impl Resolver for NoLookup {
    fn egress_interface(&self, _addr: IpAddr) -> Option<String> {
        None
    }
    fn networks(&self, _interface: &str, _family: Family) -> Vec<IpNet> {
        Vec::new()
    }
}

/// Asks the kernel through `ip -j` (iproute2); needs no privileges.
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn egress_interface(&self, addr: IpAddr) -> Option<String> {
        let out = Command::new("ip")
            .args(["-j", "route", "get", &addr.to_string()])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let routes: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let dev = routes.get(0)?.get("dev")?.as_str()?;
        (dev != "lo").then(|| dev.to_string())
    }

    fn is_bridge(&self, interface: &str) -> bool {
        std::path::Path::new("/sys/class/net")
            .join(interface)
            .join("bridge")
            .is_dir()
    }

    fn networks(&self, interface: &str, family: Family) -> Vec<IpNet> {
        let flag = match family {
            Family::V4 => "-4",
            Family::V6 => "-6",
        };
        let Ok(out) = Command::new("ip")
            .args(["-j", flag, "addr", "show", "dev", interface])
            .output()
        else {
            return Vec::new();
        };
        let Ok(links) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return Vec::new();
        };
        let mut nets = Vec::new();
        for link in links.as_array().into_iter().flatten() {
            for a in link
                .get("addr_info")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
            {
                let (Some(local), Some(len)) = (
                    a.get("local").and_then(|v| v.as_str()),
                    a.get("prefixlen").and_then(|v| v.as_u64()),
                ) else {
                    continue;
                };
                if a.get("scope").and_then(|s| s.as_str()) == Some("link") {
                    continue;
                }
                if let Ok(net) = format!("{local}/{len}").parse::<IpNet>() {
                    let net = net.trunc();
                    if !nets.contains(&net) {
                        nets.push(net);
                    }
                }
            }
        }
        nets
    }
}

impl crate::host::LocalAddresses for SystemResolver {
    /// `ip -o addr`: every address of this network namespace.
    fn local_addresses(&self) -> Vec<IpAddr> {
        let Ok(out) = Command::new("ip").args(["-o", "addr", "show"]).output() else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let i = w.iter().position(|x| *x == "inet" || *x == "inet6")?;
                let addr = w.get(i + 1)?.split('/').next()?;
                addr.parse().ok()
            })
            .collect()
    }
}
