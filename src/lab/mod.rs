//! Throwaway network-namespace labs: build a copy of a gateway out of namespaces, run echo
//! servers in them and send real TCP/UDP probes through it.
//!
//! Used by `pfstate try FILE` and by the end-to-end traffic tests. The layout follows
//! the traffic-test layout ([`Topology::gateway`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use pfstate::lab::{GatewayOptions, LanMode, ProbeResult, Topology, probe_tcp, sample_tcp};
//!
//! if !pfstate::lab::have_root() {
//!     return;
//! }
//! let topo = Topology::gateway(GatewayOptions { lan_mode: LanMode::Bridge, ..Default::default() })
//!     .unwrap();
//! // Configure the gateway like a real host would be ...
//! topo.gw().set_sysctls(&[("net.ipv4.ip_forward", "1")]).unwrap();
//! topo.gw().exec("pfstate", &["apply", "/tmp/state.yaml"]).unwrap();
//! // ... and send real connections through it.
//! let public = Topology::addr(Topology::GW_WAN, 80);
//! let r = probe_tcp(topo.client(), public, Duration::from_millis(1500));
//! assert_eq!(r.name().as_deref(), Some("be1"), "{}", topo.dump());
//! let s = sample_tcp(topo.client(), public, 300, Duration::from_millis(1500));
//! assert_eq!(s.count("be1") + s.count("be2"), 300);
//! assert_ne!(r, ProbeResult::Timeout);
//! // Dropping `topo` stops the servers and deletes every namespace.
//! ```
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
//! [`link`] (veth, bridges, addresses, routes), [`setns`] (entering a namespace from a thread),
//! [`error`] (what can fail),, [`server`] (echo servers), [`probe`] (clients
//! and reply parsing), [`topology`] (the ready-made gateway lab), [`trial`] (the lab of
//! `pfstate try`), [`testing`] (root checks and the root-namespace guard for tests).

pub mod error;
pub mod link;
pub mod netns;
pub mod probe;
pub mod server;
pub mod setns;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod topology;
pub mod trial;

#[cfg(test)]
mod tests;

pub use error::NetlabError;
pub use link::{Bridge, Veth};
pub use netns::{Netns, NetnsOptions, PREFIX};
pub use probe::{HeldTcp, ProbeResult, Reply, Sample, hold_tcp, probe_tcp, probe_udp, sample_tcp};
pub use server::Proto;
#[cfg(any(test, feature = "testing"))]
pub use testing::{root_state, skip_unless_root};
pub use topology::{GatewayOptions, LanMode, Topology};

/// Whether this process can build labs (creating namespaces needs root).
///
/// Root-only tests call this first and return early, saying so on stderr, when it is false.
pub fn have_root() -> bool {
    nix::unistd::geteuid().is_root()
}
