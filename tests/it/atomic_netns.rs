//! All or nothing in a real network namespace, where the point is the kernel, the file system
//! and signals (issue 12): a signal or a SIGKILL in the middle of the IPv6 restore (a PATH shim
//! in front of `ip6tables-restore` sends it to pfstate), and a read-only or full /etc/pfstate
//! (mounts in a private mount namespace).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::{BIN, Host};
use pfstate::lab::skip_unless_root;

const A: &str = "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: \"10.0.0.2:8080\"}\n  - {name: web6, listen: {port: 80}, to: \"[fd00::2]:8080\"}\n";

fn state_b() -> String {
    A.replace("port: 80", "port: 81")
}

/// Everything apply may change: both families' rules, the sysctls, the files.
fn snapshot(h: &Host) -> (String, String, String, String, Vec<Option<String>>) {
    let files = [
        "/etc/pfstate/host.yaml",
        "/etc/sysctl.d/90-pfstate.conf",
        "/etc/systemd/system/pfstate.service",
    ]
    .map(|t| std::fs::read_to_string(h.file(t)).ok());
    (
        h.save("iptables-save"),
        h.save("ip6tables-save"),
        h.sysctl("net.ipv4.ip_forward"),
        h.sysctl("net.ipv6.conf.all.forwarding"),
        files.into(),
    )
}

/// A directory with an `ip6tables-restore` that runs `action` (pfstate is `$PPID`) first.
fn shim(action: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let real = common::which("ip6tables-restore");
    let path = dir.path().join("ip6tables-restore");
    let script = format!("#!/bin/sh\n{action}\nexec {} \"$@\"\n", real.display());
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn path_with(dir: &tempfile::TempDir) -> String {
    format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn write_state(h: &Host, name: &str, text: &str) -> String {
    common::write_yaml(h.shim.path(), name, text)
}

/// SIGTERM (systemctl stop), SIGINT and SIGHUP while the IPv6 half is being written: the
/// restore finishes, pfstate puts the IPv4 half back and exits 1; nothing is left.
#[test]
fn a_signal_during_apply_rolls_back_before_exiting() {
    if skip_unless_root("a_signal_during_apply_rolls_back_before_exiting") {
        return;
    }
    for signal in ["TERM", "INT", "HUP"] {
        let h = Host::new("atomsig");
        let a = write_state(&h, "a.yaml", A);
        assert_eq!(h.run(&["apply", &a]).code, 0);
        let before = snapshot(&h);
        let shim = shim(&format!("kill -{signal} $PPID"));
        let b = write_state(&h, "b.yaml", &state_b());
        let r = h.run_env(&["apply", &b], &[("PATH", &path_with(&shim))]);
        assert_eq!(r.code, 1, "SIG{signal}: {}", r.show());
        assert!(
            r.stderr.contains(&format!("interrupted by SIG{signal}")),
            "{}",
            r.show()
        );
        assert!(
            r.stderr.contains("the previous state was restored"),
            "{}",
            r.show()
        );
        assert_eq!(snapshot(&h), before, "SIG{signal}: {}", r.show());
        assert!(!h.file("/var/lib/pfstate/transaction.json").exists());
    }
}

/// The same for remove: a SIGTERM during its IPv6 restore puts the IPv4 rules back, and the
/// files and unit stay.
#[test]
fn a_signal_during_remove_rolls_back_before_exiting() {
    if skip_unless_root("a_signal_during_remove_rolls_back_before_exiting") {
        return;
    }
    let h = Host::new("atomrm");
    let a = write_state(&h, "a.yaml", A);
    assert_eq!(h.run(&["apply", &a]).code, 0);
    let before = snapshot(&h);
    let shim = shim("kill -TERM $PPID");
    let r = h.run_env(&["remove"], &[("PATH", &path_with(&shim))]);
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(r.stderr.contains("interrupted by SIGTERM"), "{}", r.show());
    assert_eq!(snapshot(&h), before, "{}", r.show());
    let r = h.run(&["remove"]);
    assert_eq!(r.code, 0, "{}", r.show());
    assert!(!h.save("iptables-save").contains("PFSTATE"));
}

/// SIGKILL between the IPv4 and the IPv6 restore leaves a mix and the journal; the boot unit's
/// next run puts the host back to the applied state and converges.
#[test]
fn after_sigkill_the_boot_run_finishes_the_transaction() {
    if skip_unless_root("after_sigkill_the_boot_run_finishes_the_transaction") {
        return;
    }
    let h = Host::new("atomkill");
    let a = write_state(&h, "a.yaml", A);
    assert_eq!(h.run(&["apply", &a]).code, 0);
    let before = snapshot(&h);
    let shim = shim("kill -KILL $PPID; exit 1");
    let b = write_state(&h, "b.yaml", &state_b());
    let r = h.run_env(&["apply", &b], &[("PATH", &path_with(&shim))]);
    assert_eq!(r.code, -1, "killed: {}", r.show());
    let journal = h.file("/var/lib/pfstate/transaction.json");
    assert!(journal.exists(), "the journal survives the kill");
    assert_ne!(
        h.save("iptables-save"),
        before.0,
        "the IPv4 half was written"
    );

    let r = h.run(&["plan", &b]);
    assert!(
        r.stderr.contains("an interrupted pfstate run left"),
        "{}",
        r.show()
    );
    let persisted = h.file("/etc/pfstate/host.yaml").display().to_string();
    let r = h.run(&["apply", "--boot", &persisted]);
    assert_eq!(r.code, 0, "{}", r.show());
    assert!(
        r.stderr.contains("an interrupted pfstate run was found"),
        "{}",
        r.show()
    );
    assert_eq!(snapshot(&h), before);
    assert!(!journal.exists());
    let r = h.run(&["plan", &a]);
    assert_eq!(r.code, 0, "in sync: {}", r.show());
}

/// pfstate in a private mount namespace where `setup` (a shell snippet, `$D` is the root's
/// /etc/pfstate) changed the mounts first.
fn run_with_mounts(h: &Host, setup: &str, args: &[&str]) -> Output {
    let dir = h.file("/etc/pfstate");
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-ec"])
        .arg(format!(
            "D='{}'\n{setup}\nexec ip netns exec \"$0\" \"$@\"",
            dir.display()
        ))
        .arg(h.ns.name())
        .arg(BIN)
        .arg("--root")
        .arg(h.root.path())
        .args(args)
        .env("NO_COLOR", "1");
    cmd.output().expect("unshare")
}

/// A read-only and a full /etc/pfstate: the state file cannot be written, and the rules and
/// sysctls already changed are put back.
#[test]
fn a_read_only_or_full_file_system_leaves_everything_as_before() {
    if skip_unless_root("a_read_only_or_full_file_system_leaves_everything_as_before") {
        return;
    }
    let cases = [
        (
            "mount --bind \"$D\" \"$D\"; mount -o remount,bind,ro \"$D\"",
            "Read-only file system",
        ),
        (
            "cp \"$D/host.yaml\" /dev/shm/pfstate-test-$$; mount -t tmpfs -o size=64k none \"$D\"; cp /dev/shm/pfstate-test-$$ \"$D/host.yaml\"; rm /dev/shm/pfstate-test-$$; dd if=/dev/zero of=\"$D/fill\" bs=4k 2>/dev/null || true",
            "No space left on device",
        ),
    ];
    for (setup, error) in cases {
        let h = Host::new("atomfs");
        let a = write_state(&h, "a.yaml", A);
        assert_eq!(h.run(&["apply", &a]).code, 0);
        let before = snapshot(&h);
        let b = write_state(&h, "b.yaml", &state_b());
        let out = run_with_mounts(&h, setup, &["apply", &b]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(error), "{stderr}");
        assert!(
            stderr.contains("the previous state was restored"),
            "{stderr}"
        );
        assert_eq!(snapshot(&h), before, "{stderr}");
    }
}
