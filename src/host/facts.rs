//! Facts about the machine's interfaces, addresses and routes, read once (three `ip -j` runs,
//! no privileges) for the warnings of `plan` and `apply`. Rendering never sees them: the same
//! file renders the same rules on any machine (issue 11), and what the live host says only
//! warns (see `plan::host_facts`).

use std::net::IpAddr;
use std::process::Command;
use std::sync::Mutex;
use std::thread::JoinHandle;

use ipnet::IpNet;
use serde_json::Value;

use crate::host::{InterfaceFacts, LocalAddresses};
use crate::model::Family;

/// One interface: its name, whether it is a Linux bridge, its (non link-local) addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub bridge: bool,
    /// Addresses with their prefix length (`192.168.1.1/24`).
    pub addrs: Vec<IpNet>,
}

/// One route of the main table; `dev: None` for routes that send nowhere (unreachable,
/// blackhole, prohibit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub dev: Option<String>,
}

/// The host as `ip` shows it. Plain data, so tests build one by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub links: Vec<Link>,
    pub routes: Vec<Route>,
}

impl Facts {
    /// Read the links, addresses and routes of the current network namespace; `None` when
    /// `ip` cannot be run or prints something else than JSON (then nothing is warned about).
    pub fn read() -> Option<Facts> {
        read_all().0
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// Whether an address is one of the host's own.
    pub fn is_local(&self, addr: IpAddr) -> bool {
        addr.is_loopback()
            || self
                .links
                .iter()
                .any(|l| l.addrs.iter().any(|a| a.addr() == addr))
    }

    /// The interface the main table routes `addr` through (longest prefix), or `None` when
    /// no route leads anywhere.
    pub fn egress(&self, addr: IpAddr) -> Option<&str> {
        self.routes
            .iter()
            .filter(|r| r.dst.contains(&addr))
            .max_by_key(|r| r.dst.prefix_len())
            .and_then(|r| r.dev.as_deref())
    }
}

/// Everything `ip` is asked: the facts, and every address of the namespace (link-local ones
/// too, for foreign DNAT conflicts), both from the one `ip -j -d addr show`.
type Read = (Option<Facts>, Vec<IpAddr>);

fn read_all() -> Read {
    let addrs = ip(&["-d", "addr", "show"]);
    let every = addrs.as_ref().map(all_addresses).unwrap_or_default();
    let facts = (|| {
        let links = parse_links(addrs.as_ref()?)?;
        let mut routes = parse_routes(&ip(&["-4", "route", "show"])?, Family::V4)?;
        routes.extend(parse_routes(&ip(&["-6", "route", "show"])?, Family::V6)?);
        Some(Facts { links, routes })
    })();
    (facts, every)
}

/// The real adapter: `ip` in this network namespace (no privileges needed). The reads can be
/// started early ([`InterfaceFacts::prefetch`]): each of the two answers is then served once
/// from them, and any later ask reads afresh (`pfstate watch` asks again on every repair).
#[derive(Default)]
pub struct IpTool {
    started: Mutex<Option<JoinHandle<Read>>>,
    ready: Mutex<Ready>,
}

/// The answers of a finished early read, each taken by the first ask.
#[derive(Default)]
struct Ready {
    facts: Option<Option<Facts>>,
    addresses: Option<Vec<IpAddr>>,
}

impl IpTool {
    /// Join a read started by `prefetch`, keeping both answers until asked.
    fn settle(&self) -> std::sync::MutexGuard<'_, Ready> {
        let started = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Ok((facts, addrs))) = started.map(JoinHandle::join) {
            *ready = Ready {
                facts: Some(facts),
                addresses: Some(addrs),
            };
        }
        ready
    }
}

impl InterfaceFacts for IpTool {
    /// A read left over from an earlier prefetch (a long-running `pfstate watch` whose file
    /// did not ask for it) is dropped: each prefetch serves only what it read itself.
    fn prefetch(&self) {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = started.take() {
            let _ = old.join();
        }
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = Ready::default();
        *started = Some(std::thread::spawn(read_all));
    }

    fn read(&self) -> Option<Facts> {
        match self.settle().facts.take() {
            Some(facts) => facts,
            None => Facts::read(),
        }
    }
}

impl LocalAddresses for IpTool {
    /// Every address of this network namespace (link-local ones too).
    fn local_addresses(&self) -> Vec<IpAddr> {
        match self.settle().addresses.take() {
            Some(addrs) => addrs,
            None => read_all().1,
        }
    }
}

impl Drop for IpTool {
    /// Reap a read nobody asked for (e.g. the file did not validate).
    fn drop(&mut self) {
        let started = self.started.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(thread) = started.take() {
            let _ = thread.join();
        }
    }
}

fn ip(args: &[&str]) -> Option<Value> {
    let out = Command::new("ip").arg("-j").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Every `local` address of `ip -j addr` output, link-local ones included.
fn all_addresses(v: &Value) -> Vec<IpAddr> {
    let links = v.as_array().into_iter().flatten();
    let infos = links.filter_map(|l| l.get("addr_info").and_then(Value::as_array));
    infos
        .flatten()
        .filter_map(|a| a.get("local").and_then(Value::as_str)?.parse().ok())
        .collect()
}

fn parse_links(v: &Value) -> Option<Vec<Link>> {
    let mut links = Vec::new();
    for l in v.as_array()? {
        let Some(name) = l.get("ifname").and_then(Value::as_str) else {
            continue;
        };
        let kind = l.pointer("/linkinfo/info_kind").and_then(Value::as_str);
        let mut addrs = Vec::new();
        for a in l
            .get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if a.get("scope").and_then(Value::as_str) == Some("link") {
                continue;
            }
            let local = a.get("local").and_then(Value::as_str);
            let len = a.get("prefixlen").and_then(Value::as_u64);
            if let (Some(local), Some(len)) = (local, len)
                && let Ok(net) = format!("{local}/{len}").parse::<IpNet>()
            {
                addrs.push(net);
            }
        }
        links.push(Link {
            name: name.to_string(),
            bridge: kind == Some("bridge"),
            addrs,
        });
    }
    Some(links)
}

/// Routes of one family's main table (`ip -j -4|-6 route show`); `default` is that family's
/// default route, also when it names only a device.
fn parse_routes(v: &Value, family: Family) -> Option<Vec<Route>> {
    let any: IpNet = match family {
        Family::V4 => "0.0.0.0/0",
        Family::V6 => "::/0",
    }
    .parse()
    .expect("literal");
    let mut routes = Vec::new();
    for r in v.as_array()? {
        let Some(dst) = r.get("dst").and_then(Value::as_str) else {
            continue;
        };
        let dst = match dst {
            "default" => Some(any),
            d => d
                .parse::<IpNet>()
                .ok()
                .or_else(|| d.parse::<IpAddr>().ok().map(IpNet::from)),
        };
        let Some(dst) = dst else { continue };
        let sends = r
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(|t| t == "unicast");
        let dev = r.get("dev").and_then(Value::as_str).filter(|_| sends);
        routes.push(Route {
            dst,
            dev: dev.map(str::to_string),
        });
    }
    Some(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_with_defaults_host_routes_and_unreachable() {
        let v: Value = serde_json::from_str(
            r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"},
                {"dst":"10.9.0.0/24","dev":"br9"},{"dst":"10.9.0.7","dev":"eth2"},
                {"type":"unreachable","dst":"10.10.0.0/16"}]"#,
        )
        .unwrap();
        let facts = Facts {
            links: Vec::new(),
            routes: parse_routes(&v, Family::V4).unwrap(),
        };
        let egress = |a: &str| facts.egress(a.parse().unwrap());
        assert_eq!(egress("8.8.8.8"), Some("eth0"));
        assert_eq!(egress("10.9.0.5"), Some("br9"));
        assert_eq!(egress("10.9.0.7"), Some("eth2"));
        assert_eq!(egress("10.10.1.1"), None);
        assert_eq!(egress("2001:db8::1"), None);
    }

    /// A default route that names only a device (a point-to-point uplink) is its own family's:
    /// an IPv6 one once sent IPv4 backends out through it.
    #[test]
    fn a_device_only_default_route_belongs_to_its_family() {
        let v: Value = serde_json::from_str(r#"[{"dst":"default","dev":"ppp0"}]"#).unwrap();
        let facts = Facts {
            links: Vec::new(),
            routes: parse_routes(&v, Family::V6).unwrap(),
        };
        assert_eq!(facts.egress("2001:db8::1".parse().unwrap()), Some("ppp0"));
        assert_eq!(facts.egress("192.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn every_address_counts_as_local_link_local_too() {
        let v: Value = serde_json::from_str(
            r#"[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8}]},
                {"ifname":"eth0","addr_info":[{"local":"fe80::1","prefixlen":64,"scope":"link"}]},
                {"ifname":"eth1"}]"#,
        )
        .unwrap();
        let want: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "fe80::1".parse().unwrap()];
        assert_eq!(all_addresses(&v), want);
    }

    #[test]
    fn links_parse_bridges_and_skip_link_local_addresses() {
        let v: Value = serde_json::from_str(
            r#"[{"ifname":"br0","linkinfo":{"info_kind":"bridge"},"addr_info":[
                  {"local":"10.0.0.1","prefixlen":24,"scope":"global"},
                  {"local":"fe80::1","prefixlen":64,"scope":"link"}]},
                {"ifname":"eth0","addr_info":[]}]"#,
        )
        .unwrap();
        let links = parse_links(&v).unwrap();
        assert!(links[0].bridge && !links[1].bridge);
        assert_eq!(
            links[0].addrs,
            vec!["10.0.0.1/24".parse::<IpNet>().unwrap()]
        );
        let facts = Facts {
            links,
            routes: Vec::new(),
        };
        assert!(facts.is_local("10.0.0.1".parse().unwrap()));
        assert!(!facts.is_local("10.0.0.2".parse().unwrap()));
    }
}
