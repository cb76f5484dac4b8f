//! Probing the lab: every forward and snat entry from each side, with a verdict and a likely
//! reason for each failure, as a table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::model::{Family, Forward, Hairpin, Model, Proto, SourceNat};

use super::addressing::*;
use super::blueprint::*;
use super::build::*;
use super::sides::Segment;
use super::{CLIENT_PORT, FIRST_PROBE_TIMEOUT, GIVE_UP_AFTER, PROBE_TIMEOUT};
use crate::lab::{self as netlab, ProbeResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Ok,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Wan,
    Lan,
    Gateway,
}

impl Side {
    pub(super) fn label(self) -> &'static str {
        match self {
            Side::Wan => "WAN client",
            Side::Lan => "LAN client",
            Side::Gateway => "gateway",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) entry: String,
    pub(super) proto: Proto,
    pub(super) from: Side,
    pub(super) target: SocketAddr,
    pub(super) verdict: Verdict,
    pub(super) result: String,
}

// Over 60 lines on purpose: this is the table of checks itself (which side probes which
// address for each forward, then each snat entry), read top to bottom in the order of the
// report; its cases share the rows being built.
pub(super) fn run_probes(p: &LabPlan, m: &Model, lab: &Lab) -> Vec<Row> {
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

// Over 60 lines on purpose: one probe with its retries and the reading of its result into a
// verdict; the steps share the lab handles and the timeout budget of the row.
pub(super) fn probe_forward(
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
pub(super) fn likely_reason(
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

pub(super) fn table(rows: &[Row]) -> String {
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
