//! The validated desired state: typed values only, no YAML, no spans.
//!
//! `validate.rs` builds a [`Model`] from a [`crate::spec::Spec`]; everything after it (render,
//! plan, apply) can rely on what the types say: addresses parse, ports are in range, names are
//! unique and safe to put in a restore payload, families do not mix within an entry.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// An address family: IPv4 rules go to iptables, IPv6 rules to ip6tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// The host route covering any address of the family, for `! -s 127.0.0.0/8`-style rules.
    pub fn host_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// An inclusive port range; a single port has `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        PortRange { lo: port, hi: port }
    }
    pub fn is_single(self) -> bool {
        self.lo == self.hi
    }
    pub fn width(self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }
    pub fn overlaps(self, other: PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
    /// `80` or `8000:8010`, as `--dport` and `--ctorigdstport` print it.
    pub fn match_text(self) -> String {
        if self.is_single() {
            self.lo.to_string()
        } else {
            format!("{}:{}", self.lo, self.hi)
        }
    }
    /// `80` or `8000-8010`, as `--to-destination` prints it.
    pub fn nat_text(self) -> String {
        if self.is_single() {
            self.lo.to_string()
        } else {
            format!("{}-{}", self.lo, self.hi)
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.nat_text())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub addr: IpAddr,
    /// `None`: keep the listen port (for a range, each port maps to itself).
    pub port: Option<PortRange>,
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    Random,
    RoundRobin,
}

/// How the source of forwarded packets is rewritten on the way to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceNat {
    None,
    Masquerade,
    To(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hairpin {
    Off,
    /// Masquerade clients from these networks (`hairpin: true` takes the networks the file
    /// states on the `via` interface alias).
    Networks(Vec<IpNet>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub name: String,
    pub family: Family,
    pub protos: Vec<Proto>,
    pub port: PortRange,
    pub address: Option<IpAddr>,
    pub interface: Option<String>,
    pub from: Vec<IpNet>,
    pub backends: Vec<Backend>,
    pub balance: Balance,
    pub snat: SourceNat,
    pub hairpin: Hairpin,
    pub local: bool,
    pub via: Option<String>,
    pub accept: bool,
}

impl Forward {
    /// The port a backend is reached on, as the FORWARD and POSTROUTING rules match it.
    pub fn backend_port(&self, b: &Backend) -> PortRange {
        b.port.unwrap_or(self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSnat {
    pub name: String,
    pub family: Family,
    pub source: IpNet,
    pub out_interface: Option<String>,
    pub to: SourceNat,
    pub accept: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FilterChain {
    Input,
    Forward,
    Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    Reject,
    Log,
    Return,
}

/// Protocols a filter rule may name; `Icmp` is written `-p icmp` or `-p ipv6-icmp` by family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterProto {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRule {
    pub name: String,
    pub chain: FilterChain,
    pub families: Vec<Family>,
    pub proto: Option<FilterProto>,
    /// Empty: any port. Several: any of them (`-m multiport`).
    pub sports: Vec<PortRange>,
    pub dports: Vec<PortRange>,
    /// Empty: any address. Several: any of them (one rule each).
    pub sources: Vec<AddrMatch>,
    pub destinations: Vec<AddrMatch>,
    pub in_interface: Option<String>,
    pub out_interface: Option<String>,
    /// conntrack states in the order `iptables-save` prints them.
    pub states: Vec<&'static str>,
    /// Empty: any type (or not ICMP). Several: any of them (one rule each).
    pub icmp_types: Vec<IcmpMatch>,
    pub limit: Option<Limit>,
    /// The connection's destination before DNAT (`--ctorigdstport`, `--ctorigdst`).
    pub original_ports: Vec<PortRange>,
    pub original_addresses: Vec<IpNet>,
    pub action: Action,
    pub log_prefix: Option<String>,
}

impl FilterRule {
    /// How many kernel rules the entry becomes (one per combination of listed values that
    /// one iptables rule cannot hold together).
    pub fn expansion(&self) -> usize {
        [
            self.sources.len(),
            self.destinations.len(),
            self.icmp_types.len(),
            self.original_ports.len(),
            self.original_addresses.len(),
        ]
        .iter()
        .map(|n| (*n).max(1))
        .product()
    }
}

/// An address a filter rule matches: a network (`-s`/`-d`) or an inclusive range
/// (`-m iprange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrMatch {
    Net(IpNet),
    Range(IpAddr, IpAddr),
}

impl AddrMatch {
    pub fn family(&self) -> Family {
        match self {
            AddrMatch::Net(n) => Family::of(&n.addr()),
            AddrMatch::Range(a, _) => Family::of(a),
        }
    }
}

/// One ICMP type as `iptables-save` prints it per family (`8`, `3/4`, `any`); `None` where
/// the type does not exist in that family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpMatch {
    pub v4: Option<String>,
    pub v6: Option<String>,
}

/// `-m limit`: the rate as `iptables-save` prints it (`1/sec`, `7/hour`) and the burst when
/// it is not the default 5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub rate: String,
    pub burst: Option<u32>,
}

/// A kernel parameter as path components below /proc/sys, so an interface name with a dot
/// (`eth0.100`) stays one component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysctlKey(pub Vec<String>);

impl SysctlKey {
    pub fn parse(text: &str) -> SysctlKey {
        let sep = if text.contains('/') { '/' } else { '.' };
        SysctlKey(
            text.split(sep)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }
    pub fn from_parts(parts: &[&str]) -> SysctlKey {
        SysctlKey(parts.iter().map(|p| p.to_string()).collect())
    }
    /// The path below /proc/sys.
    pub fn proc_path(&self) -> String {
        self.0.join("/")
    }
    /// The dotted name `sysctl(8)` shows; ambiguous for dotted interface names, so only for
    /// display and for keys without such components.
    pub fn dotted(&self) -> String {
        self.0.join(".")
    }
    /// The spelling sysctl.d needs: dotted, unless a component holds a dot, then slashes.
    pub fn sysctl_d(&self) -> String {
        if self.0.iter().any(|c| c.contains('.')) {
            self.proc_path()
        } else {
            self.dotted()
        }
    }
    /// The interface a per-interface key (`net.ipv4.conf.IF.x`, `net.ipv6.conf.IF.x`) names.
    pub fn interface(&self) -> Option<&str> {
        match self.0.as_slice() {
            [net, _, conf, iface, _] if net == "net" && conf == "conf" => {
                (iface != "all" && iface != "default").then_some(iface.as_str())
            }
            _ => None,
        }
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sysctl_d())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: SysctlKey,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub host: Option<String>,
    pub prefix: String,
    /// Whether pfstate-watch.service repairs the rules (`watch:`, default true).
    pub watch: bool,
    pub interfaces: BTreeMap<String, String>,
    pub sysctls: Vec<Sysctl>,
    pub forwards: Vec<Forward>,
    pub snats: Vec<OutboundSnat>,
    pub filters: Vec<FilterRule>,
    /// The verdict for packets no rule decided, per built-in chain (`default:`), in an owned
    /// chain joined at the end of the built-in chain; the chain's policy is left alone.
    pub defaults: Vec<(FilterChain, Verdict)>,
}

/// A default verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
}

impl Model {
    /// An empty state under a prefix: what `remove` converges to.
    pub fn empty(prefix: &str) -> Model {
        Model {
            host: None,
            prefix: prefix.to_string(),
            watch: false,
            interfaces: BTreeMap::new(),
            sysctls: Vec::new(),
            forwards: Vec::new(),
            snats: Vec::new(),
            filters: Vec::new(),
            defaults: Vec::new(),
        }
    }
}
