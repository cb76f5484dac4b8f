//! Entries that can never act: a filter entry earlier in the same chain that takes every
//! packet a later entry (or a forward's accept) would match. iptables accepts such a file
//! without a word; the warning names both entries. Conservative: an entry is reported only
//! when the earlier one matches ALL its packets, never for a partial overlap (a deliberate
//! restriction such as "drop this port except from these clients" is not a mistake).

use ipnet::IpNet;

use crate::model::*;

/// Warnings for every shadowed filter entry and forward accept, in file order.
pub fn warnings(model: &Model) -> Vec<String> {
    let mut out = Vec::new();
    for (i, later) in model.filters.iter().enumerate() {
        if let Some(e) = model.filters[..i]
            .iter()
            .find(|e| terminal(e) && covers(e, later))
        {
            out.push(format!(
                "filter entry `{}` matches every packet of filter entry `{}` below it in the \
                 {} chain and {}, so `{}` never acts; move it above `{}` or narrow `{}`",
                e.name,
                later.name,
                chain_name(e.chain),
                verdict(e),
                later.name,
                e.name,
                e.name
            ));
        }
    }
    for f in model.forwards.iter().filter(|f| f.accept) {
        let shadow = model.filters.iter().find(|e| {
            e.chain == FilterChain::Forward
                && matches!(e.action, Action::Drop | Action::Reject)
                && f.protos.iter().any(|p| covers_forward(e, f, *p))
        });
        if let Some(e) = shadow {
            out.push(format!(
                "filter entry `{}` {} every new connection of forward `{}` before the forward's \
                 accept in the forward chain, so `{}` cannot work; narrow `{}` (e.g. with \
                 `source` or `original_port`), or use `default: {{forward: drop}}`, which comes \
                 after the forwards' accepts",
                e.name,
                verdict(e),
                f.name,
                f.name,
                e.name
            ));
        }
    }
    out
}

fn chain_name(c: FilterChain) -> &'static str {
    match c {
        FilterChain::Input => "input",
        FilterChain::Forward => "forward",
        FilterChain::Output => "output",
    }
}

fn verdict(e: &FilterRule) -> &'static str {
    match e.action {
        Action::Accept => "accepts them",
        Action::Drop => "drops",
        Action::Reject => "rejects",
        Action::Return => "returns them",
        Action::Log => "logs them",
    }
}

/// A verdict that ends the packet's walk through pfstate's chain (`log` goes on).
fn terminal(e: &FilterRule) -> bool {
    e.action != Action::Log && e.limit.is_none()
}

/// Every packet `t` matches, `e` matches too.
fn covers(e: &FilterRule, t: &FilterRule) -> bool {
    e.chain == t.chain
        && t.families.iter().all(|f| e.families.contains(f))
        && (e.proto.is_none() || e.proto == t.proto)
        && ports_cover(&e.sports, &t.sports)
        && ports_cover(&e.dports, &t.dports)
        && ports_cover(&e.original_ports, &t.original_ports)
        && addrs_cover(&e.sources, &t.sources)
        && addrs_cover(&e.destinations, &t.destinations)
        && nets_cover(&e.original_addresses, &t.original_addresses)
        && (e.in_interface.is_none() || e.in_interface == t.in_interface)
        && (e.out_interface.is_none() || e.out_interface == t.out_interface)
        && subset(&t.states, &e.states)
        && subset(&t.icmp_types, &e.icmp_types)
}

/// `e` (empty: anything) holds every value of `t` (empty: anything).
fn subset<T: PartialEq>(t: &[T], e: &[T]) -> bool {
    e.is_empty() || (!t.is_empty() && t.iter().all(|v| e.contains(v)))
}

fn ports_cover(e: &[PortRange], t: &[PortRange]) -> bool {
    e.is_empty() || (!t.is_empty() && t.iter().all(|p| within(e, *p)))
}

fn within(e: &[PortRange], p: PortRange) -> bool {
    e.iter().any(|r| r.lo <= p.lo && p.hi <= r.hi)
}

fn addrs_cover(e: &[AddrMatch], t: &[AddrMatch]) -> bool {
    e.is_empty() || (!t.is_empty() && t.iter().all(|a| e.iter().any(|b| addr_within(a, b))))
}

fn addr_within(a: &AddrMatch, b: &AddrMatch) -> bool {
    let (lo, hi) = bounds(a);
    let (blo, bhi) = bounds(b);
    a.family() == b.family() && blo <= lo && hi <= bhi
}

fn bounds(a: &AddrMatch) -> (std::net::IpAddr, std::net::IpAddr) {
    match a {
        AddrMatch::Net(n) => (n.network(), n.broadcast()),
        AddrMatch::Range(lo, hi) => (*lo, *hi),
    }
}

fn nets_cover(e: &[IpNet], t: &[IpNet]) -> bool {
    e.is_empty() || (!t.is_empty() && t.iter().all(|n| e.iter().any(|m| m.contains(n))))
}

/// Whether `e` takes the first packet of every `proto` connection the forward translates (in
/// FORWARD it has the backend as destination and the listen port as original port).
fn covers_forward(e: &FilterRule, f: &Forward, proto: Proto) -> bool {
    let listen = [f.port];
    let backend_ports: Vec<PortRange> = f.backends.iter().map(|b| f.backend_port(b)).collect();
    let backends: Vec<AddrMatch> = f
        .backends
        .iter()
        .map(|b| AddrMatch::Net(IpNet::from(b.addr)))
        .collect();
    let clients: Vec<AddrMatch> = f.from.iter().map(|n| AddrMatch::Net(*n)).collect();
    let originals: Vec<IpNet> = f.address.map(IpNet::from).into_iter().collect();
    let proto_ok = matches!(
        (e.proto, proto),
        (None, _) | (Some(FilterProto::Tcp), Proto::Tcp) | (Some(FilterProto::Udp), Proto::Udp)
    );
    let first_packet = e.states.is_empty() || e.states.iter().any(|s| *s == "NEW" || *s == "DNAT");
    proto_ok
        && first_packet
        && e.families.contains(&f.family)
        && e.sports.is_empty()
        && e.icmp_types.is_empty()
        && e.limit.is_none()
        && e.out_interface.is_none()
        && (e.in_interface.is_none() || e.in_interface == f.interface)
        && ports_cover(&e.dports, &backend_ports)
        && ports_cover(&e.original_ports, &listen)
        && addrs_cover(&e.sources, &clients)
        && addrs_cover(&e.destinations, &backends)
        && nets_cover(&e.original_addresses, &originals)
}

#[cfg(test)]
#[path = "shadow_tests.rs"]
mod tests;
