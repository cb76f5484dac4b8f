//! Helpers for tests only (feature `testing`): skip a root test cleanly without root, and
//! what must never change in the machine's own (root) network namespace while labs run: its
//! iptables and nftables rules and the sysctls a gateway would touch. Tests take it before and
//! compare after.

/// A comparable snapshot of the root namespace's rules and key sysctls (read-only).
pub fn root_state() -> Vec<String> {
    let mut v = Vec::new();
    for (cmd, args) in [
        ("iptables-save", &[][..]),
        ("ip6tables-save", &[][..]),
        ("nft", &["list", "ruleset"][..]),
    ] {
        let out = std::process::Command::new(cmd).args(args).output();
        // Drop the "# Generated ... on <date>" comment lines of iptables-save.
        v.push(match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("{cmd}: {e}"),
        });
    }
    for k in [
        "net/ipv4/ip_forward",
        "net/ipv4/conf/all/rp_filter",
        "net/ipv4/conf/all/route_localnet",
        "net/ipv4/conf/all/forwarding",
        "net/ipv6/conf/all/forwarding",
        "net/bridge/bridge-nf-call-iptables",
    ] {
        v.push(format!(
            "{k}={}",
            std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_default()
        ));
    }
    v
}

/// For tests: `true` when the test must be skipped (not root); prints why to stderr.
pub fn skip_unless_root(test: &str) -> bool {
    if super::have_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: network-namespace tests need root (euid 0)");
    true
}
