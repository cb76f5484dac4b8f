//! Validated desired state.

/// An address family: IPv4 rules go to iptables, IPv6 rules to ip6tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}
