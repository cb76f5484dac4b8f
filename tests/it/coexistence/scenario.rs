//! The fixture scenario: apply, the other manager's events, re-apply, remove.

use super::*;

/// Which events each fixture's foreign managers produce.
pub(super) fn events(fixture: &str) -> &'static [&'static str] {
    match fixture {
        "docker.rules" => &["docker-restart"],
        "libvirt.rules" => &["libvirt-restart"],
        "microk8s.rules" => &["felix-refresh", "kube-proxy-resync", "kubelet-canary-loss"],
        "ufw.rules" => &[],
        "all-in-one.rules" => &[
            "docker-restart",
            "felix-refresh",
            "kube-proxy-resync",
            "libvirt-restart",
            "kubelet-canary-loss",
            "docker-restart+felix-refresh",
        ],
        _ => unreachable!(),
    }
}

pub(super) fn calico(fixture: &str) -> bool {
    matches!(fixture, "microk8s.rules" | "all-in-one.rules")
}

/// Felix's next refresh must find nothing to move: pfstate is where Felix wants it.
pub(super) fn assert_felix_content(ns: &Ns, fixture: &str, step: &str) {
    if !calico(fixture) {
        return;
    }
    let before = ns.saves();
    ns.event("felix-refresh", None);
    assert_same(&before, &ns.saves(), &format!("{step}: Felix fought back"));
}

pub(super) fn scenario(fixture: &str) {
    let t0 = std::time::Instant::now();
    let ns = Ns::new();
    ns.load(fixture);
    let dir = tempfile::tempdir().unwrap();
    let pf = Pf {
        ns: &ns,
        root: dir.path().join("root"),
    };
    let a = write(dir.path(), "a.yaml", &state("PFSTATE"));
    let base = ns.saves();

    // apply
    let p = pf.plan(&a);
    assert_eq!(p.code, 2, "{}", p.show());
    if fixture == "docker.rules" || fixture == "all-in-one.rules" {
        assert!(
            p.stderr.contains("forward `web` (tcp port 8080) is also claimed by a Docker published port in nat chain DOCKER"),
            "{}",
            p.show()
        );
    }
    if calico(fixture) {
        assert!(
            p.stderr
                .contains("forward `np` (tcp port 31080) is also claimed by a Kubernetes NodePort"),
            "{}",
            p.show()
        );
    }
    let r = pf.apply(&a);
    if fixture == "docker.rules" {
        assert!(r.stderr.contains("Docker published port"), "{}", r.show());
    }
    assert_untouched(&ns, &base, &["PFSTATE"], "apply");
    // The shared oracle agrees: check-untouched.sh against the fixture file itself, both families.
    must(
        Command::new(format!("{FIXTURES}/check-untouched.sh"))
            .args([ns.name.as_str(), &format!("{FIXTURES}/{fixture}")]),
    );
    must(
        Command::new(format!("{FIXTURES}/check-untouched.sh"))
            .args([ns.name.as_str(), &format!("{FIXTURES}/ipv6-foreign.rules")])
            .env("IPT_SAVE", "ip6tables-save"),
    );
    let applied = ns.saves();
    assert_placement(&applied[0], fixture);
    assert!(
        applied[1].contains("-j PFSTATE-PREROUTING"),
        "{}",
        applied[1]
    );
    assert_eq!(ns.sysctl("net.ipv4.ip_forward"), "1");
    assert_felix_content(&ns, fixture, "apply");

    // re-apply: in sync, nothing written
    let r = pf.apply(&a);
    assert!(r.stdout.contains("in sync"), "{}", r.show());
    assert_same(&applied, &ns.saves(), "re-apply");
    pf.assert_in_sync(&a, "after re-apply");

    // Foreign events, each followed by the check: plan reports drift exactly when the event
    // disturbed pfstate's own chains or jumps; apply repairs it touching nothing foreign; and
    // the foreign manager (Felix) finds nothing to move afterwards.
    let snapshot = write(dir.path(), "rules.v4", &ns.save(false));
    let fixture_file = Path::new(FIXTURES).join(fixture);
    let mut disturbing = Vec::new();
    for ev in events(fixture).iter().chain(&[
        "persistent-reload-snapshot",
        "firewalld-reload",
        "persistent-reload-fixture",
    ]) {
        let before = ns.saves();
        match *ev {
            "persistent-reload-snapshot" => ns.event("persistent-reload", Some(&snapshot)),
            "persistent-reload-fixture" => ns.event("persistent-reload", Some(&fixture_file)),
            "kubelet-canary-loss" => {
                // kubelet's KUBE-FIREWALL jump lost; kube-proxy/kubelet prepend it again at
                // position 1, then Felix puts cali-INPUT back on top.
                ns.ipt(&["-D", "INPUT", "-j", "KUBE-FIREWALL"]);
                ns.event("kube-proxy-resync", None);
                ns.event("felix-refresh", None);
            }
            "docker-restart+felix-refresh" => {
                // The regression of the notes: FORWARD becomes cali-FORWARD, DOCKER-USER,
                // DOCKER-FORWARD, ...; a FORWARD-level jump would now sit below DOCKER-FORWARD.
                ns.event("docker-restart", None);
                ns.event("felix-refresh", None);
                let fwd = chain_rules(&ns.save(false), "filter", "FORWARD");
                assert!(fwd[0].ends_with("-j cali-FORWARD"), "{fwd:#?}");
                assert!(fwd[1].ends_with("-j DOCKER-USER"), "{fwd:#?}");
            }
            e => ns.event(e, None),
        }
        let after = ns.saves();
        if own(&before[0]) == own(&after[0]) && own(&before[1]) == own(&after[1]) {
            pf.assert_in_sync(&a, &format!("after {ev} (pfstate undisturbed)"));
            let r = pf.apply(&a);
            assert!(r.stdout.contains("in sync"), "{ev}: {}", r.show());
            assert_same(&after, &ns.saves(), &format!("apply after {ev}"));
        } else {
            disturbing.push(*ev);
            pf.assert_drift(&a, &format!("after {ev} (pfstate disturbed)"));
            pf.apply(&a);
            assert_untouched(&ns, &after, &["PFSTATE"], &format!("repair after {ev}"));
            pf.assert_in_sync(&a, &format!("after repairing {ev}"));
            if *ev != "firewalld-reload" {
                // (after a flush DOCKER-USER is gone, so the FORWARD hook differs on purpose)
                let now = ns.saves();
                assert_eq!(own(&applied[0]), own(&now[0]), "{ev}: repaired IPv4 state");
                assert_eq!(own(&applied[1]), own(&now[1]), "{ev}: repaired IPv6 state");
            }
        }
        if calico(fixture) {
            // Felix's next refresh (it may reorder its rules against Docker's), then pfstate
            // is still in sync, and a further refresh finds nothing of pfstate's to move.
            ns.event("felix-refresh", None);
            pf.assert_in_sync(&a, &format!("{ev}, then felix-refresh"));
            assert_felix_content(&ns, fixture, ev);
        }
    }
    assert_eq!(
        disturbing,
        ["firewalld-reload", "persistent-reload-fixture"],
        "{fixture}: events that disturb pfstate"
    );
    assert_placement(&ns.save(false), fixture);
    let base = ns.saves();

    // change a forward
    let b = write(
        dir.path(),
        "b.yaml",
        &state("PFSTATE").replace("to: 10.99.0.3, via", "to: 10.99.0.5, via"),
    );
    pf.apply(&b);
    assert_untouched(&ns, &base, &["PFSTATE"], "change");
    let changed = ns.saves();
    assert!(changed[0].contains("--to-destination 10.99.0.5"));
    assert!(!changed[0].contains("--to-destination 10.99.0.3"));
    assert_placement(&changed[0], fixture);
    let r = pf.apply(&b);
    assert!(r.stdout.contains("in sync"), "{}", r.show());
    assert_same(&changed, &ns.saves(), "re-apply after change");
    assert_felix_content(&ns, fixture, "change");

    // remove: exactly the foreign rules are left
    pf.ok(&["remove"]);
    let after = ns.saves();
    assert_untouched(&ns, &base, &["PFSTATE"], "remove");
    for s in &after {
        assert!(!s.contains("PFSTATE"), "left behind:\n{s}");
    }
    assert_eq!(foreign(&after[0], &[]), foreign(&base[0], &["PFSTATE"]));
    eprintln!("{fixture}: {:.1?}", t0.elapsed());
}
