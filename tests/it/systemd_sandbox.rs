//! Boot tests against a real systemd (PID 1 in namespaces, tests/support/sandbox.sh): the unit
//! pfstate renders, enabled through `DbusServiceManager`, really runs at the next boot, after
//! systemd-sysctl applied pfstate's sysctl.d file (including a key for an interface whose name
//! has a dot), and before network-pre.target.
//!
//! The D-Bus calls run in a child process (this test binary re-executed with
//! `PFSTATE_SANDBOX_HELPER` set, see `helper`), either on the host with
//! `DBUS_SYSTEM_BUS_ADDRESS` pointing at the sandbox's bus — exactly how the real binary finds its
//! bus — or inside the sandbox through nsenter, using the default system bus address. A child
//! keeps the test process's environment untouched (cargo runs tests on parallel threads).
//! Only calls that do not resolve the caller's PID are made from the host: the host process has
//! no PID in the sandbox's pid namespace and systemd 252 aborts on `GetUnitByPID(0)`-style
//! lookups (notes/systemd-sandbox.md, pitfall 2). Reload, EnableUnitFiles, DisableUnitFiles,
//! GetUnitFileState, LoadUnit(name), RestartUnit and Subscribe are safe.
//!
//! Skips (with a message on stderr) only when not root or when systemd is missing.

use crate::support;

use std::process::{Command, Output};
use std::time::Instant;

use pfstate::host::ServiceManager;
use pfstate::host::fs::{FILE_MODE, Root, write_if_changed};
use pfstate::host::systemd::{DbusServiceManager, OfflineServiceManager};
use pfstate::render::files::sysctl_d::{SYSCTL_CONF_PATH, SysctlEntry, render_sysctl_conf};
use pfstate::render::files::unit::{STATE_PATH, UNIT_NAME, UNIT_PATH, UnitParams, render_unit};
use support::Sandbox;

const HELPER_ENV: &str = "PFSTATE_SANDBOX_HELPER";

/// Entry point of the re-executed child: does nothing in a normal test run.
#[test]
fn helper() {
    let Ok(action) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (verb, unit) = action.split_once(' ').expect("VERB UNIT");
    let sm = DbusServiceManager::system().unwrap_or_else(|e| panic!("connect: {e}"));
    let result = match verb {
        "enable" => sm
            .reload()
            .and_then(|()| sm.enable(unit))
            .map(|()| "ok".to_string()),
        "disable" => sm.disable(unit).map(|()| "ok".to_string()),
        "is-enabled" => sm.is_enabled(unit).map(|b| b.to_string()),
        "active-state" => sm.active_state(unit),
        "restart" => sm.restart(unit).map(|()| "ok".to_string()),
        v => panic!("unknown helper verb {v}"),
    };
    match result {
        Ok(v) => println!("HELPER-RESULT {v}"),
        Err(e) => println!("HELPER-ERROR {e}"),
    }
}

fn helper_cmd() -> Vec<String> {
    vec![
        std::env::current_exe().unwrap().display().to_string(),
        "--exact".into(),
        // One test binary: the helper's test name carries its module path (minus the crate).
        format!(
            "{}::helper",
            module_path!().split_once("::").map_or("", |(_, m)| m)
        ),
        "--nocapture".into(),
        "--test-threads=1".into(),
        "--quiet".into(),
    ]
}

fn helper_result(out: &Output, what: &str) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper {what} crashed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in stdout.lines() {
        if let Some(v) = line.strip_prefix("HELPER-RESULT ") {
            return Ok(v.to_string());
        }
        if let Some(e) = line.strip_prefix("HELPER-ERROR ") {
            return Err(e.to_string());
        }
    }
    panic!("helper {what} printed no result: {stdout}");
}

/// A D-Bus call from the host, with `DBUS_SYSTEM_BUS_ADDRESS` set to the sandbox's bus.
fn from_host(sb: &Sandbox, action: &str) -> Result<String, String> {
    let argv = helper_cmd();
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .env(HELPER_ENV, action)
        .env("DBUS_SYSTEM_BUS_ADDRESS", sb.bus())
        .output()
        .unwrap();
    helper_result(&out, action)
}

/// A D-Bus call from inside the sandbox (default system bus address).
fn from_inside(sb: &Sandbox, action: &str) -> Result<String, String> {
    let argv = helper_cmd();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = sb.exec_with(&argv, &[(HELPER_ENV, action)], None);
    helper_result(&out, action)
}

/// Stands in for pfstate in the rendered unit: records its arguments and the sysctl it finds,
/// and creates an iptables chain in the sandbox's netns (idempotently, so a restart succeeds).
const FAKE_PFSTATE: &str = r#"#!/bin/sh
set -e
echo "args: $* route_localnet: $(cat /proc/sys/net/ipv4/conf/eth0.100/route_localnet)" >> /run/pfstate-boot.ran
/usr/sbin/iptables -w -n -L PFSTATE-SBX-TEST >/dev/null 2>&1 || /usr/sbin/iptables -w -N PFSTATE-SBX-TEST
"#;
const FAKE_PATH_INSIDE: &str = "/run/pfstate-test/share/fake-pfstate";

const IFACE: &str = "eth0.100";

fn install_files(sb: &Sandbox) -> UnitParams {
    // The stand-in binary, through the share dir (bound at /run/pfstate-test/share inside).
    let fake = sb.dir.join("share/fake-pfstate");
    std::fs::write(&fake, FAKE_PFSTATE).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    // The unit, written from inside the sandbox (lands in its /etc overlay).
    let params = UnitParams {
        binary: FAKE_PATH_INSIDE.into(),
        state_path: STATE_PATH.into(),
        host_label: Some(r#"sandbox "<&>" 100%"#.into()),
    };
    let unit = render_unit(&params);
    let out = sb.exec_with(
        &[
            "sh",
            "-c",
            &format!("mkdir -p /etc/systemd/system && cat > {UNIT_PATH}"),
        ],
        &[],
        Some(unit.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // State and sysctl.d file with the atomic writer, through /proc/PID/root (the sandbox's
    // mounts resolve it, so this also lands in the overlay, never in the host's /etc).
    let root = Root::under(sb.root());
    let conf = render_sysctl_conf(&[SysctlEntry::new(
        ["net", "ipv4", "conf", IFACE, "route_localnet"],
        "1",
    )])
    .unwrap();
    assert!(conf.contains("net/ipv4/conf/eth0.100/route_localnet = 1"));
    assert!(write_if_changed(&root.path(SYSCTL_CONF_PATH), conf.as_bytes(), FILE_MODE).unwrap());
    assert!(!write_if_changed(&root.path(SYSCTL_CONF_PATH), conf.as_bytes(), FILE_MODE).unwrap());
    assert!(write_if_changed(&root.path(STATE_PATH), b"# test state\n", FILE_MODE).unwrap());
    params
}

fn host_unchanged() {
    assert!(
        !std::path::Path::new(UNIT_PATH).exists(),
        "the host got {UNIT_PATH}"
    );
    assert!(!std::path::Path::new(SYSCTL_CONF_PATH).exists());
    let save = Command::new("iptables-save").output().unwrap();
    assert!(!String::from_utf8_lossy(&save.stdout).contains("PFSTATE-SBX-TEST"));
}

sandbox_test!(enabled_unit_runs_at_next_boot, || {
    let t0 = Instant::now();
    let mut sb = Sandbox::boot("dbus", IFACE);
    let first_boot = t0.elapsed();
    let route_localnet = format!("/proc/sys/net/ipv4/conf/{IFACE}/route_localnet");

    install_files(&sb);
    assert_eq!(sb.check(&["cat", &route_localnet]).trim(), "0");

    // Not enabled yet, seen from both sides.
    assert_eq!(
        from_host(&sb, "is-enabled pfstate.service"),
        Ok("false".into())
    );
    assert_eq!(
        from_inside(&sb, "is-enabled pfstate.service"),
        Ok("false".into())
    );
    assert_eq!(
        from_host(&sb, "is-enabled no-such.service"),
        Ok("false".into())
    );

    // Enable from the host over the sandbox's bus.
    assert_eq!(from_host(&sb, "enable pfstate.service"), Ok("ok".into()));
    assert_eq!(
        from_host(&sb, "is-enabled pfstate.service"),
        Ok("true".into())
    );
    assert_eq!(
        from_inside(&sb, "is-enabled pfstate.service"),
        Ok("true".into())
    );
    let link = sb.check(&[
        "readlink",
        "/etc/systemd/system/multi-user.target.wants/pfstate.service",
    ]);
    assert_eq!(link.trim(), UNIT_PATH);
    // systemd parsed the quoted label and the escaped `%`.
    let desc = sb.check(&[
        "systemctl",
        "show",
        "-p",
        "Description",
        "--value",
        UNIT_NAME,
    ]);
    assert_eq!(
        desc.trim(),
        r#"pfstate: port forwarding and firewall rules of sandbox "<&>" 100%"#
    );

    // Control: runtime-only state must not survive the reboot; the unit has not run yet.
    sb.check(&["iptables", "-w", "-N", "TEST-RUNTIME-ONLY"]);
    assert!(
        !sb.exec(&["test", "-e", "/run/pfstate-boot.ran"])
            .status
            .success()
    );

    let reboot = sb.reboot();

    // The unit ran at boot, after systemd-sysctl applied the slash-separated key.
    let ran = sb.check(&["cat", "/run/pfstate-boot.ran"]);
    assert_eq!(
        ran.trim(),
        "args: apply --boot /etc/pfstate/host.yaml route_localnet: 1",
        "console:\n{}",
        sb.console_tail()
    );
    let rules = sb.check(&["iptables-save"]);
    assert!(rules.contains(":PFSTATE-SBX-TEST"), "{rules}");
    assert!(
        !rules.contains("TEST-RUNTIME-ONLY"),
        "not a fresh netns: {rules}"
    );
    assert_eq!(sb.check(&["cat", &route_localnet]).trim(), "1");

    // Ordered before network-pre.target.
    let show = |unit: &str| {
        sb.check(&[
            "systemctl",
            "show",
            "-p",
            "ActiveEnterTimestampMonotonic",
            "--value",
            unit,
        ])
        .trim()
        .parse::<u64>()
        .unwrap()
    };
    let (ours, pre) = (show(UNIT_NAME), show("network-pre.target"));
    assert!(
        ours > 0 && ours <= pre,
        "pfstate {ours} vs network-pre {pre}"
    );

    // State and restart over the bus from the host.
    assert_eq!(
        from_host(&sb, "active-state pfstate.service"),
        Ok("active".into())
    );
    let t_restart = Instant::now();
    assert_eq!(from_host(&sb, "restart pfstate.service"), Ok("ok".into()));
    let restart = t_restart.elapsed();
    assert_eq!(
        sb.check(&["cat", "/run/pfstate-boot.ran"]).lines().count(),
        2
    );
    assert_eq!(
        from_inside(&sb, "active-state pfstate.service"),
        Ok("active".into())
    );

    // Disable from the host; PID 1 survived every host-side call.
    assert_eq!(from_host(&sb, "disable pfstate.service"), Ok("ok".into()));
    assert_eq!(
        from_inside(&sb, "is-enabled pfstate.service"),
        Ok("false".into())
    );
    assert_eq!(
        sb.check(&["systemctl", "is-system-running"]).trim(),
        "running",
        "console:\n{}",
        sb.console_tail()
    );

    sb.stop();
    // After halt the overlay upper dir is a plain tree: the unit is there, the link is gone.
    let upper = sb.dir.join("ovl/etc/upper");
    assert!(upper.join("systemd/system/pfstate.service").is_file());
    assert!(
        !upper
            .join("systemd/system/multi-user.target.wants/pfstate.service")
            .exists()
    );
    host_unchanged();
    eprintln!(
        "[sandbox] timings: first boot {:.3} s, reboot (halt + boot) {:.3} s, \
         restart job {:.3} s, whole test {:.3} s",
        first_boot.as_secs_f64(),
        reboot.as_secs_f64(),
        restart.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
});

// `pfstate --root /proc/PID/root`: offline enable (symlinks written through the sandbox's
// root, no D-Bus) is enough for the unit to run at the next boot.
sandbox_test!(offline_enable_through_root_runs_at_next_boot, || {
    let t0 = Instant::now();
    let mut sb = Sandbox::boot("offline", IFACE);
    install_files(&sb);
    let sm = OfflineServiceManager::new(sb.root());
    sm.reload().unwrap();
    sm.enable(UNIT_NAME).unwrap();
    assert!(sm.is_enabled(UNIT_NAME).unwrap());
    // systemd inside agrees (GetUnitFileState reads the same files).
    assert_eq!(
        from_inside(&sb, "is-enabled pfstate.service"),
        Ok("true".into())
    );

    sb.reboot();
    let ran = sb.check(&["cat", "/run/pfstate-boot.ran"]);
    assert_eq!(
        ran.trim(),
        "args: apply --boot /etc/pfstate/host.yaml route_localnet: 1",
        "console:\n{}",
        sb.console_tail()
    );
    assert!(sb.check(&["iptables-save"]).contains(":PFSTATE-SBX-TEST"));

    let sm = OfflineServiceManager::new(sb.root());
    sm.disable(UNIT_NAME).unwrap();
    assert_eq!(
        from_inside(&sb, "is-enabled pfstate.service"),
        Ok("false".into())
    );
    sb.stop();
    host_unchanged();
    eprintln!(
        "[sandbox] offline test: {:.3} s",
        t0.elapsed().as_secs_f64()
    );
});
