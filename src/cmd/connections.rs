//! Who is connected through each forward: conntrack's lines read into connections (client,
//! backend, protocol, state) and matched to the forward that translated them. Pure: the
//! lines come from `host::conntrack::list`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::model::{Forward, Model};

/// One translated connection, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    pub proto: String,
    /// The client as the gateway saw it (original source).
    pub client: SocketAddr,
    /// What the client asked for (original destination).
    pub listen: SocketAddr,
    /// The backend that answers (reply source).
    pub backend: SocketAddr,
    /// TCP state (`ESTABLISHED`, `TIME_WAIT`, ...), or for UDP `UNREPLIED`/`REPLIED`/`ASSURED`.
    pub state: String,
}

/// A `conntrack -L` line: `tcp 6 431999 ESTABLISHED src=.. dst=.. sport=.. dport=.. src=..
/// dst=.. sport=.. dport=.. [ASSURED] mark=0 use=1`; `None` for lines of another shape.
pub fn parse_line(line: &str) -> Option<Connection> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let proto = (*fields.first()?).to_string();
    let get = |key: &str, nth: usize| fields.iter().filter_map(|f| f.strip_prefix(key)).nth(nth);
    let addr = |n: usize, ip: &str, port: &str| -> Option<SocketAddr> {
        let ip: IpAddr = get(ip, n)?.parse().ok()?;
        Some(SocketAddr::new(ip, get(port, n)?.parse().ok()?))
    };
    let flag = |f: &str| fields.contains(&f);
    // The TCP state is the first all-capital word before the tuples; UDP has none.
    let tcp_state = fields
        .iter()
        .take_while(|f| !f.contains('='))
        .find(|f| f.len() > 1 && f.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
    let state = match tcp_state {
        Some(s) => s.to_string(),
        None if flag("[UNREPLIED]") => "UNREPLIED".into(),
        None if flag("[ASSURED]") => "ASSURED".into(),
        None => "REPLIED".into(),
    };
    Some(Connection {
        proto,
        client: addr(0, "src=", "sport=")?,
        listen: addr(0, "dst=", "dport=")?,
        backend: addr(1, "src=", "sport=")?,
        state,
    })
}

/// The connections of each forward, in the order of the file: a DNATed flow belongs to a
/// forward when its original destination port is one of the forward's listen ports, its
/// protocol one of the forward's, and its reply comes from one of the forward's backends.
pub fn by_forward<'m>(model: &'m Model, lines: &str) -> Vec<(&'m str, Vec<Connection>)> {
    // Forwards by listen port, so each entry is matched against a few candidates rather than
    // every forward (10,000 forwards x 10,000 connections would be 10^8 checks).
    let mut by_port: HashMap<u16, Vec<usize>> = HashMap::new();
    for (i, f) in model.forwards.iter().enumerate() {
        for port in f.port.lo..=f.port.hi {
            by_port.entry(port).or_default().push(i);
        }
    }
    let mut out: Vec<(&str, Vec<Connection>)> = model
        .forwards
        .iter()
        .map(|f| (f.name.as_str(), Vec::new()))
        .collect();
    for c in lines.lines().filter_map(parse_line) {
        let owner = by_port
            .get(&c.listen.port())
            .into_iter()
            .flatten()
            .find(|i| belongs(&model.forwards[**i], &c));
        if let Some(i) = owner {
            out[*i].1.push(c);
        }
    }
    out
}

fn belongs(f: &Forward, c: &Connection) -> bool {
    f.protos.iter().any(|p| p.name() == c.proto)
        && f.backends.iter().any(|b| b.addr == c.backend.ip())
        // Two forwards may share a port on different addresses; a `local` one is also reached
        // through the gateway's other addresses and 127.0.0.1.
        && (f.local || f.address.is_none_or(|a| a == c.listen.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "tcp      6 431999 ESTABLISHED src=192.0.2.100 dst=192.0.2.1 sport=53867 dport=80 src=10.77.0.11 dst=10.77.0.1 sport=8080 dport=53867 [ASSURED] mark=0 use=1";
    const UDP: &str = "udp      17 29 src=192.0.2.100 dst=192.0.2.1 sport=5000 dport=80 [UNREPLIED] src=10.77.0.11 dst=192.0.2.100 sport=8080 dport=5000 mark=0 use=1";

    #[test]
    fn reads_client_backend_protocol_and_state() {
        let c = parse_line(TCP).unwrap();
        assert_eq!(c.proto, "tcp");
        assert_eq!(c.client, "192.0.2.100:53867".parse().unwrap());
        assert_eq!(c.listen, "192.0.2.1:80".parse().unwrap());
        assert_eq!(c.backend, "10.77.0.11:8080".parse().unwrap());
        assert_eq!(c.state, "ESTABLISHED");
        assert_eq!(parse_line(UDP).unwrap().state, "UNREPLIED");
        assert_eq!(
            parse_line("conntrack v1.4.7 (conntrack-tools): 2 flow entries"),
            None
        );
    }

    #[test]
    fn connections_go_to_the_forward_that_translated_them() {
        let text = "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}\n  - {name: other, listen: {port: 81}, to: 10.77.0.12:8080}\n";
        let model = crate::spec::load_str("f.yaml", text).unwrap();
        let stranger = TCP.replace("src=10.77.0.11", "src=10.77.0.99");
        let got = by_forward(&model, &format!("{TCP}\n{UDP}\n{stranger}\n"));
        assert_eq!(got[0].0, "web");
        assert_eq!(
            got[0].1.len(),
            1,
            "tcp only: web is not udp, the stranger is no backend"
        );
        assert!(got[1].1.is_empty());
    }
}
