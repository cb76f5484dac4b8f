//! The rules of one forward: DNAT dispatch (PREROUTING, and OUTPUT for `local`), backend
//! selection (random or round-robin, weighted), source NAT towards the backends (snat,
//! hairpin, local), the FORWARD accepts and the route_localnet guard. See `render.rs` for the
//! chain layout these rules go into.

use std::net::IpAddr;

use ipnet::IpNet;

use super::builder::{Builder, Names, comment, host};
use crate::model::*;
use crate::names;
use crate::ruleset::rule::{Rule, addr_text, probability_text};

/// `--to-destination` for a backend: the port part follows what the forward maps.
fn dnat_target(f: &Forward, b: &Backend) -> String {
    let text = addr_text(b.addr);
    let addr = match b.addr {
        IpAddr::V4(_) => text.clone(),
        IpAddr::V6(_) => format!("[{text}]"),
    };
    let port = match b.port {
        None if f.port.is_single() => Some(f.port.nat_text()),
        None => None, // a range maps each port to itself
        Some(bp) if bp == f.port && !bp.is_single() => None,
        Some(bp) if bp.is_single() => Some(bp.nat_text()),
        Some(bp) => Some(format!("{}/{}", bp.nat_text(), f.port.lo)),
    };
    match port {
        Some(p) => format!("DNAT --to-destination {addr}:{p}"),
        None => format!("DNAT --to-destination {text}"),
    }
}

/// The rules that choose a backend for a connection: one DNAT, or statistic rules ending in a
/// catch-all. Probabilities 1/n, 1/(n-1), ... (weighted likewise) make each backend's share
/// its weight; round-robin uses `nth` in the nat table, which sees one packet per connection.
fn selection(f: &Forward, chain: &str, proto: Proto) -> Vec<Rule> {
    let base = || {
        Rule::new(chain)
            .proto(proto.name())
            .comment(&comment(&f.name))
    };
    let mut out = Vec::new();
    match f.balance {
        Balance::Random => {
            let total: u32 = f.backends.iter().map(|b| b.weight).sum();
            let mut remaining = total;
            for (i, b) in f.backends.iter().enumerate() {
                let mut r = base();
                if i + 1 < f.backends.len() {
                    let p = f64::from(b.weight) / f64::from(remaining);
                    r = r.m(
                        "statistic",
                        &format!("--mode random --probability {}", probability_text(p)),
                    );
                }
                remaining -= b.weight;
                out.push(r.target(&dnat_target(f, b)));
            }
        }
        Balance::RoundRobin => {
            let slots: Vec<&Backend> = f
                .backends
                .iter()
                .flat_map(|b| std::iter::repeat_n(b, b.weight as usize))
                .collect();
            let n = slots.len();
            for (i, b) in slots.iter().enumerate() {
                let mut r = base();
                if i + 1 < n {
                    r = r.m(
                        "statistic",
                        &format!("--mode nth --every {} --packet 0", n - i),
                    );
                }
                out.push(r.target(&dnat_target(f, b)));
            }
        }
    }
    out
}

/// One forward being rendered: what every part of its rules shares.
struct Fwd<'a> {
    f: &'a Forward,
    n: &'a Names,
    /// The entry comment.
    c: String,
    /// The balancing chain, when there are several backends.
    lb_chain: Option<String>,
    /// The interface towards the backends: `via` (the file states it; validate requires it
    /// where a rule needs it).
    egress: Option<String>,
}

pub(crate) fn forward_rules(
    model: &Model,
    f: &Forward,
    n: &Names,
    nat: &mut Builder,
    filter: &mut Builder,
) {
    let x = Fwd {
        f,
        n,
        c: comment(&f.name),
        lb_chain: (f.backends.len() > 1).then(|| names::lb_chain(&model.prefix, &f.name)),
        // The interface towards the backends comes from the file alone (validate requires it
        // where a rule needs it), so the same file renders the same rules on any machine.
        egress: f.via.clone(),
    };
    for proto in &f.protos {
        x.dispatch_rules(*proto, nat);
        for b in &f.backends {
            x.backend_snat(*proto, b, nat);
            if f.accept {
                filter.push(&n.forward, x.accept(*proto, b));
            }
        }
    }
    if f.local && f.family == Family::V4 {
        x.local_guard(filter);
    }
}

impl Fwd<'_> {
    /// The DNAT dispatch of one protocol: PREROUTING (again on the LAN interface for hairpin),
    /// OUTPUT for `local`, and the balancing chain.
    fn dispatch_rules(&self, proto: Proto, nat: &mut Builder) {
        let (f, n) = (self.f, self.n);
        let sources: Vec<Option<IpNet>> = if f.from.is_empty() {
            vec![None]
        } else {
            f.from.iter().copied().map(Some).collect()
        };
        let wan = f.interface.as_deref();
        self.dispatch(&n.prerouting, proto, &sources, wan, f.address, nat);
        // A forward bound to the WAN interface still has to catch LAN clients for hairpin
        // (the LAN interface: `via`).
        if f.hairpin != Hairpin::Off
            && let (Some(wan), Some(lan)) = (wan, self.egress.as_deref())
            && wan != lan
        {
            self.dispatch(&n.prerouting, proto, &sources, Some(lan), f.address, nat);
        }
        if f.local {
            self.dispatch(&n.nat_output, proto, &[None], None, f.address, nat);
            // Without a listen address, `--dst-type LOCAL` already covers 127.0.0.1; with one,
            // the loopback address is added so local clients can use either.
            if f.address.is_some() && f.family == Family::V4 {
                let loopback = IpAddr::from([127, 0, 0, 1]);
                self.dispatch(&n.nat_output, proto, &[None], None, Some(loopback), nat);
            }
        }
        if let Some(lb) = &self.lb_chain {
            for r in selection(f, lb, proto) {
                nat.push(lb, r);
            }
        }
    }

    /// The dispatch rule(s) for one hook: straight to the backend, or into the LB chain.
    fn dispatch(
        &self,
        chain: &str,
        proto: Proto,
        sources: &[Option<IpNet>],
        iface: Option<&str>,
        to: Option<IpAddr>,
        nat: &mut Builder,
    ) {
        let f = self.f;
        let pn = proto.name();
        let dport = format!("--dport {}", f.port.match_text());
        for src in sources {
            let mut r = Rule::new(chain)
                .proto(pn)
                .maybe_in_interface(iface)
                .keyed(proto, f.port);
            if let Some(s) = src {
                r = r.source(*s);
            }
            // The port first: `addrtype` does a route lookup, so only packets for this
            // forward's port should pay for it (matches are evaluated in order).
            let r = r.m(pn, &dport);
            // Where DNAT applies: the listen address, or any of the gateway's own addresses.
            let r = match to {
                Some(a) => r.destination(host(a)),
                None => r.m("addrtype", "--dst-type LOCAL"),
            };
            let r = r.comment(&self.c);
            match &self.lb_chain {
                Some(lb) => nat.push(chain, r.target(lb)),
                None => nat.push(chain, r.target(&dnat_target(f, &f.backends[0]))),
            }
        }
    }

    /// Source NAT towards one backend: the forward's `snat` (or hairpin masquerade), and the
    /// gateway's own connections for `local`.
    fn backend_snat(&self, proto: Proto, b: &Backend, nat: &mut Builder) {
        let (f, n) = (self.f, self.n);
        let pn = proto.name();
        let bport = format!("--dport {}", f.backend_port(b).match_text());
        let to_backend = || {
            Rule::new(&n.postrouting)
                .destination(host(b.addr))
                .maybe_out_interface(f.via.as_deref())
                .proto(pn)
        };
        // Only this forward's translated connections: another forward to the same backend
        // keeps its own source NAT (or none). By listen port, and by listen address when
        // there is one; local clients also come in through 127.0.0.1, so their rule below
        // matches the port only.
        let any_address = format!("--ctstate DNAT --ctorigdstport {}", f.port.match_text());
        let this_address = match f.address {
            Some(a) => format!(
                "--ctstate DNAT --ctorigdst {} --ctorigdstport {}",
                addr_text(a),
                f.port.match_text()
            ),
            None => any_address.clone(),
        };
        let dnatted = |r: Rule, orig: &str| r.m(pn, &bport).m("conntrack", orig).comment(&self.c);
        let snat_target = snat_target(&f.snat);
        match &snat_target {
            Some(t) => nat.push(
                &n.postrouting,
                dnatted(to_backend(), &this_address).target(t),
            ),
            None => {
                for net in hairpin_networks(f) {
                    let r = dnatted(to_backend().source(net), &this_address).target("MASQUERADE");
                    nat.push(&n.postrouting, r);
                }
            }
        }
        // The gateway's own connections; with source NAT and a listen address, only those
        // through 127.0.0.1 are not already covered by the rule above.
        let loopback_clients = f.address.is_some() && f.family == Family::V4;
        if f.local && (snat_target.is_none() || loopback_clients) {
            let r = to_backend().m("addrtype", "--src-type LOCAL");
            let target = snat_target.as_deref().unwrap_or("MASQUERADE");
            nat.push(&n.postrouting, dnatted(r, &any_address).target(target));
        }
    }

    /// The FORWARD accept of one backend: ctstate DNAT with the reply source matches both
    /// directions of exactly the connections this forward translated, so replies pass a
    /// FORWARD policy of DROP.
    fn accept(&self, proto: Proto, b: &Backend) -> Rule {
        let f = self.f;
        let mut ct = String::from("--ctstate DNAT");
        if let Some(a) = f.address {
            ct.push_str(&format!(" --ctorigdst {}", addr_text(a)));
        }
        ct.push_str(&format!(
            " --ctreplsrc {} --ctorigdstport {} --ctreplsrcport {}",
            addr_text(b.addr),
            f.port.match_text(),
            f.backend_port(b).match_text()
        ));
        Rule::new(&self.n.forward)
            .proto(proto.name())
            .keyed(proto, f.port)
            .m("conntrack", &ct)
            .comment(&self.c)
            .target("ACCEPT")
    }

    /// Local access through 127.0.0.1 needs route_localnet on the interface towards the
    /// backends (`via`, required for IPv4 `local`); this guard drops what route_localnet would
    /// otherwise let in from outside (CVE-2020-8558).
    fn local_guard(&self, filter: &mut Builder) {
        if let Some(dev) = &self.egress {
            let lo: IpNet = "127.0.0.0/8".parse().expect("literal");
            let guard = Rule::new(&self.n.input)
                .not_source(lo)
                .destination(lo)
                .in_interface(dev)
                .m("conntrack", "! --ctstate RELATED,ESTABLISHED,DNAT")
                .comment(&self.c)
                .target("DROP");
            filter.push(&self.n.input, guard);
        }
    }
}

/// The target of a forward's source NAT, if it has one.
fn snat_target(snat: &SourceNat) -> Option<String> {
    match snat {
        SourceNat::Masquerade => Some("MASQUERADE".to_string()),
        SourceNat::To(a) => Some(format!("SNAT --to-source {}", addr_text(*a))),
        SourceNat::None => None,
    }
}

/// The client networks hairpin masquerades, as the file states them.
fn hairpin_networks(f: &Forward) -> Vec<IpNet> {
    match &f.hairpin {
        Hairpin::Off => Vec::new(),
        Hairpin::Networks(nets) => nets.clone(),
    }
}
