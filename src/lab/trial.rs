//! The lab of `pfstate try FILE`: build a throwaway copy of the host the file describes out of network
//! namespaces, apply the file in its gateway, send real connections to every forward and print
//! what reached which backend.
//!
//! The lab (all in namespaces named `pft-<pid>-...`, removed on return, also on panic):
//!
//! ```text
//! WAN client ── <wan if> gateway <lan if> ── switch ── one host per backend address
//!   (listen addresses on the WAN side)        (pure L2)   └─ LAN client
//! ```
//! - interface names come from the file (`interfaces:` aliases, `listen.interface`, `via`,
//!   `snat.out_interface`); any other interface it names becomes a dummy device in the gateway;
//! - each backend gets the /24 (IPv6: /64) around it; the gateway takes `.1` (`::1`) of that net
//!   unless a backend has it, or a listen address of the file lies in it;
//! - listen addresses outside the LAN nets go on the WAN interface (default 192.0.2.1/24 and
//!   2001:db8::1/64); the WAN client sits in that net (inside `listen.from` when it can);
//! - backends route via the gateway; echo servers on every backend address and port answer with
//!   `<address:port>` and the source address they saw.
//!
//! The file is applied with `ip netns exec <gw> pfstate --root <tmp> apply FILE`, so no file of
//! the host is written and the host's own firewall and sysctls are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::error::Error;
use crate::model::{Family, Forward, Hairpin, Model, PortRange, Proto, SourceNat};

use super::{self as netlab, Bridge, Netns, NetnsOptions, ProbeResult, Veth};

/// Timeout of one probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Timeout of the first probe of a row: right after `net.ipv6.conf.all.forwarding` goes
/// 0 -> 1 the first forwarded IPv6 connection was measured to take ~2 s (a retransmission).
const FIRST_PROBE_TIMEOUT: Duration = Duration::from_millis(3500);
/// Port of the WAN client's server (for `snat:` entries).
const CLIENT_PORT: u16 = 9000;
/// Consecutive failures after which a row stops probing.
const GIVE_UP_AFTER: usize = 2;

/// What a trial found: the report, and how many of its checks failed.
pub struct Trial {
    pub text: String,
    pub checks: usize,
    pub failed: usize,
    /// The lab as built (interfaces, addresses).
    pub lab: String,
    /// One per row of the report's table.
    pub probes: Vec<Probe>,
}

/// One row of the report's table, as `--format json` gives it.
pub struct Probe {
    pub entry: String,
    pub proto: &'static str,
    pub from: &'static str,
    pub to: String,
    /// `ok`, `fail` or `skip`.
    pub result: &'static str,
    pub reached: String,
}

impl Probe {
    fn of(r: &Row) -> Probe {
        Probe {
            entry: r.entry.clone(),
            proto: r.proto.name(),
            from: r.from.label(),
            to: r.target.to_string(),
            result: match r.verdict {
                Verdict::Ok => "ok",
                Verdict::Fail => "fail",
                Verdict::Skipped => "skip",
            },
            reached: r.result.clone(),
        }
    }
}

/// Build the lab for `model`, apply `file` (its source) in the lab gateway, probe every entry.
/// Needs root; the lab is removed on return.
pub fn run(model: &Model, file: &Path) -> Result<Trial, Error> {
    // No sweep of "stale" `pft-` namespaces here: on a shared machine their owner may live in
    // another PID namespace, where its pid looks dead from here.
    let plan = LabPlan::from_model(model);
    let start = Instant::now();
    let lab = Lab::build(&plan).map_err(|e| lab_error("building the lab", e))?;
    let mut text = String::new();
    text.push_str(&plan.describe());
    let built = start.elapsed();

    let tmp = TempDir::new()?;
    let applied = lab.apply(file, &tmp.0)?;
    let _ = writeln!(
        text,
        "lab built in {} ms; pfstate apply in the lab gateway: {}",
        built.as_millis(),
        applied.trim().lines().last().unwrap_or("done")
    );

    let rows = run_probes(&plan, model, &lab);
    drop(lab);
    text.push('\n');
    text.push_str(&table(&rows));
    let failed = rows.iter().filter(|r| r.verdict == Verdict::Fail).count();
    let ok = rows.iter().filter(|r| r.verdict == Verdict::Ok).count();
    let _ = writeln!(
        text,
        "\n{ok} check(s) passed, {failed} failed; the lab is removed, the host was not touched"
    );
    Ok(Trial {
        text,
        checks: rows.len(),
        failed,
        lab: plan.describe(),
        probes: rows.iter().map(Probe::of).collect(),
    })
}

fn lab_error(what: &str, e: netlab::NetlabError) -> Error {
    Error::Usage(format!("pfstate try: {what}: {e}"))
}

/// A private temporary directory for the lab's `--root`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, Error> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pfstate-try-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| Error::Read {
            path: dir.display().to_string(),
            source: e,
        })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// What to build

/// A host on the LAN: one per backend address, plus the LAN client.
#[derive(Debug, Clone)]
struct LanHost {
    role: String,
    addrs: Vec<IpNet>,
    /// Servers to start: (protocol, port).
    serve: BTreeSet<(Proto, u16)>,
}

/// One LAN interface of the gateway with its own switch, addresses and LAN client.
#[derive(Debug, Clone)]
struct Segment {
    iface: String,
    /// Gateway addresses on the interface (with the prefix of their net).
    gw: Vec<IpNet>,
    client: LanHost,
}

#[derive(Debug, Clone)]
struct LabPlan {
    wan_if: String,
    dummies: Vec<String>,
    /// Gateway addresses on the WAN interface (first of each family: the "public" address).
    wan_gw: Vec<IpNet>,
    client: Vec<IpNet>,
    /// Host routes the client needs towards listen addresses outside its net.
    client_routes: Vec<(IpNet, IpAddr)>,
    segments: Vec<Segment>,
    /// Backend hosts with the index of their segment.
    backends: Vec<(usize, LanHost)>,
    ipv6: bool,
    notes: Vec<String>,
}

fn net_around(addr: IpAddr) -> IpNet {
    let len = match addr {
        IpAddr::V4(_) => 24,
        IpAddr::V6(_) => 64,
    };
    IpNet::new(addr, len).expect("valid prefix").trunc()
}

fn with_prefix(addr: IpAddr, net: &IpNet) -> IpNet {
    IpNet::new(addr, net.prefix_len()).expect("valid prefix")
}

/// The `n`th address of a net (host part `n`).
fn nth(net: &IpNet, n: u32) -> IpAddr {
    match net {
        IpNet::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4.network()) + n)),
        IpNet::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6.network()) + u128::from(n))),
    }
}

/// Host numbers to try in a net, starting at `first`, wrapping round; never the network or
/// (IPv4) broadcast address.
fn candidates(net: &IpNet, first: u32) -> Vec<IpAddr> {
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

fn is_usable(addr: &IpAddr) -> bool {
    !(addr.is_loopback() || addr.is_unspecified() || addr.is_multicast())
}

impl LabPlan {
    fn from_model(m: &Model) -> LabPlan {
        let mut notes = Vec::new();
        let default_lan = m
            .interfaces
            .get("lan")
            .cloned()
            .or_else(|| m.forwards.iter().find_map(|f| f.via.clone()))
            .unwrap_or_else(|| "lan0".into());

        // LAN nets and the interface each is on: around the backends of forwards with `via`,
        // then of the others (default LAN interface unless a `via` forward placed that net),
        // then around `snat` sources.
        let mut nets: Vec<(IpNet, String)> = Vec::new();
        let backend_addrs: Vec<IpAddr> = m
            .forwards
            .iter()
            .flat_map(|f| f.backends.iter().map(|b| b.addr))
            .filter(is_usable)
            .collect();
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
        let lan_nets: Vec<IpNet> = nets.iter().map(|(n, _)| *n).collect();
        let seg_ifaces: Vec<String> = nets.iter().fold(Vec::new(), |mut v, (_, i)| {
            if !v.contains(i) {
                v.push(i.clone());
            }
            v
        });
        let seg_ifaces = if seg_ifaces.is_empty() {
            vec![default_lan.clone()]
        } else {
            seg_ifaces
        };
        let (wan_if, dummies) = interfaces(m, &seg_ifaces);
        let iface_of = |net: &IpNet| {
            nets.iter()
                .find(|(n, _)| n == net)
                .map(|(_, i)| i.clone())
                .unwrap_or_else(|| default_lan.clone())
        };
        let listen_addrs: Vec<IpAddr> = m.forwards.iter().filter_map(|f| f.address).collect();

        // The gateway's LAN addresses.
        let mut lan_gw: Vec<IpNet> = Vec::new();
        for net in &lan_nets {
            let own = listen_addrs
                .iter()
                .find(|a| net.contains(*a) && !backend_addrs.contains(a));
            let addr = own.copied().or_else(|| {
                [1u32, 254]
                    .iter()
                    .map(|n| nth(net, *n))
                    .chain(candidates(net, 2))
                    .find(|a| net.contains(a) && !backend_addrs.contains(a))
            });
            if let Some(a) = addr {
                lan_gw.push(with_prefix(a, net));
            }
        }
        // Other SNAT targets inside a LAN net are the gateway's too.
        for f in &m.forwards {
            if let SourceNat::To(a) = f.snat
                && let Some(net) = lan_nets.iter().find(|n| n.contains(&a))
                && !lan_gw.iter().any(|g| g.addr() == a)
                && !backend_addrs.contains(&a)
            {
                lan_gw.push(with_prefix(a, net));
            }
        }

        // WAN: listen addresses (and SNAT targets) outside the LAN nets.
        let mut wan_addrs: Vec<IpAddr> = listen_addrs
            .iter()
            .copied()
            .filter(|a| !lan_nets.iter().any(|n| n.contains(a)))
            .collect();
        for s in &m.snats {
            if let SourceNat::To(a) = s.to {
                wan_addrs.push(a);
            }
        }
        let mut wan_gw: Vec<IpNet> = Vec::new();
        let mut client = Vec::new();
        let mut client_routes = Vec::new();
        for family in Family::ALL {
            let used = m.forwards.iter().any(|f| f.family == family)
                || m.snats.iter().any(|s| s.family == family);
            if !used {
                continue;
            }
            let mine: Vec<IpAddr> = wan_addrs
                .iter()
                .copied()
                .filter(|a| Family::of(a) == family)
                .collect();
            let primary = mine.first().copied().unwrap_or_else(|| {
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
                    .find(|d| !lan_nets.iter().any(|n| n.contains(d)))
                    .unwrap_or(defaults[0])
            });
            let net = net_around(primary);
            let mut taken: Vec<IpAddr> = vec![primary];
            wan_gw.push(with_prefix(primary, &net));
            for a in mine.iter().skip(1) {
                if wan_gw.iter().any(|g| g.addr() == *a) {
                    continue;
                }
                taken.push(*a);
                if net.contains(a) {
                    wan_gw.push(with_prefix(*a, &net));
                } else {
                    let host = IpNet::new(*a, family.host_prefix()).expect("host prefix");
                    wan_gw.push(host);
                    client_routes.push((host, primary));
                }
            }
            // Listen addresses the gateway holds on the LAN side are reached through it too.
            for a in listen_addrs.iter().filter(|a| Family::of(a) == family) {
                if lan_nets.iter().any(|n| n.contains(a)) {
                    let host = IpNet::new(*a, family.host_prefix()).expect("host prefix");
                    if !client_routes.contains(&(host, primary)) {
                        client_routes.push((host, primary));
                    }
                }
            }
            // The client: preferably inside every forward's `listen.from`.
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
            let cands: Vec<IpAddr> = candidates(&net, first)
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
                client.push(with_prefix(*c, &net));
                if score(c) < froms.len() {
                    notes.push(format!(
                        "the WAN client {c} is outside some `listen.from`: those forwards are expected to refuse it"
                    ));
                }
            }
        }

        // Backend hosts, one per address.
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
                    let iface = iface_of(&net);
                    let seg = seg_ifaces.iter().position(|i| *i == iface).unwrap_or(0);
                    backends.push((
                        seg,
                        LanHost {
                            role: format!("be{}", backends.len() + 1),
                            addrs: vec![with_prefix(b.addr, &net)],
                            serve: BTreeSet::new(),
                        },
                    ));
                    backends.len() - 1
                });
                for p in probe_ports(f) {
                    for proto in &f.protos {
                        backends[idx]
                            .1
                            .serve
                            .insert((*proto, backend_port(f, b, p)));
                    }
                }
            }
        }
        // Per LAN interface: the gateway's addresses, and a LAN client in the first net of each
        // family, preferably inside the `snat` sources, on an address not already used.
        let mut segments = Vec::new();
        for (k, iface) in seg_ifaces.iter().enumerate() {
            let gw: Vec<IpNet> = lan_gw
                .iter()
                .copied()
                .filter(|g| iface_of(&g.trunc()) == *iface)
                .collect();
            let mut client = LanHost {
                role: if k == 0 {
                    "lanc".into()
                } else {
                    format!("lanc{}", k + 1)
                },
                addrs: Vec::new(),
                serve: BTreeSet::new(),
            };
            for family in Family::ALL {
                let Some(net) = nets
                    .iter()
                    .find(|(n, i)| i == iface && Family::of(&n.addr()) == family)
                    .map(|(n, _)| n)
                else {
                    continue;
                };
                let used: Vec<IpAddr> = backend_addrs
                    .iter()
                    .copied()
                    .chain(lan_gw.iter().map(|g| g.addr()))
                    .collect();
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
        let ipv6 =
            client.iter().any(|c| c.addr().is_ipv6()) || lan_gw.iter().any(|c| c.addr().is_ipv6());
        LabPlan {
            wan_if,
            dummies,
            wan_gw,
            client,
            client_routes,
            segments,
            backends,
            ipv6,
            notes,
        }
    }

    /// The segment a forward's backends are on.
    fn segment_of(&self, f: &Forward) -> usize {
        f.backends
            .iter()
            .find_map(|b| {
                self.segments
                    .iter()
                    .position(|s| s.gw.iter().any(|g| g.contains(&b.addr)))
            })
            .unwrap_or(0)
    }

    fn public(&self, family: Family) -> Option<IpAddr> {
        self.wan_gw
            .iter()
            .map(|n| n.addr())
            .find(|a| Family::of(a) == family)
    }

    fn lan_gw_addr(&self, seg: usize, family: Family) -> Option<IpAddr> {
        self.segments
            .get(seg)?
            .gw
            .iter()
            .map(|n| n.addr())
            .find(|a| Family::of(a) == family)
    }

    fn describe(&self) -> String {
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

/// The WAN interface name and the other names the file uses (made dummies), given the LAN
/// interfaces.
fn interfaces(m: &Model, lans: &[String]) -> (String, Vec<String>) {
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
fn probe_ports(f: &Forward) -> Vec<u16> {
    if f.port.is_single() {
        vec![f.port.lo]
    } else {
        vec![f.port.lo, f.port.hi]
    }
}

/// The backend port a listen port is translated to.
fn backend_port(f: &Forward, b: &crate::model::Backend, listen: u16) -> u16 {
    match b.port {
        None => listen,
        Some(PortRange { lo, hi }) if lo == hi => lo,
        Some(PortRange { lo, .. }) => lo + (listen - f.port.lo),
    }
}

// ---------------------------------------------------------------------------------------------
// Building it

struct Lab {
    client: Netns,
    gw: Netns,
    /// Per segment: the switch (kept for its Drop) and the LAN client.
    _switches: Vec<Netns>,
    lan_clients: Vec<Netns>,
    backends: Vec<Netns>,
}

impl Lab {
    fn build(p: &LabPlan) -> Result<Lab, netlab::NetlabError> {
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

    fn wire(&self, p: &LabPlan) -> Result<(), netlab::NetlabError> {
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
    fn apply(&self, file: &Path, root: &Path) -> Result<String, Error> {
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

fn np(p: Proto) -> netlab::Proto {
    match p {
        Proto::Tcp => netlab::Proto::Tcp,
        Proto::Udp => netlab::Proto::Udp,
    }
}

// ---------------------------------------------------------------------------------------------
// Probing it

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Wan,
    Lan,
    Gateway,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Wan => "WAN client",
            Side::Lan => "LAN client",
            Side::Gateway => "gateway",
        }
    }
}

#[derive(Debug, Clone)]
struct Row {
    entry: String,
    proto: Proto,
    from: Side,
    target: SocketAddr,
    verdict: Verdict,
    result: String,
}

fn run_probes(p: &LabPlan, m: &Model, lab: &Lab) -> Vec<Row> {
    let mut rows = Vec::new();
    for f in &m.forwards {
        let public = f.address.or_else(|| p.public(f.family));
        let seg = p.segment_of(f);
        let lan_side = f.interface.as_deref() == Some(p.segments[seg].iface.as_str());
        let mut plan: Vec<(Side, Option<IpAddr>)> = Vec::new();
        if lan_side {
            plan.push((
                Side::Lan,
                f.address.or_else(|| p.lan_gw_addr(seg, f.family)),
            ));
        } else {
            plan.push((Side::Wan, public));
            if f.hairpin != Hairpin::Off {
                plan.push((Side::Lan, public));
            }
        }
        if f.local {
            match f.address {
                Some(a) => {
                    plan.push((Side::Gateway, Some(a)));
                    if f.family == Family::V4 {
                        plan.push((Side::Gateway, Some(Ipv4Addr::LOCALHOST.into())));
                    }
                }
                None => {
                    plan.push((Side::Gateway, p.public(f.family)));
                    plan.push((Side::Gateway, p.lan_gw_addr(seg, f.family)));
                    if f.family == Family::V4 {
                        plan.push((Side::Gateway, Some(Ipv4Addr::LOCALHOST.into())));
                    }
                }
            }
        }
        for (from, target) in plan {
            for port in probe_ports(f) {
                for proto in &f.protos {
                    let Some(t) = target else {
                        continue;
                    };
                    rows.push(probe_forward(
                        p,
                        f,
                        lab,
                        from,
                        SocketAddr::new(t, port),
                        *proto,
                    ));
                }
            }
        }
    }
    for s in &m.snats {
        // The LAN client inside the source network, else the first one (then skipped).
        let addr_of = |g: &Segment| {
            g.client
                .addrs
                .iter()
                .map(|n| n.addr())
                .find(|a| Family::of(a) == s.family)
        };
        let seg = p
            .segments
            .iter()
            .position(|g| addr_of(g).is_some_and(|a| s.source.contains(&a)))
            .unwrap_or(0);
        let lanc = p.segments.get(seg).and_then(addr_of);
        let client = p
            .client
            .iter()
            .map(|c| c.addr())
            .find(|a| Family::of(a) == s.family);
        let (Some(lanc), Some(client)) = (lanc, client) else {
            continue;
        };
        let target = SocketAddr::new(client, CLIENT_PORT);
        let mut row = Row {
            entry: s.name.clone(),
            proto: Proto::Tcp,
            from: Side::Lan,
            target,
            verdict: Verdict::Ok,
            result: String::new(),
        };
        if !s.source.contains(&lanc) {
            row.verdict = Verdict::Skipped;
            row.result = format!(
                "skipped: the lab's LAN client {lanc} is outside {}",
                s.source
            );
            rows.push(row);
            continue;
        }
        let want = match s.to {
            SourceNat::To(a) => Some(a),
            _ => p.public(s.family),
        };
        let r = netlab::probe_tcp(&lab.lan_clients[seg], target, PROBE_TIMEOUT);
        match r.reply() {
            Some(reply) if Some(reply.peer.ip()) == want || want.is_none() => {
                row.result = format!("client saw {}", reply.peer.ip());
            }
            Some(reply) => {
                row.verdict = Verdict::Fail;
                row.result = format!(
                    "client saw {} (expected {}): another rule translated it",
                    reply.peer.ip(),
                    want.map(|w| w.to_string()).unwrap_or_default()
                );
            }
            None => {
                row.verdict = Verdict::Fail;
                row.result = format!(
                    "{} — likely: {}",
                    r.label(),
                    match r {
                        ProbeResult::Timeout =>
                            "not forwarded (ip_forward, FORWARD policy) or not translated (check source/out_interface)",
                        _ => "the gateway could not route it",
                    }
                );
            }
        }
        rows.push(row);
    }
    rows
}

fn probe_forward(
    p: &LabPlan,
    f: &Forward,
    lab: &Lab,
    from: Side,
    target: SocketAddr,
    proto: Proto,
) -> Row {
    let ns = match from {
        Side::Wan => &lab.client,
        Side::Lan => &lab.lan_clients[p.segment_of(f)],
        Side::Gateway => &lab.gw,
    };
    let expected: BTreeSet<String> = f
        .backends
        .iter()
        .map(|b| SocketAddr::new(b.addr, backend_port(f, b, target.port())).to_string())
        .collect();
    let attempts = if f.backends.len() > 1 {
        (8 * f.backends.len()).min(32)
    } else {
        2
    };
    let mut reached: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut peers: BTreeSet<IpAddr> = BTreeSet::new();
    let mut in_a_row = 0;
    for i in 0..attempts {
        let timeout = if i == 0 {
            FIRST_PROBE_TIMEOUT
        } else {
            PROBE_TIMEOUT
        };
        let r = match proto {
            Proto::Tcp => netlab::probe_tcp(ns, target, timeout),
            Proto::Udp => netlab::probe_udp(ns, target, None, timeout),
        };
        match r.reply() {
            Some(reply) => {
                in_a_row = 0;
                *reached.entry(reply.name.clone()).or_default() += 1;
                peers.insert(reply.peer.ip());
            }
            None => {
                in_a_row += 1;
                *failures.entry(r.label()).or_default() += 1;
                if in_a_row >= GIVE_UP_AFTER {
                    break;
                }
            }
        }
    }
    let mut row = Row {
        entry: f.name.clone(),
        proto,
        from,
        target,
        verdict: Verdict::Ok,
        result: String::new(),
    };
    let source_outside_from = from == Side::Wan
        && !f.from.is_empty()
        && !p
            .client
            .iter()
            .any(|c| f.from.iter().any(|n| n.contains(&c.addr())));
    let wrong: Vec<&String> = reached.keys().filter(|k| !expected.contains(*k)).collect();
    let mut parts: Vec<String> = reached.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    parts.extend(failures.iter().map(|(k, n)| format!("{k} ×{n}")));
    let seen = peers
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if source_outside_from {
        row.verdict = if reached.is_empty() {
            Verdict::Ok
        } else {
            Verdict::Fail
        };
        row.result = format!(
            "{} (the WAN client is outside listen.from: refusing it is right)",
            parts.join(", ")
        );
        return row;
    }
    if !failures.is_empty() || !wrong.is_empty() || reached.is_empty() {
        row.verdict = Verdict::Fail;
        let why = if !wrong.is_empty() {
            "answered by a backend of another forward (overlapping listen ports?)".to_string()
        } else {
            likely_reason(f, from, target, &failures)
        };
        row.result = format!("{} — likely: {why}", parts.join(", "));
        return row;
    }
    row.result = format!("{} (backend saw {seen})", parts.join(", "));
    row
}

/// A best guess at why probes failed, from where they came from and how they failed.
fn likely_reason(
    f: &Forward,
    from: Side,
    target: SocketAddr,
    failures: &BTreeMap<String, usize>,
) -> String {
    let timed_out = failures.contains_key("timeout");
    let refused = failures.contains_key("refused");
    match from {
        Side::Gateway if target.ip().is_loopback() => {
            "127.0.0.1 needs route_localnet on the interface towards the backends: set `via:`".into()
        }
        Side::Gateway if refused => {
            "no DNAT in nat OUTPUT for this address (`local: true`, listen.address)".into()
        }
        Side::Gateway => {
            "the backend could not answer the gateway (source not masqueraded towards it)".into()
        }
        Side::Lan if refused && f.interface.is_some() => {
            "listen.interface limits the DNAT to that interface; for LAN clients set `via:` (hairpin)".into()
        }
        Side::Lan if timed_out && f.hairpin == Hairpin::Off => {
            "the backend answered the LAN client directly: add `hairpin`".into()
        }
        Side::Lan if timed_out => {
            "the backend answered the LAN client directly: the hairpin networks do not cover the LAN client (`hairpin: [CIDR]` or `via:`)".into()
        }
        _ if refused => format!(
            "nothing translated the connection, the gateway answered itself (check listen.address/interface/from and proto; {} here)",
            f.protos.iter().map(|p| p.name()).collect::<Vec<_>>().join("+")
        ),
        _ if timed_out => "packets dropped: ip_forward/forwarding off, a FORWARD drop (`accept: false`), or replies that do not return through the gateway (`snat: masquerade`)".into(),
        _ => "unexpected failure (see the result)".into(),
    }
}

fn table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "entry".to_string(),
        "proto".to_string(),
        "from".to_string(),
        "to".to_string(),
        "result".to_string(),
        "reached".to_string(),
    ]];
    for r in rows {
        lines.push([
            r.entry.clone(),
            r.proto.name().to_string(),
            r.from.label().to_string(),
            r.target.to_string(),
            match r.verdict {
                Verdict::Ok => "ok",
                Verdict::Fail => "FAIL",
                Verdict::Skipped => "skip",
            }
            .to_string(),
            r.result.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        for (i, w) in widths.iter().enumerate() {
            let _ = write!(out, "{:<w$}  ", l[i], w = *w);
        }
        out.push_str(&l[5]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> LabPlan {
        let m = crate::spec::validate::load_str("t.yaml", yaml).unwrap();
        LabPlan::from_model(&m)
    }

    #[test]
    fn plan_places_backends_listen_and_clients() {
        let p = plan(
            "version: 1\ninterfaces: {wan: eth0, lan: eth1, dmz: eth2}\nforwards:\n  - name: web\n    listen: {port: 80, address: 203.0.113.10, from: [203.0.113.128/25]}\n    to: [192.168.1.1:8080, 192.168.1.11:8080]\n    via: lan\n",
        );
        assert_eq!(
            (p.wan_if.as_str(), p.segments[0].iface.as_str()),
            ("eth0", "eth1")
        );
        assert_eq!(p.dummies, vec!["eth2".to_string()]);
        assert_eq!(p.wan_gw[0].to_string(), "203.0.113.10/24");
        // .1 is a backend, so the gateway takes .254; the client is inside listen.from.
        assert_eq!(p.segments[0].gw[0].to_string(), "192.168.1.254/24");
        let c = p.client[0].addr();
        assert!(
            "203.0.113.128/25".parse::<IpNet>().unwrap().contains(&c),
            "{c}"
        );
        assert_eq!(p.segments[0].client.addrs[0].to_string(), "192.168.1.50/24");
        assert_eq!(p.backends.len(), 2);
        assert!(p.backends[0].1.serve.contains(&(Proto::Tcp, 8080)));
        assert!(!p.ipv6);
    }

    #[test]
    fn plan_defaults_and_ipv6() {
        let p = plan(
            "version: 1\nforwards:\n  - name: v6\n    proto: udp\n    listen: {port: \"5000-5009\"}\n    to: \"[fd00:1::5]:6000-6009\"\n",
        );
        assert_eq!(
            (p.wan_if.as_str(), p.segments[0].iface.as_str()),
            ("wan0", "lan0")
        );
        assert_eq!(p.wan_gw[0].to_string(), "2001:db8::1/64");
        assert_eq!(p.segments[0].gw[0].to_string(), "fd00:1::1/64");
        assert!(p.ipv6);
        let serve = &p.backends[0].1.serve;
        assert!(serve.contains(&(Proto::Udp, 6000)) && serve.contains(&(Proto::Udp, 6009)));
    }

    #[test]
    fn listen_address_on_the_lan_is_the_gateways_lan_address() {
        let p = plan(
            "version: 1\nforwards:\n  - name: web\n    listen: {port: 80, address: 10.1.2.3}\n    to: 10.1.2.11:8080\nsnat:\n  - name: out\n    source: 10.1.2.0/24\n",
        );
        assert_eq!(p.segments[0].gw[0].to_string(), "10.1.2.3/24");
        assert_eq!(p.wan_gw[0].to_string(), "192.0.2.1/24");
    }

    #[test]
    fn one_segment_per_lan_interface() {
        let p = plan(
            "version: 1\ninterfaces: {wan: eth0, lan: eth1, dmz: eth2}\nforwards:\n  - name: web\n    listen: {port: 80}\n    to: 192.168.1.10:8080\n    via: lan\n  - name: mail\n    listen: {port: 25}\n    to: 172.16.5.9\n    via: dmz\n  - name: other\n    listen: {port: 81}\n    to: 192.168.1.11:8080\nsnat:\n  - name: out\n    source: 10.9.0.0/16\n    out_interface: wan\n",
        );
        let ifs: Vec<&str> = p.segments.iter().map(|g| g.iface.as_str()).collect();
        assert_eq!(ifs, ["eth1", "eth2"]);
        assert_eq!(p.wan_if, "eth0");
        assert!(p.dummies.is_empty(), "{:?}", p.dummies);
        let gws: Vec<String> = p.segments[0].gw.iter().map(|g| g.to_string()).collect();
        // 192.168.1.0/24 (web and other) and the snat source's first /24, on the LAN alias.
        assert_eq!(gws, ["192.168.1.1/24", "10.9.0.1/24"]);
        assert_eq!(p.segments[1].gw[0].to_string(), "172.16.5.1/24");
        assert_eq!(p.backends[1].0, 1, "mail's backend sits on eth2");
        assert_eq!(p.segments[1].client.role, "lanc2");
    }

    #[test]
    fn narrow_snat_source_gets_a_lan_and_a_client_inside_it() {
        let p = plan(
            "version: 1\nsnat:\n  - name: one-host\n    source: 10.5.5.77/32\n    out_interface: wan0\n",
        );
        assert_eq!(p.segments[0].gw[0].to_string(), "10.5.5.1/24");
        assert_eq!(p.segments[0].client.addrs[0].to_string(), "10.5.5.77/24");
        assert_eq!(p.wan_if, "wan0");
    }
}
