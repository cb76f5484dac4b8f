//! Clients: send one TCP connection or UDP datagram from a lab namespace and classify what
//! happened, the way a traffic test needs to assert it.
//!
//! The distinction matters: *Refused* means something answered with RST / ICMP port
//! unreachable (no rule, or a `-p tcp` rule that does not carry UDP), *Timeout* means the packet
//! or its reply was silently dropped (FORWARD DROP, ip_forward=0, a backend that cannot route
//! its reply), *Unreachable* means the sender had no route or got ICMP host/net unreachable.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::error::NetlabError;
use super::netns::Netns;
use super::server::Proto;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// A reply arrived; the text without its trailing newline (see [`Reply::parse`]).
    Ok(String),
    /// TCP RST or ICMP port unreachable.
    Refused,
    /// Nothing came back within the timeout.
    Timeout,
    /// No route at the sender, or ICMP host/network unreachable (the OS message).
    Unreachable(String),
    /// Anything else (the OS message), including failure to enter the namespace.
    Error(String),
}

impl ProbeResult {
    /// The parsed reply, when there is one and it has the servers' format.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            ProbeResult::Ok(text) => text.parse().ok(),
            _ => None,
        }
    }

    /// The answering server's name (`be1`, ...), when there is a well-formed reply.
    pub fn name(&self) -> Option<String> {
        self.reply().map(|r| r.name)
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, ProbeResult::Ok(_))
    }

    /// Short label for tables and sample counts: the server name, `refused`, `timeout`, ...
    pub fn label(&self) -> String {
        match self {
            ProbeResult::Ok(text) => text
                .parse::<Reply>()
                .map(|r| r.name)
                .unwrap_or_else(|_| format!("?{text}")),
            ProbeResult::Refused => "refused".into(),
            ProbeResult::Timeout => "timeout".into(),
            ProbeResult::Unreachable(_) => "unreachable".into(),
            ProbeResult::Error(_) => "error".into(),
        }
    }

    fn from_io(e: &std::io::Error) -> ProbeResult {
        match e.kind() {
            ErrorKind::ConnectionRefused => ProbeResult::Refused,
            ErrorKind::TimedOut | ErrorKind::WouldBlock => ProbeResult::Timeout,
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                ProbeResult::Unreachable(e.to_string())
            }
            _ => ProbeResult::Error(e.to_string()),
        }
    }
}

/// A server's answer `<name> <proto> peer=IP:PORT`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Which server answered (`be1`, `lan`, `client`).
    pub name: String,
    pub proto: Proto,
    /// The probe's address as the server saw it (after any SNAT/MASQUERADE).
    pub peer: SocketAddr,
}

impl FromStr for Reply {
    type Err = NetlabError;

    fn from_str(s: &str) -> Result<Reply, NetlabError> {
        let bad = || NetlabError::Invalid(format!("not a server reply: {s:?}"));
        let mut it = s.split_whitespace();
        let name = it.next().ok_or_else(bad)?.to_string();
        let proto = match it.next() {
            Some("tcp") => Proto::Tcp,
            Some("udp") => Proto::Udp,
            _ => return Err(bad()),
        };
        let peer = it
            .next()
            .and_then(|p| p.strip_prefix("peer="))
            .and_then(|p| p.parse().ok())
            .ok_or_else(bad)?;
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(Reply { name, proto, peer })
    }
}

/// Connect from `from` to `dst` and read the server's line; at most `timeout` in total.
pub fn probe_tcp(from: &Netns, dst: SocketAddr, timeout: Duration) -> ProbeResult {
    from.run_in(|| tcp_once(dst, timeout))
        .unwrap_or_else(|e| ProbeResult::Error(e.to_string()))
}

/// Send one datagram from `from` to `dst` and wait up to `timeout` for the answer.
///
/// `src_port` pins the source port, so repeated probes share one conntrack entry (how a stale
/// `[UNREPLIED]` entry is reproduced); `None` takes an ephemeral port.
pub fn probe_udp(
    from: &Netns,
    dst: SocketAddr,
    src_port: Option<u16>,
    timeout: Duration,
) -> ProbeResult {
    from.run_in(|| udp_once(dst, src_port, timeout))
        .unwrap_or_else(|e| ProbeResult::Error(e.to_string()))
}

/// Counts from [`sample_tcp`]: replies per server name, failures per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Replies per server name (`be1` → 100, ...).
    pub counts: BTreeMap<String, usize>,
    /// Probes that failed, per [`ProbeResult::label`] (`refused`, `timeout`, ...).
    pub failures: BTreeMap<String, usize>,
    /// Wall time of the whole sample.
    pub elapsed: Duration,
}

impl Sample {
    /// Replies from `name` (0 when it never answered).
    pub fn count(&self, name: &str) -> usize {
        self.counts.get(name).copied().unwrap_or(0)
    }

    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }
}

/// `n` sequential TCP connections from `from` to `dst` (one namespace entry for all of
/// them), counted per answering server: the distribution a load-balancing rule produces.
pub fn sample_tcp(from: &Netns, dst: SocketAddr, n: usize, timeout: Duration) -> Sample {
    let start = Instant::now();
    let mut sample = from
        .run_in(|| {
            let mut s = Sample::default();
            for _ in 0..n {
                let r = tcp_once(dst, timeout);
                let map = if r.reply().is_some() {
                    &mut s.counts
                } else {
                    &mut s.failures
                };
                *map.entry(r.label()).or_default() += 1;
            }
            s
        })
        .unwrap_or_else(|e| {
            let mut s = Sample::default();
            s.failures.insert(format!("error: {e}"), n);
            s
        });
    sample.elapsed = start.elapsed();
    sample
}

/// A TCP connection kept open (e.g. to look at its ESTABLISHED conntrack entry); closed on
/// drop. The server holds its side for up to [`super::server::TCP_HOLD`].
#[derive(Debug)]
pub struct HeldTcp {
    pub stream: TcpStream,
    /// The probe's own address (source port included), before any NAT.
    pub local: SocketAddr,
    /// The server's line.
    pub reply: Reply,
}

/// Like [`probe_tcp`] but keeps the connection open; `Err` carries the failed result.
pub fn hold_tcp(from: &Netns, dst: SocketAddr, timeout: Duration) -> Result<HeldTcp, ProbeResult> {
    from.run_in(|| {
        let deadline = Instant::now() + timeout;
        let mut stream =
            TcpStream::connect_timeout(&dst, timeout).map_err(|e| ProbeResult::from_io(&e))?;
        let text = read_line(&mut stream, deadline)?;
        let reply = text
            .parse()
            .map_err(|_| ProbeResult::Error(format!("not a server reply: {text:?}")))?;
        let local = stream
            .local_addr()
            .map_err(|e| ProbeResult::Error(e.to_string()))?;
        Ok(HeldTcp {
            stream,
            local,
            reply,
        })
    })
    .unwrap_or_else(|e| Err(ProbeResult::Error(e.to_string())))
}

fn tcp_once(dst: SocketAddr, timeout: Duration) -> ProbeResult {
    let deadline = Instant::now() + timeout;
    let mut stream = match TcpStream::connect_timeout(&dst, timeout) {
        Ok(s) => s,
        Err(e) => return ProbeResult::from_io(&e),
    };
    match read_line(&mut stream, deadline) {
        Ok(text) => ProbeResult::Ok(text),
        Err(r) => r,
    }
}

/// Read up to the first newline (the server keeps the connection open after it).
fn read_line(stream: &mut TcpStream, deadline: Instant) -> Result<String, ProbeResult> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ProbeResult::Timeout);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| ProbeResult::Error(e.to_string()))?;
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => {
                return Err(ProbeResult::Error("closed without a reply".into()));
            }
            Ok(0) => break,
            Ok(k) => {
                buf.extend_from_slice(&chunk[..k]);
                if buf.contains(&b'\n') || buf.len() > 4096 {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset && buf.is_empty() => {
                return Err(ProbeResult::Refused);
            }
            Err(e) => return Err(ProbeResult::from_io(&e)),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or("").to_string())
}

fn udp_once(dst: SocketAddr, src_port: Option<u16>, timeout: Duration) -> ProbeResult {
    let port = src_port.unwrap_or(0);
    let bound = if dst.is_ipv4() {
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
    } else {
        UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))
    };
    let sock = match bound {
        Ok(s) => s,
        Err(e) => return ProbeResult::Error(format!("bind udp :{port}: {e}")),
    };
    // connect() so an ICMP port unreachable comes back as ECONNREFUSED on recv.
    if let Err(e) = sock.connect(dst) {
        return ProbeResult::from_io(&e);
    }
    if let Err(e) = sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1)))) {
        return ProbeResult::Error(e.to_string());
    }
    if let Err(e) = sock.send(b"probe\n") {
        return ProbeResult::from_io(&e);
    }
    let mut buf = [0u8; 2048];
    loop {
        match sock.recv(&mut buf) {
            Ok(k) => {
                let text = String::from_utf8_lossy(&buf[..k]);
                return ProbeResult::Ok(text.lines().next().unwrap_or("").to_string());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return ProbeResult::from_io(&e),
        }
    }
}
