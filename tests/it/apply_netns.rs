//! apply, re-apply, plan, change and remove against the real kernel in throwaway namespaces.

use crate::common;

use common::{Host, write_yaml};

const STATE_A: &str = "version: 1
host: test-a
interfaces: {wan: wan0, lan: lan0}
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, snat: masquerade}
  - {name: lb, proto: both, listen: {port: 81}, to: [10.77.0.11:8080, 10.77.0.12:8080, 10.77.0.13:8080]}
  - {name: v6, listen: {port: 80}, to: \"[fd00:77::11]:8080\"}
snat:
  - {name: lan-out, source: 10.77.0.0/24, out_interface: wan}
filter:
  - {name: ssh, chain: input, proto: tcp, dport: 22, source: 10.0.0.0/8, action: accept}
";

fn state_b() -> String {
    STATE_A.replace("port: 81}", "port: 82}").replace(
        "  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, snat: masquerade}\n",
        "",
    )
}

const FOREIGN_V4: &str = "*filter
:DOCKER-USER - [0:0]
-A INPUT -s 10.0.0.0/8 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
";

/// The foreign lines of a save: everything not in or jumping to a PFSTATE chain.
fn foreign(save: &str) -> String {
    save.lines()
        .filter(|l| !l.contains("PFSTATE-"))
        .map(|l| format!("{l}\n"))
        .collect()
}

root_test!(apply_is_idempotent_and_remove_cleans_up, || {
    let h = Host::new("apply");
    h.load("iptables-restore", FOREIGN_V4);
    let foreign_before = foreign(&h.save("iptables-save"));
    let dir = tempfile::tempdir().unwrap();
    let a = write_yaml(dir.path(), "a.yaml", STATE_A);

    let plan = h.run(&["plan", &a]);
    assert_eq!(
        plan.code,
        2,
        "plan of an unapplied state exits 2\n{}",
        plan.show()
    );
    assert!(
        plan.stdout.contains("+-A PFSTATE-PREROUTING"),
        "{}",
        plan.show()
    );
    assert_eq!(h.restores(), 0, "plan wrote to the kernel");

    let apply = h.run(&["apply", &a]);
    assert_eq!(apply.code, 0, "{}", apply.show());
    assert_eq!(h.restores(), 2, "one restore per family");
    assert_eq!(h.sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(h.sysctl("net.ipv6.conf.all.forwarding"), "1");
    let v4 = h.save("iptables-save");
    assert!(v4.contains("-A PFSTATE-PREROUTING -p tcp -m tcp --dport 80 -m addrtype --dst-type LOCAL -m comment --comment \"pfstate:web\" -j DNAT --to-destination 10.77.0.11:8080"), "{v4}");
    // Docker is present: the FORWARD hook goes into DOCKER-USER, above its RETURN.
    assert!(v4.contains("-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD\n-A DOCKER-USER -j RETURN"), "{v4}");
    assert_eq!(
        v4.matches("-j PFSTATE-PREROUTING").count(),
        1,
        "exactly one jump"
    );
    assert_eq!(foreign(&v4), foreign_before, "foreign rules changed");
    for f in [
        "/etc/pfstate/host.yaml",
        "/etc/sysctl.d/90-pfstate.conf",
        "/etc/systemd/system/pfstate.service",
    ] {
        assert!(h.file(f).exists(), "{f} missing");
    }
    assert!(
        h.file("/etc/systemd/system/multi-user.target.wants/pfstate.service")
            .symlink_metadata()
            .is_ok(),
        "unit not enabled"
    );
    let yaml_mtime = std::fs::metadata(h.file("/etc/pfstate/host.yaml"))
        .unwrap()
        .modified()
        .unwrap();

    // Second apply: nothing written, anywhere.
    let again = h.run(&["apply", &a]);
    assert_eq!(again.code, 0, "{}", again.show());
    assert!(again.stdout.contains("in sync"), "{}", again.show());
    assert_eq!(h.restores(), 2, "a no-op apply ran iptables-restore");
    assert_eq!(h.save("iptables-save"), v4);
    assert_eq!(
        std::fs::metadata(h.file("/etc/pfstate/host.yaml"))
            .unwrap()
            .modified()
            .unwrap(),
        yaml_mtime
    );
    let plan = h.run(&["plan", &a]);
    assert_eq!(plan.code, 0, "{}", plan.show());
    let dry = h.run(&["apply", "--dry-run", &a]);
    assert_eq!(dry.code, 0, "{}", dry.show());

    // A change rewrites only what changed.
    let b = write_yaml(dir.path(), "b.yaml", &state_b());
    let dry = h.run(&["apply", "--dry-run", &b]);
    assert_eq!(dry.code, 2, "{}", dry.show());
    assert_eq!(h.restores(), 2, "dry-run wrote to the kernel");
    let change = h.run(&["apply", &b]);
    assert_eq!(change.code, 0, "{}", change.show());
    assert_eq!(h.restores(), 3, "only the IPv4 family changed");
    let v4b = h.save("iptables-save");
    assert!(!v4b.contains("pfstate:web"), "{v4b}");
    assert!(v4b.contains("--dport 82"), "{v4b}");
    assert_eq!(foreign(&v4b), foreign_before, "foreign rules changed");
    let json = h.run(&["--format", "json", "plan", &b]);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("json");
    assert_eq!(v["changed"], false, "{}", json.show());

    // status says in sync in one line.
    let st = h.run(&["status"]);
    assert_eq!(st.code, 0, "{}", st.show());
    assert!(st.stdout.lines().any(|l| l == "in sync"), "{}", st.show());

    // remove: back to the foreign rules only, files and unit gone.
    let rm = h.run(&["remove"]);
    assert_eq!(rm.code, 0, "{}", rm.show());
    let v4c = h.save("iptables-save");
    assert!(!v4c.contains("PFSTATE"), "{v4c}");
    assert!(!h.save("ip6tables-save").contains("PFSTATE"));
    assert_eq!(foreign(&v4c), foreign_before);
    for f in [
        "/etc/pfstate/host.yaml",
        "/etc/sysctl.d/90-pfstate.conf",
        "/etc/systemd/system/pfstate.service",
        "/etc/systemd/system/multi-user.target.wants/pfstate.service",
    ] {
        assert!(h.file(f).symlink_metadata().is_err(), "{f} left behind");
    }
    let rm2 = h.run(&["remove"]);
    assert_eq!(rm2.code, 0, "{}", rm2.show());
});

root_test!(failure_in_a_later_family_rolls_everything_back, || {
    let h = Host::new("rollback");
    let dir = tempfile::tempdir().unwrap();
    let a = write_yaml(dir.path(), "a.yaml", STATE_A);
    assert_eq!(h.run(&["apply", &a]).code, 0);
    let v4 = h.save("iptables-save");
    let v6 = h.save("ip6tables-save");
    let files: Vec<String> = ["/etc/pfstate/host.yaml", "/etc/sysctl.d/90-pfstate.conf"]
        .iter()
        .map(|f| std::fs::read_to_string(h.file(f)).unwrap())
        .collect();

    // B changes IPv4 and IPv6; the IPv6 restore fails after IPv4 committed.
    let b = write_yaml(
        dir.path(),
        "b.yaml",
        &state_b().replace("port: 80}, to: \"[fd00", "port: 8080}, to: \"[fd00"),
    );
    let r = h.run_env(
        &["apply", &b],
        &[("PFSTATE_TEST_FAIL", "ip6tables-restore")],
    );
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(
        r.stderr.contains("injected failure") && r.stderr.contains("restored"),
        "{}",
        r.show()
    );
    assert_eq!(h.save("iptables-save"), v4, "IPv4 was left half-applied");
    assert_eq!(h.save("ip6tables-save"), v6);
    let after: Vec<String> = ["/etc/pfstate/host.yaml", "/etc/sysctl.d/90-pfstate.conf"]
        .iter()
        .map(|f| std::fs::read_to_string(h.file(f)).unwrap())
        .collect();
    assert_eq!(after, files, "files changed by a failed apply");
    assert_eq!(
        h.run(&["plan", &a]).code,
        0,
        "host no longer matches the previous state"
    );
});

root_test!(
    new_state_on_empty_host_fails_cleanly_when_ipv4_restore_fails,
    || {
        let h = Host::new("failv4");
        let dir = tempfile::tempdir().unwrap();
        let a = write_yaml(dir.path(), "a.yaml", STATE_A);
        let before = h.save("iptables-save");
        let r = h.run_env(&["apply", &a], &[("PFSTATE_TEST_FAIL", "iptables-restore")]);
        assert_eq!(r.code, 1, "{}", r.show());
        assert_eq!(h.save("iptables-save"), before);
        assert!(!h.save("ip6tables-save").contains("PFSTATE"));
        assert_eq!(
            h.sysctl("net.ipv4.ip_forward"),
            "0",
            "sysctl written by a failed apply"
        );
        assert!(!h.file("/etc/pfstate/host.yaml").exists());
    }
);

root_test!(drift_is_shown_and_repaired, || {
    let h = Host::new("drift");
    let dir = tempfile::tempdir().unwrap();
    let a = write_yaml(dir.path(), "a.yaml", STATE_A);
    assert_eq!(h.run(&["apply", &a]).code, 0);
    let good = h.save("iptables-save");
    // Someone deletes the jump, adds a rule to an owned chain, and turns forwarding off.
    h.ns.exec(
        "iptables",
        &[
            "-t",
            "nat",
            "-D",
            "PREROUTING",
            "-m",
            "comment",
            "--comment",
            "pfstate",
            "-j",
            "PFSTATE-PREROUTING",
        ],
    )
    .unwrap();
    h.ns.exec("iptables", &["-A", "PFSTATE-FORWARD", "-j", "ACCEPT"])
        .unwrap();
    h.ns.set_sysctls(&[("net.ipv4.ip_forward", "0")]).unwrap();
    let plan = h.run(&["plan", &a]);
    assert_eq!(plan.code, 2, "{}", plan.show());
    assert!(
        plan.stdout
            .contains("+-A PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING"),
        "{}",
        plan.show()
    );
    assert!(
        plan.stdout.contains("--A PFSTATE-FORWARD -j ACCEPT"),
        "{}",
        plan.show()
    );
    assert!(
        plan.stdout.contains("+net.ipv4.ip_forward = 1"),
        "{}",
        plan.show()
    );
    let st = h.run(&["status"]);
    assert!(st.stdout.contains("drift"), "{}", st.show());
    assert_eq!(h.run(&["apply", &a]).code, 0);
    assert_eq!(h.save("iptables-save"), good);
    assert_eq!(h.sysctl("net.ipv4.ip_forward"), "1");
});

root_test!(
    uses_the_legacy_backend_when_the_host_rules_live_there,
    || {
        let h = Host::new("legacy");
        h.load("iptables-legacy-restore", FOREIGN_V4);
        let dir = tempfile::tempdir().unwrap();
        let a = write_yaml(
            dir.path(),
            "a.yaml",
            "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}\n",
        );
        let r = h.run(&["apply", &a]);
        assert_eq!(r.code, 0, "{}", r.show());
        let legacy = h.save("iptables-legacy-save");
        assert!(
            legacy.contains("-A PFSTATE-PREROUTING"),
            "rules not in the legacy tables:\n{legacy}"
        );
        assert!(
            legacy.contains("-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD"),
            "{legacy}"
        );
        assert!(
            !h.save("iptables-nft-save").contains("PFSTATE"),
            "rules went to nf_tables too"
        );
        let again = h.run(&["plan", &a]);
        assert_eq!(again.code, 0, "{}", again.show());
        assert_eq!(h.run(&["remove"]).code, 0);
        assert!(!h.save("iptables-legacy-save").contains("PFSTATE"));
    }
);

root_test!(concurrent_runs_do_not_interleave, || {
    let h = Host::new("lock");
    let dir = tempfile::tempdir().unwrap();
    let a = write_yaml(dir.path(), "a.yaml", STATE_A);
    let b = write_yaml(dir.path(), "b.yaml", &state_b());
    // Several applies of two states at once: each must run whole, so the end state is exactly
    // one of the two and a final plan of that one is clean.
    std::thread::scope(|s| {
        for i in 0..6 {
            let (h, f) = (&h, if i % 2 == 0 { &a } else { &b });
            s.spawn(move || {
                let r = h.run(&["apply", f]);
                assert_eq!(r.code, 0, "{}", r.show());
            });
        }
    });
    let clean_a = h.run(&["plan", &a]).code == 0;
    let clean_b = h.run(&["plan", &b]).code == 0;
    assert!(clean_a ^ clean_b, "end state is neither A nor B");
});

root_test!(
    an_unchanged_rule_set_is_not_read_twice_but_any_change_is_seen,
    || {
        let h = Host::new("gencache");
        let dir = tempfile::tempdir().unwrap();
        let a = write_yaml(dir.path(), "a.yaml", STATE_A);
        assert_eq!(h.run(&["apply", &a]).code, 0);
        // The apply wrote, so the next plan must read the kernel (both families) ...
        let before = h.saves();
        assert_eq!(h.run(&["plan", &a]).code, 0);
        assert_eq!(
            h.saves(),
            before + 2,
            "plan after a write did not read the rules"
        );
        // ... and the one after it, with nothing changed in between, need not.
        assert_eq!(h.run(&["plan", &a]).code, 0);
        assert_eq!(
            h.saves(),
            before + 2,
            "an unchanged rule set was read again"
        );
        // Any write moves the generation: a foreign rule is read (and left alone) ...
        h.ns.exec(
            "iptables",
            &["-A", "INPUT", "-s", "10.9.9.9", "-j", "ACCEPT"],
        )
        .unwrap();
        assert_eq!(h.run(&["plan", &a]).code, 0);
        assert_eq!(h.saves(), before + 4);
        // ... and drift in an owned chain is found, not hidden by the cache.
        h.ns.exec("iptables", &["-F", "PFSTATE-FORWARD"]).unwrap();
        let plan = h.run(&["plan", &a]);
        assert_eq!(plan.code, 2, "{}", plan.show());
        assert_eq!(h.run(&["apply", &a]).code, 0);
        assert_eq!(h.run(&["plan", &a]).code, 0);
    }
);
