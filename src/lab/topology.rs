//! The ready-made lab of `shared/notes/traffic-tests.md` §1: a client on the "internet", a
//! gateway, and a LAN with three backends and a LAN client.
//!
//! ```text
//! client 192.0.2.100/24 eth0 ── wan0 192.0.2.1/24  gw  lan0 10.77.0.1/24 ──┐
//!   switch mode: lan0 ── br0 in a separate "sw" netns (pure L2)           │
//!   bridge mode: br0 inside gw carries 10.77.0.1/24 (Docker/libvirt host)  │
//! be1 10.77.0.11, be2 .12, be3 .13, lan .50 (each eth0 on a port of br0) ──┘
//! ```
//! With IPv6: client 2001:db8::100/64, gw wan0 2001:db8::1/64, gw LAN fd00:77::1/64, hosts
//! fd00:77::11/12/13 and fd00:77::50. Servers answer on :8080 (backends, lan) and :9000
//! (client), TCP and UDP. The client has no default route; `lan` routes via the gateway;
//! backends do when [`GatewayOptions::backend_default_route`] is set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::error::NetlabError;
use super::link::{Bridge, Veth};
use super::netns::{Netns, NetnsOptions};
use super::server::Proto;

/// How the LAN side of the gateway is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LanMode {
    /// `gw lan0` is a veth into a separate switch namespace holding `br0` (the tutorials).
    #[default]
    Switch,
    /// `br0` inside the gateway carries the LAN address; hosts are its ports (Docker-like).
    Bridge,
}

/// Options of [`Topology::gateway`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayOptions {
    /// The gateway's WAN interface name (`None`: `wan0`). `pfstate try` sets the names its
    /// file uses, so `-i`/`-o` matches and per-interface sysctls hit real interfaces.
    pub wan_if: Option<String>,
    /// The gateway's LAN interface (`None`: `lan0` in switch mode, the bridge `br0` in bridge
    /// mode, where it is the bridge that carries the LAN address).
    pub lan_if: Option<String>,
    pub lan_mode: LanMode,
    /// Backends get `default via 10.77.0.1` (and `fd00:77::1`). Without it a DNAT without SNAT
    /// times out: the backend cannot route its reply.
    pub backend_default_route: bool,
    /// Addresses and routes for IPv6 too; off means `disable_ipv6=1` everywhere.
    pub ipv6: bool,
    /// `rp_filter` pinned in every namespace (0, 1, 2).
    pub rp_filter: u8,
    /// Start the echo servers (:8080 on backends and lan, :9000 on the client).
    pub servers: bool,
    /// Bridge mode only: set `bridge-nf-call-iptables`/`ip6tables` in the gateway; `None`
    /// keeps the kernel's default (1 when br_netfilter is loaded).
    pub bridge_nf_call: Option<bool>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            wan_if: None,
            lan_if: None,
            lan_mode: LanMode::Switch,
            backend_default_route: true,
            ipv6: false,
            rp_filter: 1,
            servers: true,
            bridge_nf_call: None,
        }
    }
}

/// The built lab. Dropping it stops the servers and deletes every namespace.
#[derive(Debug)]
pub struct Topology {
    opts: GatewayOptions,
    client: Netns,
    gw: Netns,
    sw: Option<Netns>,
    /// be1, be2, be3, lan, in that order.
    lan_hosts: Vec<Netns>,
    lan_bridge: Option<Bridge>,
    build_time: Duration,
}

/// Roles (and server names) of the hosts on the LAN, with the last group of their addresses
/// (the same digits in `10.77.0.X` and `fd00:77::X`).
const LAN_HOSTS: [(&str, &str); 4] = [("be1", "11"), ("be2", "12"), ("be3", "13"), ("lan", "50")];

impl Drop for Topology {
    /// Signal every server of every namespace first, then let the fields drop (each [`Netns`]
    /// joins its servers and deletes itself), so teardown waits for one poll interval, not one
    /// per namespace.
    fn drop(&mut self) {
        for ns in self.all() {
            ns.signal_servers();
        }
    }
}

impl Topology {
    pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    /// The gateway's WAN ("public") address.
    pub const GW_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    /// The gateway's LAN address.
    pub const GW_LAN: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    pub const BE1: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 11);
    pub const BE2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 12);
    pub const BE3: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 13);
    pub const LAN: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);
    pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    pub const GW_WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    pub const GW_LAN6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
    pub const BE1_6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x11);
    pub const BE2_6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x12);
    pub const BE3_6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x13);
    pub const LAN6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x50);
    /// Port of the servers on the backends and `lan`.
    pub const BACKEND_PORT: u16 = 8080;
    /// Port of the servers on the client.
    pub const CLIENT_PORT: u16 = 9000;

    /// Build the lab. On error, whatever was built is torn down before returning.
    pub fn gateway(opts: GatewayOptions) -> Result<Topology, NetlabError> {
        let start = Instant::now();
        let nso = NetnsOptions {
            rp_filter: opts.rp_filter,
            ipv6: opts.ipv6,
            conntrack_acct: true,
        };
        // Namespaces first, in parallel: each costs a few `ip` runs and a sysctl thread.
        let mut roles = vec!["client", "gw"];
        if opts.lan_mode == LanMode::Switch {
            roles.push("sw");
        }
        roles.extend(LAN_HOSTS.iter().map(|(r, _)| *r));
        let created: Vec<Result<Netns, NetlabError>> = std::thread::scope(|s| {
            let hs: Vec<_> = roles
                .iter()
                .map(|r| s.spawn(move || Netns::create(r, nso)))
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(NetlabError::Invalid("netns creation panicked".into()))
                    })
                })
                .collect()
        });
        let mut nss = Vec::with_capacity(created.len());
        for c in created {
            nss.push(c?); // on error the ones already pushed are dropped (deleted)
        }
        let mut it = nss.into_iter();
        let client = it.next().expect("client");
        let gw = it.next().expect("gw");
        let sw = match opts.lan_mode {
            LanMode::Switch => Some(it.next().expect("sw")),
            LanMode::Bridge => None,
        };
        let lan_hosts: Vec<Netns> = it.collect();
        let mut topo = Topology {
            opts,
            client,
            gw,
            sw,
            lan_hosts,
            lan_bridge: None,
            build_time: Duration::ZERO,
        };
        topo.wire()?;
        if topo.opts.servers {
            topo.start_servers()?;
        }
        topo.build_time = start.elapsed();
        Ok(topo)
    }

    fn wire(&mut self) -> Result<(), NetlabError> {
        let v6 = self.opts.ipv6;
        // WAN: client eth0 ── gw wan0.
        let wan_if = self.wan_if().to_string();
        let lan_if = self.lan_if().to_string();
        Veth::create(&self.client, "eth0", &self.gw, &wan_if)?;
        self.client
            .addr_add("eth0", &format!("{}/24", Self::CLIENT))?;
        self.gw.addr_add(&wan_if, &format!("{}/24", Self::GW_WAN))?;
        if v6 {
            self.client
                .addr_add("eth0", &format!("{}/64", Self::CLIENT6))?;
            self.gw
                .addr_add(&wan_if, &format!("{}/64", Self::GW_WAN6))?;
        }

        // LAN segment.
        let bridge = match &self.sw {
            Some(sw) => {
                let br = Bridge::create(sw, "br0")?;
                // The switch is pure L2: bridged frames must not see the switch's netfilter.
                if sw.sysctl("net.bridge.bridge-nf-call-iptables")?.is_some() {
                    sw.set_bridge_nf_call(false, false)?;
                }
                Veth::create(&self.gw, &lan_if, sw, "p-gw")?;
                br.add_port(sw, "p-gw")?;
                br
            }
            None => {
                let br = Bridge::create(&self.gw, &lan_if)?;
                if let Some(on) = self.opts.bridge_nf_call {
                    self.gw.set_bridge_nf_call(on, on)?;
                }
                br
            }
        };
        self.gw.addr_add(&lan_if, &format!("{}/24", Self::GW_LAN))?;
        if v6 {
            self.gw
                .addr_add(&lan_if, &format!("{}/64", Self::GW_LAN6))?;
        }
        let bridge_ns = self.sw.as_ref().unwrap_or(&self.gw);
        for (host, (role, last)) in self.lan_hosts.iter().zip(LAN_HOSTS) {
            let port = format!("p-{role}");
            Veth::create(host, "eth0", bridge_ns, &port)?;
            bridge.add_port(bridge_ns, &port)?;
            host.addr_add("eth0", &format!("10.77.0.{last}/24"))?;
            if v6 {
                host.addr_add("eth0", &format!("fd00:77::{last}/64"))?;
            }
            if role == "lan" || self.opts.backend_default_route {
                host.route_add("default", Self::GW_LAN.into())?;
                if v6 {
                    host.route_add("default", Self::GW_LAN6.into())?;
                }
            }
        }
        self.lan_bridge = Some(bridge);
        Ok(())
    }

    fn start_servers(&self) -> Result<(), NetlabError> {
        for proto in [Proto::Tcp, Proto::Udp] {
            self.client.serve("client", proto, Self::CLIENT_PORT)?;
            for host in &self.lan_hosts {
                host.serve(host.role(), proto, Self::BACKEND_PORT)?;
            }
        }
        Ok(())
    }

    pub fn options(&self) -> &GatewayOptions {
        &self.opts
    }

    /// How long [`gateway`](Self::gateway) took (namespaces, links, servers ready).
    pub fn build_time(&self) -> Duration {
        self.build_time
    }

    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The gateway: run `pfstate apply` here with `ip netns exec <gw().name()> ...`.
    pub fn gw(&self) -> &Netns {
        &self.gw
    }

    /// The switch namespace (switch mode only).
    pub fn switch(&self) -> Option<&Netns> {
        self.sw.as_ref()
    }

    /// The LAN bridge (`br0` in the switch or in the gateway) and its namespace, e.g. for
    /// [`Bridge::set_hairpin`] on `p-be1`.
    pub fn lan_bridge(&self) -> (&Bridge, &Netns) {
        let br = self.lan_bridge.as_ref().expect("wired at build");
        (br, self.sw.as_ref().unwrap_or(&self.gw))
    }

    /// The gateway's WAN interface (`wan0` unless [`GatewayOptions::wan_if`] says otherwise).
    pub fn wan_if(&self) -> &str {
        self.opts.wan_if.as_deref().unwrap_or("wan0")
    }

    /// The gateway's LAN interface: `lan0` (switch mode) or `br0` (bridge mode) unless
    /// [`GatewayOptions::lan_if`] says otherwise.
    pub fn lan_if(&self) -> &str {
        match (&self.opts.lan_if, self.opts.lan_mode) {
            (Some(name), _) => name,
            (None, LanMode::Switch) => "lan0",
            (None, LanMode::Bridge) => "br0",
        }
    }

    /// be1, be2, be3 (index 0..3).
    pub fn backends(&self) -> &[Netns] {
        &self.lan_hosts[..3]
    }

    /// The LAN client `lan` (10.77.0.50).
    pub fn lan(&self) -> &Netns {
        &self.lan_hosts[3]
    }

    /// A host by role: `client`, `gw`, `sw`, `be1`, `be2`, `be3`, `lan`.
    pub fn host(&self, role: &str) -> Option<&Netns> {
        self.all().into_iter().find(|n| n.role() == role)
    }

    /// Every namespace of the lab.
    pub fn all(&self) -> Vec<&Netns> {
        let mut v = vec![&self.client, &self.gw];
        v.extend(self.sw.as_ref());
        v.extend(self.lan_hosts.iter());
        v
    }

    /// `(role, namespace name)` for every namespace, for logs and for `ip netns exec`.
    pub fn names(&self) -> Vec<(String, String)> {
        self.all()
            .into_iter()
            .map(|n| (n.role().to_string(), n.name().to_string()))
            .collect()
    }

    /// Addresses, routes and neighbours of every namespace, plus the gateway's iptables rules:
    /// print it when a traffic assertion fails.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for ns in self.all() {
            out.push_str(&format!("== {} ({})\n", ns.role(), ns.name()));
            for args in [
                &["-br", "addr"][..],
                &["route"][..],
                &["-6", "route"][..],
                &["neigh"][..],
            ] {
                match ns.ip(args) {
                    Ok(s) => out.push_str(&s),
                    Err(e) => out.push_str(&format!("ip {}: {e}\n", args.join(" "))),
                }
            }
        }
        out.push_str("== gw iptables-save\n");
        match self.gw.exec("iptables-save", &[]) {
            Ok(s) => out.push_str(&s),
            Err(e) => out.push_str(&format!("{e}\n")),
        }
        out
    }

    /// `IP:port` helper: `Topology::addr(Topology::BE1, 8080)`.
    pub fn addr(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
        SocketAddr::new(ip.into(), port)
    }
}
