//! nf_tables ruleset events: a netlink socket subscribed to the `NFNLGRP_NFTABLES` multicast
//! group, and a pure parser of what arrives on it.
//!
//! The kernel announces every committed change of the nf_tables ruleset there: tables, chains
//! and rules created or deleted, and after each transaction a `NEWGEN` message naming the
//! process that committed it. iptables-nft, firewalld (either backend, via iptables-nft or
//! libnftables), `nft flush ruleset` and Docker all write through nf_tables, so one socket sees
//! every flush of pfstate's chains. iptables-legacy writes do not go through nf_tables and are
//! not seen at all.
//!
//! Reading blocks in `recv`: idle, the watcher costs no CPU. A burst larger than the socket
//! buffer (a flush of a 10,000-rule set) makes the kernel drop messages and `recv` fail with
//! `ENOBUFS`; that is reported as [`Batch::overflowed`], which callers treat as "something
//! changed", since it only happens when a lot did.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, setsockopt,
    socket, sockopt,
};

use crate::host::nfnetlink::attr;

/// The nf_tables multicast group (linux/netfilter/nfnetlink.h).
const NFNLGRP_NFTABLES: u32 = 7;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
/// Room for bursts: a flush of a large rule set is thousands of messages.
const RCVBUF_BYTES: usize = 4 << 20;

/// What an nf_tables message announces (linux/netfilter/nf_tables.h `NFT_MSG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NewTable,
    DelTable,
    NewChain,
    DelChain,
    NewRule,
    DelRule,
    /// End of one committed transaction.
    NewGen,
    /// Sets, elements, objects, flowtables: not what iptables rules are made of.
    Other,
}

impl Kind {
    fn of(msg: u16) -> Kind {
        match msg {
            0 => Kind::NewTable,
            2 => Kind::DelTable,
            3 => Kind::NewChain,
            5 => Kind::DelChain,
            6 => Kind::NewRule,
            8 => Kind::DelRule,
            15 => Kind::NewGen,
            _ => Kind::Other,
        }
    }
}

/// One announced change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    /// NFPROTO_* of the table (2 = ip, 10 = ip6, 1 = inet, ...).
    pub family: u8,
    pub table: Option<String>,
    pub chain: Option<String>,
    /// For [`Kind::NewGen`]: the generation id this transaction committed, and the committing
    /// process, when the kernel names it.
    pub generation: Option<u32>,
    pub pid: Option<u32>,
    pub process: Option<String>,
}

/// The events of one `recv`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<Event>,
    /// The kernel dropped messages (`ENOBUFS`): assume anything changed.
    pub overflowed: bool,
}

fn string_attr(attrs: &[u8], kind: u16) -> Option<String> {
    let raw = attr(attrs, kind)?;
    let raw = raw.split(|b| *b == 0).next().unwrap_or(raw);
    Some(String::from_utf8_lossy(raw).into_owned())
}

fn event_of(msg_type: u16, family: u8, attrs: &[u8]) -> Option<Event> {
    if msg_type >> 8 != NFNL_SUBSYS_NFTABLES {
        return None;
    }
    let kind = Kind::of(msg_type & 0xff);
    let mut ev = Event {
        kind,
        family,
        table: None,
        chain: None,
        generation: None,
        pid: None,
        process: None,
    };
    match kind {
        // NFTA_TABLE_NAME, NFTA_CHAIN_TABLE and NFTA_RULE_TABLE are all attribute 1.
        Kind::NewTable | Kind::DelTable => ev.table = string_attr(attrs, 1),
        Kind::NewChain | Kind::DelChain => {
            ev.table = string_attr(attrs, 1);
            ev.chain = string_attr(attrs, 3); // NFTA_CHAIN_NAME
        }
        Kind::NewRule | Kind::DelRule => {
            ev.table = string_attr(attrs, 1);
            ev.chain = string_attr(attrs, 2); // NFTA_RULE_CHAIN
        }
        Kind::NewGen => {
            // NFTA_GEN_ID, NFTA_GEN_PROC_PID (big-endian u32s) and NFTA_GEN_PROC_NAME.
            let be32 = |kind| {
                attr(attrs, kind)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
            };
            ev.generation = be32(1);
            ev.pid = be32(2);
            ev.process = string_attr(attrs, 3);
        }
        Kind::Other => {}
    }
    Some(ev)
}

/// Parse the netlink messages of one datagram. Malformed input ends the parse; it never
/// panics and never reads past `buf`.
pub fn parse(buf: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut msg = buf;
    while msg.len() >= NLMSG_HDRLEN {
        let Ok(len_bytes) = msg[0..4].try_into() else {
            break;
        };
        let mlen = u32::from_ne_bytes(len_bytes) as usize;
        let mtype = u16::from_ne_bytes([msg[4], msg[5]]);
        if mlen < NLMSG_HDRLEN || mlen > msg.len() {
            break;
        }
        if mlen >= NLMSG_HDRLEN + NFGENMSG_LEN {
            let family = msg[NLMSG_HDRLEN];
            let attrs = &msg[NLMSG_HDRLEN + NFGENMSG_LEN..mlen];
            out.extend(event_of(mtype, family, attrs));
        }
        let step = (mlen + 3) & !3;
        if step >= msg.len() {
            break;
        }
        msg = &msg[step..];
    }
    out
}

/// A socket subscribed to nf_tables ruleset events of this network namespace.
pub struct EventSocket {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl EventSocket {
    /// Subscribe. Fails without CAP_NET_ADMIN or without nf_tables in the kernel.
    pub fn open() -> nix::Result<EventSocket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )?;
        // Best effort: the force variant needs CAP_NET_ADMIN, which the watcher has.
        if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF_BYTES).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &RCVBUF_BYTES);
        }
        bind(
            fd.as_raw_fd(),
            &NetlinkAddr::new(0, 1 << (NFNLGRP_NFTABLES - 1)),
        )?;
        Ok(EventSocket {
            fd,
            buf: vec![0u8; 256 * 1024],
        })
    }

    /// Wait at most `timeout` for something to read (for callers that must also notice when to
    /// stop); `true` when [`next_batch`](Self::next_batch) will not block.
    pub fn readable(&self, timeout: std::time::Duration) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, ms).is_ok_and(|n| n > 0)
    }

    /// Block until the kernel announces something, then return that datagram's events.
    pub fn next_batch(&mut self) -> nix::Result<Batch> {
        loop {
            match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty()) {
                Ok(n) => {
                    return Ok(Batch {
                        events: parse(&self.buf[..n]),
                        overflowed: false,
                    });
                }
                Err(Errno::ENOBUFS) => {
                    return Ok(Batch {
                        events: Vec::new(),
                        overflowed: true,
                    });
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The iptables-nft tables: what `iptables-save` shows, pfstate's chains included.
fn is_xtables_table(family: u8, table: &str) -> bool {
    matches!(family, 2 | 10) && matches!(table, "filter" | "nat" | "mangle" | "raw" | "security")
}

fn is_builtin_chain(chain: &str) -> bool {
    matches!(
        chain,
        "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING"
    )
}

/// Whether an event can have touched pfstate's objects under `prefix`: a table of iptables
/// deleted, an owned chain deleted or a rule deleted from it, or a rule deleted from or
/// inserted into a chain pfstate hooks (a built-in chain, `DOCKER-USER`), which may have been
/// pfstate's jump or may now sit above it. Foreign chains and native nft tables (firewalld's
/// `inet firewalld`) do not matter; rules added to owned chains are pfstate's own writes.
pub fn touches_owned(ev: &Event, prefix: &str) -> bool {
    let Some(table) = ev.table.as_deref() else {
        return false;
    };
    if !is_xtables_table(ev.family, table) {
        return false;
    }
    let owned = |c: &str| c.strip_prefix(prefix).is_some_and(|r| r.starts_with('-'));
    let hooked = |c: &str| is_builtin_chain(c) || c == "DOCKER-USER";
    match (ev.kind, ev.chain.as_deref()) {
        (Kind::DelTable, _) => true,
        (Kind::DelChain, Some(c)) => owned(c) || hooked(c),
        (Kind::DelRule, Some(c)) => owned(c) || hooked(c),
        (Kind::NewRule, Some(c)) => hooked(c),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlattr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = 4 + payload.len();
        let mut a = Vec::new();
        a.extend_from_slice(&(len as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn nlmsg(msg: u16, family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = attrs.concat();
        let len = NLMSG_HDRLEN + NFGENMSG_LEN + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]); // flags, seq, pid
        m.extend_from_slice(&[family, 0, 0, 0]);
        m.extend_from_slice(&body);
        m
    }

    fn ev(kind: Kind, family: u8, table: &str, chain: Option<&str>) -> Event {
        Event {
            kind,
            family,
            table: Some(table.into()),
            chain: chain.map(Into::into),
            generation: None,
            pid: None,
            process: None,
        }
    }

    #[test]
    fn parses_a_datagram_of_several_messages() {
        let mut buf = nlmsg(
            8,
            2,
            &[nlattr(1, b"nat\0"), nlattr(2, b"PFSTATE-PREROUTING\0")],
        );
        buf.extend(nlmsg(2, 1, &[nlattr(1, b"firewalld\0")]));
        buf.extend(nlmsg(
            15,
            0,
            &[
                nlattr(1, &7u32.to_be_bytes()),
                nlattr(2, &4242u32.to_be_bytes()),
                nlattr(3, b"firewalld\0"),
            ],
        ));
        let evs = parse(&buf);
        assert_eq!(evs.len(), 3, "{evs:?}");
        assert_eq!(
            evs[0],
            ev(Kind::DelRule, 2, "nat", Some("PFSTATE-PREROUTING"))
        );
        assert_eq!(evs[1], ev(Kind::DelTable, 1, "firewalld", None));
        assert_eq!(evs[2].kind, Kind::NewGen);
        assert_eq!(evs[2].generation, Some(7));
        assert_eq!(evs[2].pid, Some(4242));
        assert_eq!(evs[2].process.as_deref(), Some("firewalld"));
    }

    #[test]
    fn malformed_input_stops_the_parse() {
        let good = nlmsg(5, 2, &[nlattr(1, b"filter\0"), nlattr(3, b"PFSTATE-IN\0")]);
        let mut bad = good.clone();
        bad[0] = 255; // length past the end
        assert!(parse(&bad).is_empty());
        assert!(parse(&good[..10]).is_empty());
        assert_eq!(parse(&good).len(), 1);
        // Another subsystem (conntrack = 1) is not an nf_tables event.
        let mut ct = good.clone();
        ct[5] = 1;
        assert!(parse(&ct).is_empty());
    }

    #[test]
    fn what_touches_owned_objects() {
        let p = "PFSTATE";
        assert!(touches_owned(&ev(Kind::DelTable, 2, "nat", None), p));
        assert!(touches_owned(&ev(Kind::DelTable, 10, "filter", None), p));
        assert!(touches_owned(
            &ev(Kind::DelChain, 2, "filter", Some("PFSTATE-INPUT")),
            p
        ));
        assert!(touches_owned(
            &ev(Kind::DelRule, 2, "nat", Some("PREROUTING")),
            p
        ));
        assert!(touches_owned(
            &ev(Kind::NewRule, 2, "filter", Some("DOCKER-USER")),
            p
        ));
        // Foreign chains, native nft tables, own additions and other prefixes do not.
        assert!(!touches_owned(
            &ev(Kind::DelRule, 2, "filter", Some("DOCKER")),
            p
        ));
        assert!(!touches_owned(&ev(Kind::DelTable, 1, "firewalld", None), p));
        assert!(!touches_owned(
            &ev(Kind::DelRule, 1, "firewalld", Some("filter_INPUT")),
            p
        ));
        assert!(!touches_owned(
            &ev(Kind::NewRule, 2, "nat", Some("PFSTATE-PREROUTING")),
            p
        ));
        assert!(!touches_owned(
            &ev(Kind::DelChain, 2, "nat", Some("PFSTATEX-A")),
            p
        ));
        assert!(!touches_owned(&ev(Kind::NewTable, 2, "nat", None), p));
    }
}
