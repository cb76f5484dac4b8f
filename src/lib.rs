//! pfstate: keep a host's port forwarding, NAT and firewall rules in a desired state.
//!
//! Data flows one way:
//!
//! ```text
//! spec (parse YAML) -> model (validate) -> render (canonical iptables-save text)
//!      -> plan (diff against the live kernel and files) -> apply (kernel, sysctls, files, systemd)
//! ```
//!
//! Everything up to and including `plan`'s diff is pure; side effects live behind the traits
//! in [`host`].

pub mod app;
pub mod cli;
pub mod coexist;
pub mod conntrack;
pub mod converge;
pub mod diff;
pub mod error;
pub mod files;
pub mod host;
pub mod iptables;
pub mod iptsave;
pub mod model;
pub mod names;
pub mod netlab;
pub mod nfnetlink;
pub mod nftables_tables;
pub mod persist;
pub mod placement;
pub mod plan;
pub mod render;
pub mod render_forward;
pub mod render_tree;
pub mod resolve;
pub mod rule;
pub mod save_cache;
pub mod spec;
pub mod spec_values;
pub mod status;
pub mod suggest;
pub mod sysctl;
pub mod sysctl_conf;
pub mod systemd;
pub mod try_run;
pub mod unit;
pub mod validate;
pub mod validate_rules;
pub mod values;
