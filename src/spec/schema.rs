//! The keys of a state file, what each takes and an example of each: YAML tree -> `yaml.rs`.

use crate::error::Location;
use crate::spec::read::{Choice, Entry, FromNode, Reader};
use crate::spec::span::Spanned;
use crate::spec::tree::{Kind, Node};
use crate::spec::yaml::*;

const TOP_KEYS: &[&str] = &[
    "version",
    "host",
    "prefix",
    "watch",
    "interfaces",
    "sysctl",
    "forwards",
    "snat",
    "filter",
    "default",
];
const FORWARD_KEYS: &[&str] = &[
    "name", "proto", "listen", "to", "balance", "snat", "hairpin", "local", "via", "accept",
];
const LISTEN_KEYS: &[&str] = &["port", "address", "interface", "from"];
const SNAT_KEYS: &[&str] = &["name", "source", "out_interface", "to", "accept"];
const FILTER_KEYS: &[&str] = &[
    "name",
    "chain",
    "proto",
    "dport",
    "sport",
    "source",
    "destination",
    "in_interface",
    "out_interface",
    "state",
    "icmp_type",
    "limit",
    "original_port",
    "original_address",
    "action",
    "log_prefix",
    "family",
];

pub fn read_spec(r: &mut Reader, root: &Node) -> Option<Spec> {
    if root.kind == Kind::Null {
        r.err(
            Location::start().in_file(crate::spec::span::current_file()),
            "the file is empty: a desired state starts with `version: 1`, followed by its \
             `forwards:`, `snat:` and `filter:` lists",
        );
        return None;
    }
    let e = r.entry(
        root,
        "the file".to_string(),
        TOP_KEYS,
        "`version: 1` on the first line, then `forwards:`, `snat:` or `filter:`",
    )?;
    let version = r.req(&e, "version", "1");
    let spec = Spec {
        version: Spanned {
            value: 0,
            location: e.location,
        },
        host: r.opt(&e, "host", "edge-1"),
        prefix: r.opt(&e, "prefix", "PFSTATE"),
        watch: r.opt(&e, "watch", "false"),
        interfaces: r.or_default(&e, "interfaces", "{wan: eth0, lan: eth1}"),
        sysctl: r.or_default(&e, "sysctl", "{net.ipv4.ip_forward: 1}"),
        forwards: list(r, &e, "forwards", "forward", read_forward),
        snat: list(r, &e, "snat", "snat entry", read_snat),
        filter: list(r, &e, "filter", "filter entry", read_filter),
        default: r.or_default(&e, "default", "{input: drop, forward: drop}"),
    };
    Some(Spec {
        version: version?,
        ..spec
    })
}

type ReadItem<T> = fn(&mut Reader, &Node, String) -> Option<T>;

/// A list of entries (`forwards:`); each entry is read even when another one is wrong.
fn list<T>(r: &mut Reader, e: &Entry, key: &str, what: &str, read: ReadItem<T>) -> Vec<Spanned<T>> {
    let Some(node) = e.get(key) else {
        return Vec::new();
    };
    match &node.kind {
        Kind::Null => Vec::new(),
        Kind::Seq(items) => items
            .iter()
            .filter_map(|item| {
                let label = item_label(item, what);
                let value = read(r, item, label)?;
                Some(Spanned {
                    value,
                    location: item.location,
                })
            })
            .collect(),
        Kind::Map(_) if node.get("name").is_some() => {
            // One entry written without its dash: `filter: {name: x, ...}`.
            let name = node
                .get("name")
                .and_then(|n| n.kind.scalar_text())
                .unwrap_or_default();
            r.err(
                node.location,
                format!(
                    "`{key}` is a list of entries, and this mapping is one of them: make it an \
                     item with `- `, e.g. `{key}: [{{name: {name}, ...}}]` or `- name: {name}` \
                     on the line below `{key}:`"
                ),
            );
            Vec::new()
        }
        Kind::Map(pairs) => {
            let name = pairs
                .first()
                .and_then(|(k, _)| k.kind.scalar_text())
                .unwrap_or_else(|| "web".to_string());
            r.err(
                node.location,
                format!(
                    "`{key}` is a list, not a mapping: start each {what} with `- name: {name}` \
                     (not `{name}:`) and indent its other keys under `name`"
                ),
            );
            Vec::new()
        }
        _ => {
            r.wrong(
                key,
                node,
                &format!("a list of {what}s"),
                "[{name: ..., ...}]",
            );
            Vec::new()
        }
    }
}

/// "forward `web`" when the entry has a readable name, else "this forward".
fn item_label(item: &Node, what: &str) -> String {
    match item.get("name").map(|n| &n.kind) {
        Some(Kind::Str(name)) if name.len() <= 64 => format!("{what} `{name}`"),
        _ => format!("this {what}"),
    }
}

fn read_forward(r: &mut Reader, n: &Node, what: String) -> Option<ForwardSpec> {
    let example = "`- name: web` with `listen: {port: 80}` and `to: 192.168.1.2`";
    let e = r.entry(n, what, FORWARD_KEYS, example)?;
    // Every key is read before any `?`, so one missing key hides no other message.
    let name = r.req(&e, "name", "web");
    let proto = r.opt(&e, "proto", "tcp");
    let listen = r.req(&e, "listen", "{port: 80}");
    let to = r.req(&e, "to", "192.168.1.2:8080");
    let balance = r.opt(&e, "balance", "round-robin");
    let snat = r.opt(&e, "snat", "masquerade");
    let hairpin = r.opt(&e, "hairpin", "true");
    let local = r.opt(&e, "local", "true");
    let via = r.opt(&e, "via", "lan");
    let accept = r.opt(&e, "accept", "true");
    Some(ForwardSpec {
        name: name?,
        proto,
        listen: listen?,
        to: to?,
        balance,
        snat,
        hairpin,
        local,
        via,
        accept,
    })
}

impl FromNode for ListenSpec {
    fn read(r: &mut Reader, key: &str, node: &Node, _example: &str) -> Option<Self> {
        if let Some(port) = node.kind.scalar_text() {
            // `listen: 80`: the port alone is the most common slip.
            let port = match &node.kind {
                Kind::Str(s) => format!("\"{s}\""),
                _ => port,
            };
            r.err(
                node.location,
                format!(
                    "`{key}` is a mapping with at least a port; write `{key}: {{port: {port}}}`"
                ),
            );
            return None;
        }
        let e = r.entry(
            node,
            format!("`{key}`"),
            LISTEN_KEYS,
            "`listen: {port: 80}`",
        )?;
        let before = r.diags.len();
        let l = (
            r.req(&e, "port", "80"),
            r.opt(&e, "address", "203.0.113.10"),
            r.opt(&e, "interface", "wan"),
            r.or_default(&e, "from", "[203.0.113.0/24]"),
        );
        if r.diags.len() != before {
            return None;
        }
        Some(ListenSpec {
            port: l.0?,
            address: l.1,
            interface: l.2,
            from: l.3,
        })
    }
}

fn read_snat(r: &mut Reader, n: &Node, what: String) -> Option<SnatSpec> {
    let e = r.entry(
        n,
        what,
        SNAT_KEYS,
        "`- name: lan-out` with `source: 192.168.1.0/24`",
    )?;
    let before = r.diags.len();
    let s = (
        r.req(&e, "name", "lan-out"),
        r.req(&e, "source", "192.168.1.0/24"),
        r.opt(&e, "out_interface", "wan"),
        r.opt(&e, "to", "masquerade"),
        r.opt(&e, "accept", "true"),
    );
    if r.diags.len() != before {
        return None;
    }
    Some(SnatSpec {
        name: s.0?,
        source: s.1?,
        out_interface: s.2,
        to: s.3,
        accept: s.4,
    })
}

fn read_filter(r: &mut Reader, n: &Node, what: String) -> Option<FilterSpec> {
    let example = "`- name: ssh` with `chain: input` and `action: accept`";
    let e = r.entry(n, what, FILTER_KEYS, example)?;
    let name = r.req(&e, "name", "ssh");
    let chain = r.req(&e, "chain", "input");
    let proto = r.opt(&e, "proto", "tcp");
    let dport = r.or_default(&e, "dport", "[80, 443]");
    let sport = r.or_default(&e, "sport", "[1024]");
    let source = r.or_default(&e, "source", "[10.0.0.0/8]");
    let destination = r.or_default(&e, "destination", "[192.168.1.2]");
    let in_interface = r.opt(&e, "in_interface", "wan");
    let out_interface = r.opt(&e, "out_interface", "lan");
    let state = r.or_default(&e, "state", "[new]");
    let icmp_type = r.or_default(&e, "icmp_type", "[echo-request]");
    let limit = r.opt(&e, "limit", "10/minute");
    let original_port = r.or_default(&e, "original_port", "[8080]");
    let original_address = r.or_default(&e, "original_address", "[203.0.113.10]");
    let action = r.req(&e, "action", "accept");
    let log_prefix = r.opt(&e, "log_prefix", "\"dropped: \"");
    let family = r.opt(&e, "family", "ipv4");
    Some(FilterSpec {
        name: name?,
        chain: chain?,
        proto,
        dport,
        sport,
        source,
        destination,
        in_interface,
        out_interface,
        state,
        icmp_type,
        limit,
        original_port,
        original_address,
        action: action?,
        log_prefix,
        family,
    })
}

impl FromNode for LimitSpec {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        if let Kind::Map(_) = node.kind {
            let what = format!("`{key}`");
            let example = "`limit: {rate: 10/minute, burst: 20}`";
            let e = r.entry(node, what, &["rate", "burst"], example)?;
            let rate = r.req::<String>(&e, "rate", "10/minute");
            let burst = r.opt::<i64>(&e, "burst", "20");
            return Some(LimitSpec { rate: rate?, burst });
        }
        let rate = r.value::<String>(key, node, example)?;
        Some(LimitSpec { rate, burst: None })
    }
}

impl FromNode for DefaultSpec {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        let e = r.entry(
            node,
            format!("`{key}`"),
            &["input", "forward"],
            &format!("`{key}: {example}`"),
        )?;
        Some(DefaultSpec {
            input: r.opt(&e, "input", "drop"),
            forward: r.opt(&e, "forward", "drop"),
        })
    }
}

impl Choice for VerdictSpec {
    const WHAT: &'static str = "a default verdict";
    const NAMES: &'static [(&'static str, Self)] = &[
        ("accept", Self::Accept),
        ("drop", Self::Drop),
        ("reject", Self::Reject),
    ];
}

impl Choice for ProtoSpec {
    const WHAT: &'static str = "a protocol";
    const NAMES: &'static [(&'static str, Self)] =
        &[("tcp", Self::Tcp), ("udp", Self::Udp), ("both", Self::Both)];
}

impl Choice for BalanceSpec {
    const WHAT: &'static str = "a balancing mode";
    const NAMES: &'static [(&'static str, Self)] =
        &[("random", Self::Random), ("round-robin", Self::RoundRobin)];
}

impl Choice for FilterProtoSpec {
    const WHAT: &'static str = "a protocol";
    const NAMES: &'static [(&'static str, Self)] = &[
        ("tcp", Self::Tcp),
        ("udp", Self::Udp),
        ("icmp", Self::Icmp),
        ("all", Self::All),
    ];
    const ALIASES: &'static [(&'static str, Self)] = &[
        ("icmpv6", Self::Icmp),
        ("ipv6-icmp", Self::Icmp),
        ("any", Self::All),
    ];
}

impl Choice for FilterChainSpec {
    const WHAT: &'static str = "a chain";
    const NAMES: &'static [(&'static str, Self)] = &[
        ("input", Self::Input),
        ("forward", Self::Forward),
        ("output", Self::Output),
    ];
}

impl Choice for StateSpec {
    const WHAT: &'static str = "a connection state";
    const NAMES: &'static [(&'static str, Self)] = &[
        ("invalid", Self::Invalid),
        ("new", Self::New),
        ("related", Self::Related),
        ("established", Self::Established),
        ("untracked", Self::Untracked),
        ("snat", Self::Snat),
        ("dnat", Self::Dnat),
    ];
}

impl Choice for ActionSpec {
    const WHAT: &'static str = "an action";
    const NAMES: &'static [(&'static str, Self)] = &[
        ("accept", Self::Accept),
        ("drop", Self::Drop),
        ("reject", Self::Reject),
        ("log", Self::Log),
        ("return", Self::Return),
    ];
}

impl Choice for FamilySpec {
    const WHAT: &'static str = "an address family";
    const NAMES: &'static [(&'static str, Self)] = &[
        ("ipv4", Self::Ipv4),
        ("ipv6", Self::Ipv6),
        ("both", Self::Both),
    ];
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
