//! pfstate: keep a host's port forwarding, NAT and firewall rules in a desired state.
//!
//! Data flows one way, and the folders are the stages:
//!
//! ```text
//! spec/     file text -> Model            parse YAML, validate (every problem at FILE:LINE:COL)
//! render/   Model -> Desired              the owned chains in canonical iptables-save text,
//!                                         the sysctls, the files (state, sysctl.d, unit)
//! plan/     Desired x Observed -> Plan    observe the host, then diff (pure)
//! apply/    Plan -> machine               kernel, sysctls, files, conntrack; rollback on failure
//! cmd/      one file per subcommand       chains the stages; output.rs prints, decides exit code
//! ```
//!
//! Below the stages sit the shared vocabulary ([`model`], [`names`], [`error`], [`ruleset`]:
//! tables, chains, rule lines, the `iptables-save` parser) and [`host`]: every side effect,
//! each behind a small trait, bundled in `host::Host` (the machine: `host::live`; an in-memory
//! fake for tests: `host::fake`, feature `testing`). [`lab`] builds throwaway network-namespace
//! labs (`pfstate try`, the traffic tests). Imports point down this list and never back:
//! `model/names/error -> spec -> ruleset -> host -> render -> plan -> apply -> lab -> cmd`.

pub mod apply;
pub mod build_info;
pub mod cli;
pub mod cmd;
pub mod error;
pub mod host;
pub mod lab;
pub mod model;
pub mod names;
pub mod plan;
pub mod render;
pub mod ruleset;
pub mod spec;
