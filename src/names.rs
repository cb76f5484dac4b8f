//! Which names pfstate may use and own. This module alone decides what pfstate may delete.
//!
//! pfstate owns exactly the chains whose name starts with `PREFIX-` (dash included, so a
//! foreign `PFSTATEX` chain is never claimed) and the jumps into them. Prefixes that other
//! firewall managers use are refused, because claiming their chains would delete their rules.

/// The default chain prefix.
pub const DEFAULT_PREFIX: &str = "PFSTATE";
/// The comment on every jump pfstate puts in a chain it does not own.
pub const JUMP_COMMENT: &str = "pfstate";
/// iptables' limit on chain names (XT_EXTENSION_MAXNAMELEN - 1).
pub const MAX_CHAIN_LEN: usize = 28;
/// Longest prefix: leaves room for `-POSTROUTING` and for per-forward chain names.
pub const MAX_PREFIX_LEN: usize = 12;
/// Longest entry name; it ends up in comments (`pfstate:NAME`), capped at 256 by the kernel.
pub const MAX_NAME_LEN: usize = 64;

/// Chain-name beginnings used by other systems that share the tables (compared without case).
const FOREIGN_PREFIXES: &[&str] = &[
    "DOCKER",
    "KUBE",
    "CALI",
    "FELIX",
    "LIBVIRT",
    "UFW",
    "UFW6",
    "FLANNEL",
    "CILIUM",
    "WEAVE",
    "NETAVARK",
    "CNI",
    "ISTIO",
    "F2B",
    "FAIL2BAN",
    "FWD_",
    "IN_",
    "OUT_",
    "FORWARD",
    "INPUT",
    "OUTPUT",
    "PREROUTING",
    "POSTROUTING",
    "NFLOG",
    "LXD",
    "INCUS",
    "PODMAN",
    "NOMAD",
    "CSF",
    "SSHGUARD",
    "OPENSHIFT",
    "ANTREA",
    "KUBE_",
    "CROWDSEC",
];

/// Why a prefix cannot be used, or `None` when it can.
pub fn prefix_problem(prefix: &str) -> Option<String> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Some(format!("prefix must be 1 to {MAX_PREFIX_LEN} characters"));
    }
    let first_ok = prefix
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Some(
            "prefix must start with a letter and hold only letters, digits and '_'".to_string(),
        );
    }
    let upper = prefix.to_ascii_uppercase();
    FOREIGN_PREFIXES
        .iter()
        .find(|f| upper.starts_with(*f) || f.starts_with(&upper))
        .map(|f| {
            format!("prefix `{prefix}` would claim chains of another system ({f}...); choose another, such as PFSTATE")
        })
}

/// Whether pfstate (under `prefix`) owns a chain of this name.
pub fn is_owned(chain: &str, prefix: &str) -> bool {
    chain.len() > prefix.len() + 1
        && chain.starts_with(prefix)
        && chain.as_bytes()[prefix.len()] == b'-'
}

/// Why an entry name (forward, snat, filter) is not acceptable, or `None`.
pub fn entry_name_problem(name: &str) -> Option<String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars {
        return Some(format!(
            "name `{}` must be 1 to {MAX_NAME_LEN} lowercase letters, digits, '-' or '_'",
            name.escape_debug()
        ));
    }
    None
}

/// Why an interface name is not acceptable, or `None`. The kernel allows up to 15 bytes
/// without '/', ':' or white space; iptables adds a trailing '+' wildcard.
pub fn interface_problem(name: &str) -> Option<String> {
    let base = name.strip_suffix('+').unwrap_or(name);
    let ok = !base.is_empty()
        && name.len() <= 15
        && base != "."
        && base != ".."
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    (!ok).then(|| {
        format!(
            "`{}` is not an interface name (at most 15 letters, digits, '-', '_', '.', optionally ending in '+')",
            name.escape_debug()
        )
    })
}

/// The chain that balances forward `name` over its backends: `PREFIX-LB-NAME`.
pub fn lb_chain(prefix: &str, name: &str) -> String {
    owned_chain(prefix, &format!("LB-{name}"))
}

/// Whether `chain` is a balancing chain of [`lb_chain`].
pub fn is_lb_chain(prefix: &str, chain: &str) -> bool {
    chain.starts_with(&owned_chain(prefix, "LB-"))
}

/// The name of a chain pfstate owns: `PREFIX-PART`, shortened with a stable hash when longer
/// than iptables allows, so every name is unique, stable across runs and at most 28 characters.
pub fn owned_chain(prefix: &str, part: &str) -> String {
    let full = format!("{prefix}-{part}");
    if full.len() <= MAX_CHAIN_LEN {
        return full;
    }
    let hash = format!("{:08x}", fnv1a(part.as_bytes()) as u32);
    let keep = MAX_CHAIN_LEN - prefix.len() - 1 - hash.len() - 1;
    let head: String = part.chars().take(keep).collect();
    format!("{prefix}-{head}-{hash}")
}

/// FNV-1a: tiny, stable across Rust versions (unlike `DefaultHasher`), good enough for names.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_needs_the_dash() {
        assert!(is_owned("PFSTATE-PREROUTING", "PFSTATE"));
        assert!(!is_owned("PFSTATEX-PREROUTING", "PFSTATE"));
        assert!(!is_owned("PFSTATE", "PFSTATE"));
        assert!(!is_owned("PFSTATE-", "PFSTATE"));
        assert!(!is_owned("DOCKER-USER", "PFSTATE"));
    }

    #[test]
    fn foreign_prefixes_are_refused() {
        for p in [
            "DOCKER", "docker", "KUBE", "cali", "LIBVIRT", "ufw", "DOCKERX", "FORWARD",
        ] {
            assert!(prefix_problem(p).is_some(), "{p} accepted");
        }
        for p in ["PFSTATE", "EDGE", "GW1"] {
            assert_eq!(prefix_problem(p), None, "{p} refused");
        }
        assert!(prefix_problem("PF-X").is_some());
        assert!(prefix_problem("").is_some());
        assert!(prefix_problem("ABCDEFGHIJKLM").is_some());
    }

    #[test]
    fn long_chain_names_are_hashed_to_fit() {
        let a = owned_chain("ABCDEFGHIJKL", "DNAT-a-very-long-forward-name-1");
        let b = owned_chain("ABCDEFGHIJKL", "DNAT-a-very-long-forward-name-2");
        assert!(
            a.len() <= MAX_CHAIN_LEN && b.len() <= MAX_CHAIN_LEN,
            "{a} {b}"
        );
        assert_ne!(a, b);
        assert!(is_owned(&a, "ABCDEFGHIJKL"));
        assert_eq!(owned_chain("PFSTATE", "DNAT-web"), "PFSTATE-DNAT-web");
    }

    #[test]
    fn interface_names() {
        assert_eq!(interface_problem("eth0.100"), None);
        assert_eq!(interface_problem("veth+"), None);
        assert!(interface_problem("eth0 -j ACCEPT").is_some());
        assert!(interface_problem("a-very-long-interface").is_some());
        assert!(interface_problem("").is_some());
        assert!(interface_problem("eth\n0").is_some());
    }
}
