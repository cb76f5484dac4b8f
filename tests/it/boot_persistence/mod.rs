//! The real pfstate binary against a real systemd (PID 1 in namespaces, tests/support/sandbox.sh):
//! `apply` inside the sandbox, "reboot" it on the same /etc and /var overlays with a fresh
//! network namespace, and check that the persisted state comes back by itself, early, next to
//! foreign rules that other units load; then `remove`, reboot, and nothing comes back.
//!
//! The second test covers what an operator sees between reboots: `plan` shows hand edits of the
//! managed files and a disabled unit as diffs, `systemctl reload pfstate` re-applies, and the
//! per-interface sysctl of an interface that appears after boot takes effect.
//!
//! How a per-interface sysctl reaches an interface created after boot: systemd-sysctl runs once,
//! early, and skips keys of missing interfaces; pfstate's boot unit sets runtime sysctls only
//! for interfaces present when it runs. On a host with udev, `99-systemd.rules` runs
//! `systemd-sysctl --prefix=/net/ipv4/conf/$name ...` on every new interface, which applies the
//! key from 90-pfstate.conf (checked here by running exactly that command: the sandbox has no
//! udev, and running one would re-trigger the host's devices). Without udev (containers, this
//! sandbox) the shipped `units/pfstate-recheck.timer` re-applies the state periodically, and
//! `systemctl reload pfstate` does it on demand; both are checked here.
//!
//! D-Bus calls from outside (the host test process to the sandbox's bus socket) use only calls
//! that do not resolve the caller's PID (notes/systemd-sandbox.md, pitfall 2): GetUnitFileState,
//! LoadUnit + ActiveState, Subscribe + RestartUnit.
//!
//! Skips (with a message on stderr) only when not root or when systemd is missing.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pfstate::host::ServiceManager;
use pfstate::host::systemd::DbusServiceManager;
use support::Sandbox;

mod harness;
mod recheck;
use harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const UNIT: &str = "pfstate.service";
const STATE: &str = "/etc/pfstate/host.yaml";
const SYSCTL_CONF: &str = "/etc/sysctl.d/90-pfstate.conf";
const UNIT_FILE: &str = "/etc/systemd/system/pfstate.service";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/pfstate.service";
const YAML_INSIDE: &str = "/run/pfstate-test/share/host.yaml";

/// v4 and v6 forwards, a `local` forward through an interface that exists at boot (eth1, made
/// by the harness before systemd starts) and one through an interface that appears only later
/// (late0), explicit sysctls whose values differ from the kernel defaults, an input filter.
const YAML: &str = "version: 1
host: sandbox-gw
interfaces: {lan: eth1, late: late0}
sysctl:
  net.ipv4.tcp_fin_timeout: 42
  net.ipv4.conf.default.log_martians: 1
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, snat: masquerade}
  - {name: web6, listen: {port: 80}, to: \"[fd00:77::11]:8080\"}
  - {name: admin, listen: {port: 8443}, to: 10.77.0.12:443, local: true, via: lan}
  - {name: late, listen: {port: 9000}, to: 10.88.0.12:9000, local: true, via: late}
filter:
  - {name: ssh, chain: input, proto: tcp, dport: 22, source: 10.0.0.0/8, action: accept}
";

/// Docker-like and admin rules another tool loads, early at boot (before pfstate, as
/// netfilter-persistent does). The FORWARD policy is DROP, as Docker sets it.
const FOREIGN_EARLY_RULES: &str = "*filter
:SBXFOREIGN-IN - [0:0]
:DOCKER-USER - [0:0]
-P FORWARD DROP
-A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -j SBXFOREIGN-IN
-A SBXFOREIGN-IN -p udp -m udp --dport 53 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
COMMIT
";

/// Rules loaded late, after pfstate (as dockerd or libvirtd do), in chains pfstate also hooks.
const FOREIGN_LATE_RULES: &str = "*nat
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
*filter
-I FORWARD 1 -o virbr0 -j ACCEPT
COMMIT
";
const FOREIGN_LATE_RULES_V6: &str = "*filter
:SBXFOREIGN6 - [0:0]
-A INPUT -j SBXFOREIGN6
-A SBXFOREIGN6 -p ipv6-icmp -j ACCEPT
COMMIT
";

sandbox_test!(apply_survives_reboot_and_remove_does_not, || {
    let host_before = host_snapshot();
    let t_test = Instant::now();
    let t_boot = Instant::now();
    let mut sb = boot_and_apply("persist");
    let first_boot_and_apply = t_boot.elapsed();

    // After apply: enabled (over D-Bus, from inside and from the host), files in the overlay.
    assert_eq!(
        sb.check(&["systemctl", "is-enabled", UNIT]).trim(),
        "enabled"
    );
    assert!(outside(&sb).is_enabled(UNIT).unwrap());
    for f in [STATE, SYSCTL_CONF, UNIT_FILE] {
        assert!(sb.root().join(&f[1..]).is_file(), "{f} missing inside");
    }
    let unit_text = std::fs::read_to_string(sb.root().join(&UNIT_FILE[1..])).unwrap();
    let exec = format!("ExecStart={BIN} apply --boot {STATE}\n");
    assert!(unit_text.contains(&exec), "{unit_text}");
    assert!(unit_text.contains(&format!("ExecReload={BIN} apply --boot {STATE}\n")));
    assert_eq!(
        std::fs::read_to_string(sb.root().join(&STATE[1..])).unwrap(),
        YAML
    );
    let conf = std::fs::read_to_string(sb.root().join(&SYSCTL_CONF[1..])).unwrap();
    // route_localnet is set by the unit after its guard rule, never by systemd-sysctl.
    assert!(
        !conf
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("route_localnet")),
        "{conf}"
    );
    for line in [
        "# net.ipv4.conf.eth1.route_localnet = 1 is set by pfstate.service after its guard rule, not here",
        "net.ipv4.ip_forward = 1",
        "net.ipv6.conf.all.forwarding = 1",
        "net.ipv4.tcp_fin_timeout = 42",
        "net.ipv4.conf.default.log_martians = 1",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} not in:\n{conf}");
    }
    let (code, out) = plan_code(&sb);
    assert_eq!(code, 0, "plan right after apply: {out}");
    let again = pf(&sb, &["apply", YAML_INSIDE]);
    assert!(
        again.status.success() && String::from_utf8_lossy(&again.stdout).contains("in sync"),
        "{}",
        text(&again)
    );
    let (v4_before, v6_before) = saves(&sb);
    assert!(v4_before.contains("-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD"));
    let (foreign4, foreign6) = (foreign(&v4_before), foreign(&v6_before));
    assert!(foreign4.contains("-A INPUT -j SBXFOREIGN-IN"), "{foreign4}");
    assert!(foreign6.contains("-A INPUT -j SBXFOREIGN6"), "{foreign6}");
    // Kernel state that only lives in this boot: must be gone after the reboot.
    sb.check(&["iptables", "-w", "-N", "TEST-RUNTIME-ONLY"]);

    // Halt: the files are plain files in the overlay's upper dir, not on the host.
    sb.stop();
    let upper = sb.dir.join("ovl/etc/upper");
    for f in [STATE, SYSCTL_CONF, UNIT_FILE, WANTS_LINK] {
        assert!(
            upper.join(&f[5..]).symlink_metadata().is_ok(),
            "{f} not in the overlay"
        );
    }
    assert_host_untouched(&host_before);

    // Boot again: fresh netns, same /etc.
    let t_reboot = Instant::now();
    sb.reboot();
    let boot_wall = t_reboot.elapsed();
    let (code, out) = plan_code(&sb);
    let boot_to_plan_clean = t_reboot.elapsed();
    assert_eq!(
        code,
        0,
        "plan after reboot: {out}\nconsole:\n{}",
        sb.console_tail()
    );
    // pfstate inside reached systemd over the sandbox's system bus (else it warns).
    assert!(!out.contains("cannot ask systemd"), "{out}");
    let (v4, v6) = saves(&sb);
    assert!(!v4.contains("TEST-RUNTIME-ONLY"), "not a fresh netns");
    for chain in [
        ":PFSTATE-PREROUTING",
        ":PFSTATE-OUTPUT",
        ":PFSTATE-POSTROUTING",
        ":PFSTATE-INPUT",
        ":PFSTATE-FORWARD",
    ] {
        assert!(v4.contains(chain), "{chain} missing:\n{v4}");
    }
    assert!(v6.contains("--to-destination [fd00:77::11]:8080"), "{v6}");
    // Foreign rules: the same as before the reboot, pfstate's jumps where they were.
    assert_eq!(foreign(&v4), foreign4);
    assert_eq!(foreign(&v6), foreign6);
    assert!(v4.contains("-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD"));
    // Sysctls (the host's stay as they were, checked at the end).
    for (key, want) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv6.conf.all.forwarding", "1"),
        ("net.ipv4.conf.eth1.route_localnet", "1"),
        ("net.ipv4.tcp_fin_timeout", "42"),
        ("net.ipv4.conf.default.log_martians", "1"),
    ] {
        assert_eq!(sysctl(&sb, key), want, "{key} after reboot");
    }

    // The unit: active (asked from the host over the bus), succeeded, early enough.
    let dbus = outside(&sb);
    assert_eq!(dbus.active_state(UNIT).unwrap(), "active");
    assert!(dbus.is_enabled(UNIT).unwrap());
    assert_eq!(show(&sb, "Result", Some(UNIT)), "success");
    let userspace = mono(&sb, "UserspaceTimestampMonotonic", None);
    let ours_start = mono(&sb, "ExecMainStartTimestampMonotonic", Some(UNIT));
    let ours = mono(&sb, "ActiveEnterTimestampMonotonic", Some(UNIT));
    let pre = mono(
        &sb,
        "ActiveEnterTimestampMonotonic",
        Some("network-pre.target"),
    );
    let sysctl_done = mono(
        &sb,
        "ActiveEnterTimestampMonotonic",
        Some("systemd-sysctl.service"),
    );
    let early = mono(
        &sb,
        "ActiveEnterTimestampMonotonic",
        Some("sbx-foreign-early.service"),
    );
    let late_start = mono(
        &sb,
        "ExecMainStartTimestampMonotonic",
        Some("sbx-foreign-late.service"),
    );
    assert!(
        pre > 0 && ours > 0 && ours <= pre,
        "pfstate active at {ours}, network-pre.target at {pre}"
    );
    assert!(
        sysctl_done <= ours_start,
        "pfstate started before systemd-sysctl finished"
    );
    assert!(
        early <= ours_start && ours <= late_start,
        "foreign units out of order"
    );

    // Drift repaired from outside: delete an owned rule inside, RestartUnit from the host.
    sb.check(&[
        "iptables",
        "-w",
        "-t",
        "nat",
        "-D",
        "PFSTATE-PREROUTING",
        "1",
    ]);
    sb.check(&["ip6tables", "-w", "-D", "PFSTATE-FORWARD", "1"]);
    assert_eq!(plan_code(&sb).0, 2);
    let t_restart = Instant::now();
    dbus.restart(UNIT).unwrap();
    let restart = t_restart.elapsed();
    let (code, out) = plan_code(&sb);
    assert_eq!(code, 0, "plan after RestartUnit from the host: {out}");
    let (v4_now, v6_now) = saves(&sb);
    assert_eq!((norm(&v4_now), norm(&v6_now)), (norm(&v4), norm(&v6)));
    // And `systemctl reload pfstate` (ExecReload) inside.
    sb.check(&["iptables", "-w", "-D", "PFSTATE-INPUT", "3"]);
    assert_eq!(plan_code(&sb).0, 2);
    sb.check(&["systemctl", "reload", UNIT]);
    assert_eq!(plan_code(&sb).0, 0);
    assert_eq!(dbus.active_state(UNIT).unwrap(), "active");
    drop(dbus);

    // Remove: rules, files and the unit go; the foreign rules stay.
    let out = pf(&sb, &["remove"]);
    assert!(out.status.success(), "remove: {}", text(&out));
    let (v4, v6) = saves(&sb);
    assert!(
        !v4.contains("PFSTATE") && !v6.contains("PFSTATE"),
        "{v4}{v6}"
    );
    assert_eq!(foreign(&v4), foreign4);
    assert_eq!(foreign(&v6), foreign6);
    assert!(!outside(&sb).is_enabled(UNIT).unwrap());
    for f in [STATE, SYSCTL_CONF, UNIT_FILE, WANTS_LINK] {
        assert!(
            sb.root().join(&f[1..]).symlink_metadata().is_err(),
            "{f} left after remove"
        );
    }

    // Reboot: nothing comes back.
    sb.reboot();
    let (v4, v6) = saves(&sb);
    assert!(
        !v4.contains("PFSTATE") && !v6.contains("PFSTATE"),
        "{v4}{v6}"
    );
    assert_eq!(
        foreign(&v4),
        foreign4,
        "foreign rules after the last reboot"
    );
    assert_eq!(foreign(&v6), foreign6);
    for f in [STATE, SYSCTL_CONF, UNIT_FILE, WANTS_LINK] {
        assert!(
            sb.root().join(&f[1..]).symlink_metadata().is_err(),
            "{f} is back"
        );
    }
    assert_eq!(show(&sb, "LoadState", Some(UNIT)), "not-found");
    assert!(!outside(&sb).is_enabled(UNIT).unwrap());
    assert_eq!(sysctl(&sb, "net.ipv4.tcp_fin_timeout"), "60");
    assert_eq!(sysctl(&sb, "net.ipv6.conf.all.forwarding"), "0");
    assert_eq!(sysctl(&sb, "net.ipv4.conf.eth1.route_localnet"), "0");
    sb.stop();
    assert_host_untouched(&host_before);

    eprintln!(
        "[boot] figures: first boot + foreign units + apply {:.3} s; reboot (halt + boot to \
         'running') {:.3} s; reboot start -> `plan` clean {:.3} s; systemd userspace start -> \
         pfstate.service active {:.3} s (ExecMainStart at {:.3} s, network-pre.target at \
         {:.3} s); RestartUnit from the host {:.3} s; whole test {:.3} s",
        first_boot_and_apply.as_secs_f64(),
        boot_wall.as_secs_f64(),
        boot_to_plan_clean.as_secs_f64(),
        (ours - userspace) as f64 / 1e6,
        (ours_start - userspace) as f64 / 1e6,
        (pre - userspace) as f64 / 1e6,
        restart.as_secs_f64(),
        t_test.elapsed().as_secs_f64()
    );
});
