//! Warnings for filter entries that would cut the operator off: the SSH connection the command
//! runs in (`$SSH_CONNECTION`), new connections to port 22, or established traffic (the replies
//! of every connection the host keeps, its SSH session included).
//!
//! Pure: the filter entries are walked in their chain's order as the kernel would, against a
//! few typical flows. The first entry that surely matches decides; an entry that matches only
//! some of them (a source, an interface) makes the verdict uncertain, and an accept of that kind
//! before a drop means the operator manages SSH on purpose, so the drop is not reported as sure.

use std::net::IpAddr;

use crate::model::{Action, Family, FilterChain, FilterProto, FilterRule};

/// What a flow looks like to a filter entry. `None` in an address or port means "any": an entry
/// restricted there matches only some of the flows.
#[derive(Debug, Clone, Copy)]
struct Flow {
    chain: FilterChain,
    family: Option<Family>,
    source: Option<IpAddr>,
    sport: Option<u16>,
    destination: Option<IpAddr>,
    dport: Option<u16>,
    state: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Surely,
    Partly,
    Not,
}

/// How a chain of entries treats a flow: the entry that drops it, and whether an entry that
/// accepts part of such flows comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dropped {
    entry: String,
    surely: bool,
}

/// The SSH connection of `$SSH_CONNECTION` ("CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshConnection {
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub server_port: u16,
}

impl SshConnection {
    pub fn parse(text: &str) -> Option<SshConnection> {
        let f: Vec<&str> = text.split_whitespace().collect();
        let [client, cport, server, sport] = f.as_slice() else {
            return None;
        };
        Some(SshConnection {
            client: client.parse().ok()?,
            client_port: cport.parse().ok()?,
            server: server.parse().ok()?,
            server_port: sport.parse().ok()?,
        })
    }

    /// From the environment of this process, if it runs in an SSH session.
    pub fn from_env() -> Option<SshConnection> {
        SshConnection::parse(&std::env::var("SSH_CONNECTION").ok()?)
    }

    fn flows(&self) -> [Flow; 2] {
        let family = Some(family_of(self.client));
        let incoming = Flow {
            chain: FilterChain::Input,
            family,
            source: Some(self.client),
            sport: Some(self.client_port),
            destination: Some(self.server),
            dport: Some(self.server_port),
            state: "ESTABLISHED",
        };
        let outgoing = Flow {
            chain: FilterChain::Output,
            source: Some(self.server),
            sport: Some(self.server_port),
            destination: Some(self.client),
            dport: Some(self.client_port),
            ..incoming
        };
        [incoming, outgoing]
    }
}

fn family_of(addr: IpAddr) -> Family {
    match addr {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// One warning per filter entry that would drop the SSH session, new connections to port 22,
/// or established traffic, saying which of these and what to do instead.
pub fn warnings(filters: &[FilterRule], ssh: Option<&SshConnection>) -> Vec<String> {
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    let mut note = |d: Option<Dropped>, what: String| {
        let Some(d) = d else { return };
        let what = if d.surely {
            what
        } else {
            format!("perhaps {what}")
        };
        match found.iter_mut().find(|(e, _)| *e == d.entry) {
            Some((_, list)) if !list.contains(&what) => list.push(what),
            Some(_) => {}
            None => found.push((d.entry, vec![what])),
        }
    };
    if let Some(c) = ssh {
        let session = format!(
            "the SSH connection this command runs in ({} port {} -> {} port {})",
            c.client, c.client_port, c.server, c.server_port
        );
        for flow in c.flows() {
            note(verdict(filters, &flow), session.clone());
        }
    }
    note(
        verdict(filters, &new_ssh()).filter(|d| d.surely),
        "new connections to port 22 (SSH)".into(),
    );
    for chain in [FilterChain::Input, FilterChain::Output] {
        let flow = Flow {
            chain,
            ..established()
        };
        note(
            verdict(filters, &flow).filter(|d| d.surely),
            format!("established {} traffic", chain_word(chain)),
        );
    }
    found
        .into_iter()
        .map(|(entry, what)| {
            format!(
                "filter entry `{entry}` would drop {}: put an entry that accepts it first (e.g. \
                 `{{name: established, chain: input, state: [established, related], action: accept}}` \
                 and one for tcp dport 22), or apply with `--confirm 60s` so that the host puts \
                 the previous state back unless `pfstate confirm` arrives",
                join_and(&what)
            )
        })
        .collect()
}

fn new_ssh() -> Flow {
    Flow {
        chain: FilterChain::Input,
        family: None,
        source: None,
        sport: None,
        destination: None,
        dport: Some(22),
        state: "NEW",
    }
}

fn established() -> Flow {
    Flow {
        dport: None,
        state: "ESTABLISHED",
        ..new_ssh()
    }
}

fn chain_word(c: FilterChain) -> &'static str {
    match c {
        FilterChain::Input => "input",
        FilterChain::Forward => "forward",
        FilterChain::Output => "output",
    }
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Walk the entries of the flow's chain in order; `Some` when one drops or rejects it.
fn verdict(filters: &[FilterRule], flow: &Flow) -> Option<Dropped> {
    let mut partly_accepted = false;
    for f in filters.iter().filter(|f| f.chain == flow.chain) {
        let m = matches(f, flow);
        match (f.action, m) {
            (_, Match::Not) | (Action::Log, _) => {}
            (Action::Accept, Match::Partly) | (Action::Return, Match::Partly) => {
                partly_accepted = true
            }
            (Action::Accept, Match::Surely) | (Action::Return, Match::Surely) => return None,
            (Action::Drop | Action::Reject, m) => {
                if m == Match::Surely || !partly_accepted {
                    return Some(Dropped {
                        entry: f.name.clone(),
                        surely: m == Match::Surely && !partly_accepted,
                    });
                }
            }
        }
    }
    None
}

/// Does entry `f` match `flow`? Every criterion must hold; an unknown side ("any source",
/// an interface the flow does not know) against a restriction makes it a partial match.
fn matches(f: &FilterRule, flow: &Flow) -> Match {
    let checks = [
        flow.family
            .map_or(Match::Surely, |fam| yes_no(f.families.contains(&fam))),
        match f.proto {
            None | Some(FilterProto::Tcp) => Match::Surely,
            Some(_) => Match::Not,
        },
        port(f.sport.map(|r| (r.lo, r.hi)), flow.sport),
        port(f.dport.map(|r| (r.lo, r.hi)), flow.dport),
        net(f.source.as_ref(), flow.source),
        net(f.destination.as_ref(), flow.destination),
        if f.in_interface.is_some() || f.out_interface.is_some() {
            Match::Partly
        } else {
            Match::Surely
        },
        if f.states.is_empty() || f.states.contains(&flow.state) {
            Match::Surely
        } else {
            Match::Not
        },
    ];
    checks
        .into_iter()
        .fold(Match::Surely, |acc, m| match (acc, m) {
            (Match::Not, _) | (_, Match::Not) => Match::Not,
            (Match::Partly, _) | (_, Match::Partly) => Match::Partly,
            _ => Match::Surely,
        })
}

fn yes_no(b: bool) -> Match {
    if b { Match::Surely } else { Match::Not }
}

fn port(range: Option<(u16, u16)>, port: Option<u16>) -> Match {
    match (range, port) {
        (None, _) => Match::Surely,
        (Some(_), None) => Match::Partly,
        (Some((lo, hi)), Some(p)) => yes_no(lo <= p && p <= hi),
    }
}

fn net(net: Option<&ipnet::IpNet>, addr: Option<IpAddr>) -> Match {
    match (net, addr) {
        (None, _) => Match::Surely,
        (Some(_), None) => Match::Partly,
        (Some(n), Some(a)) => yes_no(n.contains(&a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(yaml_entries: &str) -> Vec<FilterRule> {
        let text = format!("version: 1\nfilter:\n{yaml_entries}");
        crate::spec::load_str("t.yaml", &text)
            .expect("valid")
            .filters
    }

    fn session() -> SshConnection {
        SshConnection::parse("10.0.0.5 51234 10.0.0.1 22").expect("parses")
    }

    #[test]
    fn parses_ssh_connection_and_refuses_garbage() {
        let c = session();
        assert_eq!(c.client_port, 51234);
        assert_eq!(c.server.to_string(), "10.0.0.1");
        assert!(SshConnection::parse("fe80::1 1 fe80::2 22").is_some());
        assert_eq!(SshConnection::parse("10.0.0.5 51234 10.0.0.1"), None);
        assert_eq!(SshConnection::parse("x 1 10.0.0.1 22"), None);
    }

    #[test]
    fn forgotten_dport_drops_session_new_ssh_and_established() {
        let f = filters("  - {name: oops, chain: input, proto: tcp, action: drop}\n");
        let w = warnings(&f, Some(&session()));
        assert_eq!(w.len(), 1, "{w:?}");
        for part in [
            "filter entry `oops`",
            "the SSH connection this command runs in (10.0.0.5 port 51234 -> 10.0.0.1 port 22)",
            "new connections to port 22",
            "established input traffic",
            "--confirm",
        ] {
            assert!(w[0].contains(part), "{part}: {}", w[0]);
        }
    }

    #[test]
    fn accepting_established_and_ssh_first_is_quiet() {
        let f = filters(
            "  - {name: est, chain: input, state: [established, related], action: accept}\n\
             \x20 - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}\n\
             \x20 - {name: rest, chain: input, action: drop}\n",
        );
        assert_eq!(warnings(&f, Some(&session())), Vec::<String>::new());
    }

    #[test]
    fn ssh_from_admins_only_is_deliberate_but_the_session_outside_them_is_not() {
        let f = filters(
            "  - {name: est, chain: input, state: [established], action: accept}\n\
             \x20 - {name: admins, chain: input, proto: tcp, dport: 22, source: 192.168.0.0/16, state: [new], action: accept}\n\
             \x20 - {name: no-ssh, chain: input, proto: tcp, dport: 22, action: drop}\n",
        );
        // New connections from elsewhere are refused on purpose; the session is established.
        assert_eq!(warnings(&f, Some(&session())), Vec::<String>::new());
        let without_est = filters(
            "  - {name: admins, chain: input, proto: tcp, dport: 22, source: 192.168.0.0/16, action: accept}\n\
             \x20 - {name: no-ssh, chain: input, proto: tcp, dport: 22, action: drop}\n",
        );
        let w = warnings(&without_est, Some(&session()));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("the SSH connection this command runs in"),
            "{w:?}"
        );
        assert!(!w[0].contains("new connections to port 22"), "{w:?}");
    }

    #[test]
    fn output_drop_of_the_replies_is_seen_and_other_ports_are_not() {
        let f = filters("  - {name: out, chain: output, proto: tcp, sport: 22, action: reject}\n");
        let w = warnings(&f, Some(&session()));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`out`") && w[0].contains("runs in"), "{w:?}");
        let web = filters("  - {name: web, chain: input, proto: tcp, dport: 80, action: drop}\n");
        assert_eq!(warnings(&web, Some(&session())), Vec::<String>::new());
    }

    #[test]
    fn interface_restriction_makes_it_uncertain() {
        let f = filters(
            "  - {name: wan-drop, chain: input, in_interface: eth0, proto: tcp, action: drop}\n",
        );
        let w = warnings(&f, Some(&session()));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("perhaps the SSH connection"), "{w:?}");
        assert!(!w[0].contains("port 22 (SSH)"), "{w:?}");
        // Without a session only the sure cases are reported.
        assert_eq!(warnings(&f, None), Vec::<String>::new());
    }

    #[test]
    fn other_family_or_protocol_does_not_match() {
        let f = filters(
            "  - {name: v6, chain: input, family: ipv6, proto: tcp, action: drop}\n\
             \x20 - {name: udp, chain: input, proto: udp, action: drop}\n",
        );
        let w = warnings(&f, Some(&session()));
        assert!(w.iter().all(|w| !w.contains("runs in")), "{w:?}");
    }
}
