//! Drift of every kind is detected and repaired exactly.

use super::*;

/// Disturb, see plan report it (each +/- line of its diff about `about`), repair, and find the
/// whole ruleset exactly as before the disturbance.
pub(super) fn drift_case(pf: &Pf, file: &Path, what: &str, about: &str, disturb: impl FnOnce()) {
    let ns = pf.ns;
    let before = ns.saves();
    disturb();
    let disturbed = ns.saves();
    let p = pf.assert_drift(file, what);
    if what.starts_with("jump above") || what.starts_with("jump below") {
        assert!(
            p.stdout.contains("# misplaced: rule "),
            "{what}: {}",
            p.show()
        );
    }
    for l in p.stdout.lines() {
        let changed = (l.starts_with('+') || l.starts_with('-'))
            && !l.starts_with("+++")
            && !l.starts_with("---");
        if changed {
            assert!(
                l.contains(about),
                "{what}: unrelated change `{l}`\n{}",
                p.show()
            );
        }
    }
    pf.apply(file);
    assert_same(&before, &ns.saves(), &format!("repair of {what}"));
    assert_untouched(ns, &disturbed, &["PFSTATE"], what);
    pf.assert_in_sync(file, what);
}

root_test!(drift_is_detected_and_repaired_exactly, || {
    let ns = Ns::new();
    ns.load("all-in-one.rules");
    let dir = tempfile::tempdir().unwrap();
    let pf = Pf {
        ns: &ns,
        root: dir.path().join("root"),
    };
    let a = write(dir.path(), "a.yaml", &state("PFSTATE"));
    pf.apply(&a);
    let jpre = "PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING";

    drift_case(&pf, &a, "missing jump", "PFSTATE-PREROUTING", || {
        ns.ipt_line("-t nat -D PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING");
    });
    drift_case(
        &pf,
        &a,
        "jump above the calico block",
        "PFSTATE-PREROUTING",
        || {
            ns.ipt_line("-t nat -D PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING");
            ns.ipt_line(
                "-t nat -I PREROUTING 1 -m comment --comment pfstate -j PFSTATE-PREROUTING",
            );
        },
    );
    assert!(ns.save(false).contains(&format!("-A {jpre}")));
    drift_case(
        &pf,
        &a,
        "jump below calico's trailing rule",
        "PFSTATE-POSTROUTING",
        || {
            ns.ipt_line(
                "-t nat -D POSTROUTING -m comment --comment pfstate -j PFSTATE-POSTROUTING",
            );
            ns.ipt_line(
                "-t nat -A POSTROUTING -m comment --comment pfstate -j PFSTATE-POSTROUTING",
            );
        },
    );
    drift_case(
        &pf,
        &a,
        "jump in FORWARD while DOCKER-USER exists",
        "PFSTATE-FORWARD",
        || {
            ns.ipt_line("-D DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD");
            ns.ipt_line("-I FORWARD 1 -m comment --comment pfstate -j PFSTATE-FORWARD");
        },
    );
    drift_case(&pf, &a, "duplicate jump", "PFSTATE-INPUT", || {
        ns.ipt_line("-A INPUT -m comment --comment pfstate -j PFSTATE-INPUT");
    });
    drift_case(&pf, &a, "deleted owned rule", "PFSTATE-FORWARD", || {
        ns.ipt_line("-D PFSTATE-FORWARD 1");
    });
    drift_case(&pf, &a, "edited owned rule", "PFSTATE-PREROUTING", || {
        let rules = chain_rules(&ns.save(false), "nat", "PFSTATE-PREROUTING");
        let edited = rules[0].replace("--dport 8080", "--dport 9999");
        let args: Vec<String> = edited
            .split_whitespace()
            .skip(2)
            .map(|s| s.trim_matches('"').to_string())
            .collect();
        let mut cmd = vec!["-t", "nat", "-R", "PFSTATE-PREROUTING", "1"];
        cmd.extend(args.iter().map(String::as_str));
        ns.ipt(&cmd);
    });
    drift_case(
        &pf,
        &a,
        "extra rule in an owned chain",
        "PFSTATE-INPUT",
        || {
            ns.ipt_line("-A PFSTATE-INPUT -j DROP");
        },
    );
    drift_case(&pf, &a, "canary gone", "PFSTATE-CANARY", || {
        ns.ipt_line("-X PFSTATE-CANARY");
    });
    drift_case(&pf, &a, "runtime sysctl", "ip_forward", || {
        ns.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    });
    assert_eq!(ns.sysctl("net.ipv4.ip_forward"), "1");
    drift_case(&pf, &a, "per-interface sysctl", "route_localnet", || {
        ns.sh(&["sysctl", "-qw", "net.ipv4.conf.lan0.route_localnet=0"]);
    });
});
