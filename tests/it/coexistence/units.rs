//! The shipped recheck units, the untouched check itself, and foreign comments.

use super::*;

#[test]
pub(super) fn recheck_units_run_apply_every_minute_and_after_foreign_restarts() {
    let units = concat!(env!("CARGO_MANIFEST_DIR"), "/units");
    let read = |n: &str| std::fs::read_to_string(format!("{units}/{n}")).unwrap();
    let apply = "ExecStart=/usr/sbin/pfstate apply --boot /etc/pfstate/host.yaml";
    let timer = read("pfstate-recheck.timer");
    assert!(timer.contains("OnUnitActiveSec=60\n"), "{timer}");
    assert!(timer.contains("Unit=pfstate-recheck.service"), "{timer}");
    assert!(read("pfstate-recheck.service").contains(apply));
    let reapply = read("pfstate-reapply.service");
    assert!(reapply.contains(apply), "{reapply}");
    for svc in [
        "docker.service",
        "libvirtd.service",
        "virtnetworkd.service",
        "firewalld.service",
        "netfilter-persistent.service",
    ] {
        for key in ["After=", "PartOf=", "WantedBy="] {
            assert!(
                reapply
                    .lines()
                    .any(|l| l.starts_with(key) && l.contains(svc)),
                "{key} lacks {svc}"
            );
        }
    }
    // systemd's own check, with the binary path pointed at something that exists here.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed: unit syntax not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for n in [
        "pfstate-recheck.timer",
        "pfstate-recheck.service",
        "pfstate-reapply.service",
        "pfstate.service",
    ] {
        std::fs::write(
            dir.path().join(n),
            read(n).replace("/usr/sbin/pfstate", "/bin/true"),
        )
        .unwrap();
        names.push(format!("./{n}"));
    }
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&names)
        .current_dir(dir.path()));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        text(&out.stderr)
    );
}

/// The ported check-untouched logic catches what it must (needs no root).
#[test]
pub(super) fn untouched_check_catches_foreign_changes() {
    let base = std::fs::read_to_string(format!("{FIXTURES}/docker.rules")).unwrap();
    let f = |s: &str| foreign(s, &["PFSTATE"]);
    // pfstate's own chain and jumps are ignored, wherever they are.
    let ours = base
        .replacen(
            ":DOCKER-USER - [0:0]\n",
            ":DOCKER-USER - [0:0]\n:PFSTATE-FORWARD - [0:0]\n-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD\n-A PFSTATE-FORWARD -j ACCEPT\n",
            1,
        );
    assert_ne!(ours, base);
    assert_eq!(f(&ours), f(&base));
    // A deleted foreign rule, a re-ordered chain, a changed policy are caught.
    let deleted = base.replace("-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP\n", "");
    assert_ne!(f(&deleted), f(&base));
    let reordered = base.replace(
        "-A FORWARD -j DOCKER-USER\n-A FORWARD -j DOCKER-FORWARD\n",
        "-A FORWARD -j DOCKER-FORWARD\n-A FORWARD -j DOCKER-USER\n",
    );
    assert_ne!(reordered, base);
    assert_ne!(f(&reordered), f(&base));
    let policy = base.replace(":FORWARD DROP", ":FORWARD ACCEPT");
    assert_ne!(policy, base);
    assert_ne!(f(&policy), f(&base));
    // Another prefix's chains are foreign to PFSTATE.
    let edge = base.replacen(
        ":DOCKER-USER - [0:0]\n",
        ":DOCKER-USER - [0:0]\n:EDGE-X - [0:0]\n",
        1,
    );
    assert_ne!(f(&edge), f(&base));
}

// A foreign rule whose comment mentions a pfstate chain is still foreign.
root_test!(
    a_comment_naming_a_pfstate_chain_does_not_make_a_rule_pfstates,
    || {
        let ns = Ns::new();
        ns.load("docker.rules");
        ns.ipt(&[
            "-I",
            "INPUT",
            "1",
            "-m",
            "comment",
            "--comment",
            "was -j PFSTATE-INPUT",
            "-j",
            "ACCEPT",
        ]);
        let base = ns.saves();
        let dir = tempfile::tempdir().unwrap();
        let pf = Pf {
            ns: &ns,
            root: dir.path().join("root"),
        };
        let a = write(dir.path(), "a.yaml", &state("PFSTATE"));
        pf.apply(&a);
        assert_untouched(&ns, &base, &["PFSTATE"], "apply");
        pf.assert_in_sync(&a, "after apply");
        pf.ok(&["remove"]);
        assert_same(&base, &ns.saves(), "remove");
    }
);
