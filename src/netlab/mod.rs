//! Throwaway network-namespace labs: build a copy of a gateway out of namespaces, run echo
//! servers in them and send real TCP/UDP probes through it.
//!
//! Used by `pfstate try FILE` and by the end-to-end traffic tests. The layout follows
//! `shared/notes/traffic-tests.md` §1 ([`Topology::gateway`]).
//!
//! Safety rules this module keeps, because it runs as root on developer machines and CI:
//! - it never touches the root namespace's firewall or sysctls: every sysctl is written from a
//!   thread that has entered the lab namespace, every command runs under `ip -n`/`ip netns exec`;
//! - every namespace it creates is named `pft-<pid>-<counter>-<role>` ([`PREFIX`]), so parallel
//!   runs never collide and a leftover can be traced to its process;
//! - links are veth pairs created directly between two lab namespaces (`ip -n A link add ...
//!   peer ... netns B`), so nothing ever appears in the root namespace, and no lab namespace has
//!   a route out of the lab;
//! - [`Netns`] deletes its namespace on drop (also while unwinding from a panic) after stopping
//!   the servers it owns; servers are threads of this process, never foreign processes.
//!
//! Files, one responsibility each: [`netns`] (the namespace handle, exec, setns, sysctls),
//! [`link`] (veth, bridges, addresses, routes), [`server`] (echo servers), [`probe`] (clients
//! and reply parsing), [`topology`] (the ready-made gateway lab).

pub mod link;
pub mod netns;
pub mod probe;
pub mod server;
pub mod topology;

#[cfg(test)]
mod tests;

pub use link::{Bridge, Veth};
pub use netns::{Netns, NetnsOptions};
pub use probe::{HeldTcp, ProbeResult, Reply, Sample, hold_tcp, probe_tcp, probe_udp, sample_tcp};
pub use server::Proto;
pub use topology::{GatewayOptions, LanMode, Topology};

use thiserror::Error;

/// Every namespace name this module creates starts with this, then `<pid>-<counter>-`.
pub const PREFIX: &str = "pft-";

/// What went wrong while building or using a lab.
#[derive(Debug, Error)]
pub enum NetlabError {
    /// A command (`ip`, `sysctl`, ...) failed; `message` holds its stderr.
    #[error("{command}: {message}")]
    Command { command: String, message: String },
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// Entering a namespace failed.
    #[error("setns into {netns}: {errno}")]
    Setns { netns: String, errno: nix::Error },
    /// A name or argument this module refuses (wrong prefix, too long, ...).
    #[error("{0}")]
    Invalid(String),
}

impl NetlabError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        NetlabError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Whether this process can build labs (creating namespaces needs root).
///
/// Root-only tests call this first and return early, saying so on stderr, when it is false.
pub fn have_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// For tests: `true` when the test must be skipped (not root); prints why to stderr.
pub fn skip_unless_root(test: &str) -> bool {
    if have_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: network-namespace tests need root (euid 0)");
    true
}
