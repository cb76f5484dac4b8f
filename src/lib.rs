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

pub mod error;
pub mod host;
pub mod model;
pub mod netlab;
