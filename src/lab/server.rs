//! Echo servers that say who they are and whom they saw: every TCP connection and every UDP
//! datagram is answered with `<name> <proto> peer=IP:PORT\n`.
//!
//! That one line tells a probe which backend answered (load balancing, DNAT target) and which
//! source address the backend saw (SNAT/MASQUERADE or not). Servers are threads of this
//! process that enter the namespace before binding, so no python/socat is needed and they can
//! only ever be stopped by us: a stop flag checked at least every [`POLL`].

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::error::NetlabError;
use super::setns::enter;

/// Longest a server thread goes without looking at its stop flag.
pub const POLL: Duration = Duration::from_millis(100);
/// How long a TCP connection is kept open after the reply, waiting for the client to close it
/// (lets a test hold an ESTABLISHED connection to inspect conntrack).
pub const TCP_HOLD: Duration = Duration::from_secs(30);
/// At most this many TCP connections are held at once; beyond it they are answered and closed.
const MAX_HELD: usize = 256;
/// How long `start` waits for the thread to report that it is bound.
const READY_WAIT: Duration = Duration::from_secs(5);

/// Transport protocol of a server or probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// The line a server sends for a peer.
pub fn reply_line(name: &str, proto: Proto, peer: SocketAddr) -> String {
    format!("{name} {proto} peer={}\n", unmap(peer))
}

/// A running server; owned by its [`Netns`](super::netns::Netns), stopped before the namespace is deleted.
#[derive(Debug)]
pub(crate) struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Start a server in `ns` on `port` of every address (IPv4 and, when enabled, IPv6).
    /// Returns once the socket is bound, or the bind error.
    /// `fd` is the namespace's handle and `nsname` its name.
    pub(crate) fn start(
        fd: OwnedFd,
        nsname: String,
        name: &str,
        proto: Proto,
        port: u16,
    ) -> Result<Server, NetlabError> {
        let name = name.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let (tx, rx) = mpsc::channel::<Result<(), NetlabError>>();
        let thread = std::thread::Builder::new()
            .name(format!("netlab-{name}-{proto}-{port}"))
            .spawn(move || {
                if let Err(e) = enter(&fd, &nsname) {
                    let _ = tx.send(Err(e));
                    return;
                }
                drop(fd);
                match proto {
                    Proto::Tcp => match bind_tcp(port) {
                        Ok(l) => {
                            let _ = tx.send(Ok(()));
                            tcp_loop(l, &name, &stop2);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    },
                    Proto::Udp => match bind_udp(port) {
                        Ok(s) => {
                            let _ = tx.send(Ok(()));
                            udp_loop(s, &name, &stop2);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    },
                }
            })
            .map_err(|e| NetlabError::io("spawn server thread", e))?;
        let mut server = Server {
            stop,
            thread: Some(thread),
        };
        match rx.recv_timeout(READY_WAIT) {
            Ok(Ok(())) => Ok(server),
            Ok(Err(e)) => {
                server.join_now();
                Err(e)
            }
            Err(_) => {
                server.join_now();
                Err(NetlabError::Invalid(format!(
                    "{proto} server on :{port} did not start within {READY_WAIT:?}"
                )))
            }
        }
    }

    pub(crate) fn signal_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub(crate) fn join(mut self) {
        self.join_now();
    }

    fn join_now(&mut self) {
        self.signal_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.join_now();
    }
}

/// Bind `[::]:port` (dual stack: v4 peers appear v4-mapped and are unmapped in replies);
/// fall back to `0.0.0.0:port` where IPv6 sockets are unavailable.
fn bind_tcp(port: u16) -> Result<TcpListener, NetlabError> {
    let l = TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
        .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
        .map_err(|e| NetlabError::io(format!("bind tcp :{port}"), e))?;
    l.set_nonblocking(true)
        .map_err(|e| NetlabError::io("set_nonblocking", e))?;
    Ok(l)
}

fn bind_udp(port: u16) -> Result<UdpSocket, NetlabError> {
    let s = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))
        .or_else(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))
        .map_err(|e| NetlabError::io(format!("bind udp :{port}"), e))?;
    s.set_read_timeout(Some(POLL))
        .map_err(|e| NetlabError::io("set_read_timeout", e))?;
    Ok(s)
}

fn tcp_loop(listener: TcpListener, name: &str, stop: &Arc<AtomicBool>) {
    let mut held: Vec<JoinHandle<()>> = Vec::new();
    let timeout = PollTimeout::try_from(POLL).unwrap_or(PollTimeout::NONE);
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        }
        // Drain everything pending; each connection gets its line at once.
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    held.retain(|h| !h.is_finished());
                    let line = reply_line(name, Proto::Tcp, peer);
                    if held.len() >= MAX_HELD {
                        answer(stream, &line, None);
                        continue;
                    }
                    let stop = Arc::clone(stop);
                    match std::thread::Builder::new()
                        .name("netlab-conn".into())
                        .spawn(move || answer(stream, &line, Some(&stop)))
                    {
                        Ok(h) => held.push(h),
                        Err(_) => continue, // stream dropped: the client sees a reset
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    // EMFILE and the like: back off instead of spinning.
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
    }
    for h in held {
        let _ = h.join();
    }
}

/// Send the line, then (when `hold` is given) keep the connection until the client closes
/// it, [`TCP_HOLD`] passes or the server stops, so the client closes first and the server
/// side never lingers in TIME_WAIT.
fn answer(mut stream: TcpStream, line: &str, hold: Option<&AtomicBool>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_nodelay(true);
    if stream.write_all(line.as_bytes()).is_err() {
        return;
    }
    let Some(stop) = hold else { return };
    let _ = stream.set_read_timeout(Some(POLL));
    let deadline = Instant::now() + TCP_HOLD;
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn udp_loop(sock: UdpSocket, name: &str, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        match sock.recv_from(&mut buf) {
            Ok((_, peer)) => {
                let line = reply_line(name, Proto::Udp, peer);
                let _ = sock.send_to(line.as_bytes(), peer);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // ICMP errors from earlier replies surface here (ECONNREFUSED); keep serving,
            // pausing briefly so a persistent error cannot spin the CPU.
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// `[::ffff:a.b.c.d]:p` → `a.b.c.d:p`, so replies read the same on dual-stack sockets.
pub(crate) fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}
