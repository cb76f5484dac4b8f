//! The recheck timer and the other managers' restarts, in the booted sandbox.

use super::*;

/// The recheck timer apply installed (`watch: false`), made to fire every second.
pub(super) fn install_recheck_timer(sb: &Sandbox) {
    put(
        sb,
        "/etc/systemd/system/pfstate-recheck.timer.d/test.conf",
        "[Timer]\nOnBootSec=\nOnActiveSec=0\nOnUnitActiveSec=1s\nAccuracySec=10ms\n",
    );
    sb.check(&["systemctl", "daemon-reload"]);
    sb.check(&["systemctl", "restart", "pfstate-recheck.timer"]);
}

sandbox_test!(
    plan_shows_drift_reload_reapplies_late_interface_gets_sysctl,
    || {
        let host_before = host_snapshot();
        let t_test = Instant::now();
        let sb = boot_and_apply("drift");

        // The unit file edited by hand: plan shows it as a unified diff of the file.
        sb.check(&[
            "sed",
            "-i",
            "s/^Description=.*/Description=edited by hand/",
            UNIT_FILE,
        ]);
        sb.check(&[
            "sh",
            "-c",
            &format!("echo 'net.ipv4.ip_forward = 0' >> {SYSCTL_CONF}"),
        ]);
        let (code, out) = plan_code(&sb);
        assert_eq!(code, 2, "{out}");
        for want in [
            &format!("--- {UNIT_FILE} (live)"),
            &format!("+++ {UNIT_FILE} (desired)"),
            "-Description=edited by hand",
            "+Description=pfstate: port forwarding and firewall rules of sandbox-gw",
            &format!("--- {SYSCTL_CONF} (live)"),
            "-net.ipv4.ip_forward = 0",
        ] {
            assert!(out.contains(want), "plan lacks {want:?}:\n{out}");
        }
        assert!(!out.contains("rules (live)"), "rules are in sync: {out}");

        // Disabled behind pfstate's back: plan says so.
        sb.check(&["systemctl", "disable", UNIT]);
        let (code, out) = plan_code(&sb);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains("unit pfstate.service: disabled -> enabled"),
            "{out}"
        );
        // apply puts both back.
        let fix = pf(&sb, &["apply", YAML_INSIDE]);
        assert!(fix.status.success(), "{}", text(&fix));
        assert_eq!(plan_code(&sb).0, 0);
        assert!(outside(&sb).is_enabled(UNIT).unwrap());
        assert!(
            show(&sb, "ExecReload", Some(UNIT)).contains(BIN),
            "no ExecReload"
        );

        // An interface that appears after boot.
        sb.check(&[
            "ip", "link", "add", "late0", "type", "veth", "peer", "name", "late0-p",
        ]);
        let key = "net.ipv4.conf.late0.route_localnet";
        assert_eq!(sysctl(&sb, key), "0");
        let (code, out) = plan_code(&sb);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(&format!("-{key} = 0\n")) && out.contains(&format!("+{key} = 1\n")));

        // 1. udev's path (99-systemd.rules, ACTION=="add", SUBSYSTEM=="net"): the same command.
        // It must not turn route_localnet on (only pfstate does, after the guard rule).
        sb.check(&[
            "/lib/systemd/systemd-sysctl",
            "--prefix=/net/ipv4/conf/late0",
            "--prefix=/net/ipv4/neigh/late0",
            "--prefix=/net/ipv6/conf/late0",
            "--prefix=/net/ipv6/neigh/late0",
        ]);
        assert_eq!(
            sysctl(&sb, key),
            "0",
            "systemd-sysctl turned route_localnet on"
        );
        assert_eq!(plan_code(&sb).0, 2);

        // 2. `systemctl reload pfstate` (ExecReload). The first apply also started the unit (a
        // queued start that finds the host in sync), so reload works before any reboot.
        sb.check(&["systemctl", "is-active", "--quiet", UNIT]);
        sb.check(&["sysctl", "-q", "-w", &format!("{key}=0")]);
        sb.check(&["systemctl", "reload", UNIT]);
        assert_eq!(sysctl(&sb, key), "1", "reload did not set it");

        // 3. Without udev and without the watcher (`watch: false`): apply swaps the watcher for
        // the recheck timer, which converges it.
        std::fs::write(
            sb.dir.join("share/host.yaml"),
            format!("{YAML}watch: false\n"),
        )
        .unwrap();
        let fix = pf(&sb, &["apply", YAML_INSIDE]);
        assert!(fix.status.success(), "{}", text(&fix));
        assert!(text(&fix).contains("unit pfstate-recheck.timer: disabled -> enabled"));
        assert!(outside(&sb).is_enabled("pfstate-recheck.timer").unwrap());
        assert!(!outside(&sb).is_enabled("pfstate-watch.service").unwrap());
        sb.check(&["sysctl", "-q", "-w", &format!("{key}=0")]);
        let t_timer = Instant::now();
        install_recheck_timer(&sb);
        let timer = wait_for("the recheck timer", Duration::from_secs(15), || {
            sysctl(&sb, key) == "1"
        });
        let t_install = t_timer.elapsed();
        // Once more, now that the timer runs on its own schedule: drift in a rule too.
        sb.check(&["sysctl", "-q", "-w", &format!("{key}=0")]);
        sb.check(&["iptables", "-w", "-t", "nat", "-D", "PFSTATE-OUTPUT", "1"]);
        let t_again = Instant::now();
        wait_for("the recheck timer, again", Duration::from_secs(15), || {
            sysctl(&sb, key) == "1" && plan_code(&sb).0 == 0
        });
        let again = t_again.elapsed();
        assert_eq!(
            show(&sb, "Result", Some("pfstate-recheck.service")),
            "success"
        );
        drop(sb);
        assert_host_untouched(&host_before);
        eprintln!(
            "[boot] late interface: route_localnet set by the recheck timer {:.3} s after installing \
         it ({:.3} s of that waiting), drift (sysctl + deleted rule) repaired {:.3} s after \
         the change; whole test {:.3} s",
            t_install.as_secs_f64(),
            timer.as_secs_f64(),
            again.as_secs_f64(),
            t_test.elapsed().as_secs_f64()
        );
    }
);
