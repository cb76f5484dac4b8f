//! pfstate's chains in both iptables backends (issue 12), in a real network namespace: after
//! applying on a legacy host, one foreign nf_tables rule moves the host's rules; the next apply
//! says so, writes into nf_tables and removes the legacy copy, leaving exactly one; `remove`
//! cleans both.

use crate::common;

use common::Host;
use pfstate::lab::skip_unless_root;

const STATE: &str =
    "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: \"10.0.0.2:8080\"}\n";
const LEGACY_FOREIGN: &str =
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 192.0.2.1/32 -j DROP\nCOMMIT\n";
const NFT_FOREIGN: &str =
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 192.0.2.2/32 -j DROP\nCOMMIT\n";

fn copies(h: &Host, tool: &str) -> usize {
    h.save(tool).matches("-A PFSTATE-PREROUTING").count()
}

#[test]
fn a_backend_change_is_said_and_converges_to_one_copy() {
    if skip_unless_root("a_backend_change_is_said_and_converges_to_one_copy") {
        return;
    }
    let h = Host::new("backends");
    let state = common::write_yaml(h.shim.path(), "host.yaml", STATE);
    h.load("iptables-legacy-restore", LEGACY_FOREIGN);
    assert_eq!(h.run(&["apply", &state]).code, 0);
    assert_eq!(copies(&h, "iptables-legacy-save"), 1);
    assert_eq!(copies(&h, "iptables-nft-save"), 0);

    // The host's rules move to nf_tables (one foreign rule there is enough).
    h.load("iptables-nft-restore", NFT_FOREIGN);
    let plan = h.run(&["plan", &state]);
    assert_eq!(plan.code, 2, "{}", plan.show());
    assert!(
        plan.stderr
            .contains("also in the iptables-legacy backend (ipv4)"),
        "{}",
        plan.show()
    );
    assert!(
        plan.stdout
            .contains("# iptables-legacy backend: pfstate's copy there is removed"),
        "{}",
        plan.show()
    );
    // Removing the legacy copy fails: the nf_tables copy written before is taken back.
    let broken = tempfile::tempdir().unwrap();
    let tool = broken.path().join("iptables-legacy-restore");
    std::fs::write(
        &tool,
        "#!/bin/sh\ncat >/dev/null; echo refused >&2; exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", broken.path().display(), h.shim.path().display());
    let path = format!("{path}:{}", std::env::var("PATH").unwrap_or_default());
    let r = h.run_env(&["apply", &state], &[("PATH", &path)]);
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(
        r.stderr.contains("the previous state was restored"),
        "{}",
        r.show()
    );
    assert_eq!(copies(&h, "iptables-nft-save"), 0, "{}", r.show());
    assert_eq!(copies(&h, "iptables-legacy-save"), 1, "{}", r.show());

    let r = h.run(&["apply", &state]);
    assert_eq!(r.code, 0, "{}", r.show());
    assert_eq!(copies(&h, "iptables-nft-save"), 1, "{}", r.show());
    assert_eq!(copies(&h, "iptables-legacy-save"), 0, "{}", r.show());
    assert!(
        h.save("iptables-legacy-save")
            .contains("-A INPUT -s 192.0.2.1/32 -j DROP")
    );
    let again = h.run(&["plan", &state]);
    assert_eq!(again.code, 0, "{}", again.show());
}

/// Both backends hold pfstate's chains (a run in each): remove takes both away, and says so.
#[test]
fn remove_cleans_both_backends() {
    if skip_unless_root("remove_cleans_both_backends") {
        return;
    }
    let h = Host::new("bothrm");
    let state = common::write_yaml(h.shim.path(), "host.yaml", STATE);
    h.load("iptables-legacy-restore", LEGACY_FOREIGN);
    assert_eq!(h.run(&["apply", &state]).code, 0);
    // A copy in nf_tables too, as an older pfstate that switched backends left it.
    let nft = h.save("iptables-legacy-save");
    let owned: String = nft
        .lines()
        .filter(|l| {
            l.starts_with('*')
                || l.starts_with("COMMIT")
                || l.contains("PFSTATE")
                || l.starts_with(":PREROUTING")
                || l.starts_with(":FORWARD")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    h.load("iptables-nft-restore", &owned);
    assert_eq!(copies(&h, "iptables-nft-save"), 1);
    let r = h.run(&["remove"]);
    assert_eq!(r.code, 0, "{}", r.show());
    for tool in ["iptables-legacy-save", "iptables-nft-save"] {
        assert!(!h.save(tool).contains("PFSTATE"), "{tool}: {}", r.show());
    }
    assert!(h.save("iptables-legacy-save").contains("192.0.2.1/32"));
}
