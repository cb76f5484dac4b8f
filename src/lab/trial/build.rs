//! Building the lab out of namespaces, and applying the file in its gateway.

use std::net::SocketAddr;
use std::path::Path;

use crate::error::Error;
use crate::model::Proto;

use super::blueprint::*;
use super::{CLIENT_PORT, lab_error};
use crate::lab::{self as netlab, Bridge, Netns, NetnsOptions, Veth};

pub(super) struct Lab {
    pub(super) client: Netns,
    pub(super) gw: Netns,
    /// Per segment: the switch (kept for its Drop) and the LAN client.
    pub(super) _switches: Vec<Netns>,
    pub(super) lan_clients: Vec<Netns>,
    pub(super) backends: Vec<Netns>,
}

impl Lab {
    pub(super) fn build(p: &LabPlan) -> Result<Lab, netlab::NetlabError> {
        let opts = NetnsOptions {
            rp_filter: 1,
            ipv6: p.ipv6,
            conntrack_acct: true,
        };
        let client = Netns::create("client", opts)?;
        let gw = Netns::create("gw", opts)?;
        let mut switches = Vec::new();
        let mut lan_clients = Vec::new();
        for (k, seg) in p.segments.iter().enumerate() {
            let role = if k == 0 {
                "sw".to_string()
            } else {
                format!("sw{}", k + 1)
            };
            switches.push(Netns::create(&role, opts)?);
            lan_clients.push(Netns::create(&seg.client.role, opts)?);
        }
        let mut backends = Vec::new();
        for (_, b) in &p.backends {
            backends.push(Netns::create(&b.role, opts)?);
        }
        let lab = Lab {
            client,
            gw,
            _switches: switches,
            lan_clients,
            backends,
        };
        lab.wire(p)?;
        Ok(lab)
    }

    // Over 60 lines on purpose: the wiring of the lab in the order it must happen (WAN, each
    // segment, backends, routes), each step a few `ip` calls on the same handles.
    pub(super) fn wire(&self, p: &LabPlan) -> Result<(), netlab::NetlabError> {
        let (client, gw) = (&self.client, &self.gw);
        Veth::create(client, "eth0", gw, &p.wan_if)?;
        for a in &p.client {
            client.addr_add("eth0", &a.to_string())?;
        }
        for a in &p.wan_gw {
            gw.addr_add(&p.wan_if, &a.to_string())?;
        }
        for (dst, via) in &p.client_routes {
            client.route_add(&dst.to_string(), *via)?;
        }
        for d in &p.dummies {
            gw.ip(&["link", "add", d, "type", "dummy"])?;
            gw.link_up(d)?;
        }
        let mut bridges = Vec::new();
        for (k, seg) in p.segments.iter().enumerate() {
            let sw = &self._switches[k];
            let br = Bridge::create(sw, "br0")?;
            if sw.sysctl("net.bridge.bridge-nf-call-iptables")?.is_some() {
                sw.set_bridge_nf_call(false, false)?;
            }
            Veth::create(gw, &seg.iface, sw, "p-gw")?;
            br.add_port(sw, "p-gw")?;
            for a in &seg.gw {
                gw.addr_add(&seg.iface, &a.to_string())?;
            }
            bridges.push(br);
        }
        let hosts = self
            .backends
            .iter()
            .zip(p.backends.iter().map(|(k, h)| (*k, h)))
            .chain(
                self.lan_clients
                    .iter()
                    .zip(p.segments.iter().enumerate().map(|(k, g)| (k, &g.client))),
            );
        for (ns, (k, host)) in hosts {
            let (sw, br, seg) = (&self._switches[k], &bridges[k], &p.segments[k]);
            let port = format!("p-{}", host.role);
            Veth::create(ns, "eth0", sw, &port)?;
            br.add_port(sw, &port)?;
            for a in &host.addrs {
                ns.addr_add("eth0", &a.to_string())?;
                // Default route via the gateway's address in that net.
                if let Some(g) = seg.gw.iter().find(|g| g.contains(&a.addr())) {
                    let _ = ns.route_add("default", g.addr());
                }
            }
            for (proto, port) in &host.serve {
                let name = SocketAddr::new(host.addrs[0].addr(), *port).to_string();
                ns.serve(&name, np(*proto), *port)?;
            }
        }
        if !p.client.is_empty() {
            client.serve("client", netlab::Proto::Tcp, CLIENT_PORT)?;
            client.serve("client", netlab::Proto::Udp, CLIENT_PORT)?;
        }
        Ok(())
    }

    /// `pfstate --root TMP apply FILE` in the gateway; its stdout.
    pub(super) fn apply(&self, file: &Path, root: &Path) -> Result<String, Error> {
        let exe = std::env::current_exe().map_err(|e| Error::Read {
            path: "/proc/self/exe".into(),
            source: e,
        })?;
        let file = std::fs::canonicalize(file).map_err(|e| Error::Read {
            path: file.display().to_string(),
            source: e,
        })?;
        let out = self
            .gw
            .exec_output(
                &exe.display().to_string(),
                &[
                    "--root",
                    &root.display().to_string(),
                    "--color",
                    "never",
                    "apply",
                    &file.display().to_string(),
                ],
            )
            .map_err(|e| lab_error("running pfstate apply in the lab", e))?;
        if !out.status.success() {
            return Err(Error::Usage(format!(
                "pfstate try: apply failed in the lab gateway (the lab is removed):\n{}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

pub(super) fn np(p: Proto) -> netlab::Proto {
    match p {
        Proto::Tcp => netlab::Proto::Tcp,
        Proto::Udp => netlab::Proto::Udp,
    }
}
