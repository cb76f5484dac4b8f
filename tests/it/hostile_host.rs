//! A hostile host (issue 12): an unprivileged caller, umask 000, `--root` trees with absolute
//! symlinks, and temp files a crash left behind. Real files, in a throwaway network namespace.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use common::{BIN, Host};
use pfstate::lab::skip_unless_root;

const STATE: &str =
    "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: \"10.0.0.2:8080\"}\n";

fn mode(p: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

/// The root check comes before the lock: an unprivileged apply leaves no file behind.
#[test]
fn an_unprivileged_run_is_refused_before_any_file_is_touched() {
    if skip_unless_root("an_unprivileged_run_is_refused_before_any_file_is_touched") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let state = common::write_yaml(dir.path(), "host.yaml", STATE);
    for args in [vec!["apply", &state], vec!["remove"], vec!["plan", &state]] {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                BIN,
                "--root",
            ])
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("needs root"), "{err}");
        assert!(!dir.path().join("run").exists(), "{args:?} left a lock");
    }
}

/// Under umask 000 every directory and file gets its explicit mode; the lock and the journal
/// are root's alone; temp files of a dead run are swept.
#[test]
fn modes_are_explicit_whatever_the_umask_and_crash_temps_are_swept() {
    if skip_unless_root("modes_are_explicit_whatever_the_umask_and_crash_temps_are_swept") {
        return;
    }
    let h = Host::new("hostile");
    let state = common::write_yaml(h.shim.path(), "host.yaml", STATE);
    let stale = h.file("/etc/pfstate/.host.yaml.pfstate-tmp.4000000000");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "half a file").unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec ip netns exec \"$@\"")
        .args(["sh", h.ns.name(), BIN, "--root"])
        .arg(h.root.path())
        .args(["apply", &state])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stale.exists(), "the crash's temp file was swept");
    for (path, want) in [
        ("/etc/sysctl.d", 0o755),
        ("/etc/systemd/system", 0o755),
        ("/etc/pfstate/host.yaml", 0o644),
        ("/run/pfstate", 0o700),
        ("/run/pfstate/lock", 0o600),
        ("/var/lib/pfstate", 0o700),
    ] {
        assert_eq!(mode(&h.file(path)), want, "{path}");
    }
}

/// `--root` never leaves the root: an absolute symlink inside the tree resolves inside it, as
/// `systemctl --root` does, and a link that points at itself fails instead of reaching `/`.
#[test]
fn absolute_symlinks_in_a_root_tree_stay_inside_it() {
    if skip_unless_root("absolute_symlinks_in_a_root_tree_stay_inside_it") {
        return;
    }
    let h = Host::new("hostroot");
    let state = common::write_yaml(h.shim.path(), "host.yaml", STATE);
    let name = format!("pfstate-test-{}", std::process::id());
    std::fs::create_dir_all(h.file(&format!("/etc/{name}"))).unwrap();
    std::os::unix::fs::symlink(format!("/etc/{name}"), h.file("/etc/pfstate")).unwrap();
    let r = h.run(&["apply", &state]);
    assert_eq!(r.code, 0, "{}", r.show());
    assert!(h.file(&format!("/etc/{name}/host.yaml")).exists());
    assert!(!std::path::Path::new(&format!("/etc/{name}")).exists());

    let h = Host::new("hostloop");
    std::fs::create_dir_all(h.root.path()).unwrap();
    std::os::unix::fs::symlink("/etc", h.file("/etc")).unwrap();
    let r = h.run(&["apply", &state]);
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(
        r.stderr.contains("too many levels of symbolic links"),
        "{}",
        r.show()
    );
}

/// Network namespace inodes are reused. A namespace at the inode of a dead one, whose
/// generation id reached the one that namespace's cache was taken at (other rules, as many
/// kernel writes), is handed that cache: its apply must still write its rules.
#[test]
fn a_new_namespace_is_never_served_a_dead_ones_rule_set() {
    if skip_unless_root("a_new_namespace_is_never_served_a_dead_ones_rule_set") {
        return;
    }
    let mut caches: std::collections::HashMap<String, Vec<u8>> = Default::default();
    let mut reused = 0;
    // The kernel hands out the lowest free inode, but namespaces other tests create meanwhile
    // may take it: try until two were reused.
    for round in 0..60 {
        if reused == 2 {
            break;
        }
        let h = Host::new("cachereuse");
        let ino =
            h.ns.exec("stat", &["-L", "-c", "%i", "/proc/self/ns/net"])
                .expect("stat");
        let state = common::write_yaml(h.shim.path(), "host.yaml", STATE);
        let Some(bytes) = caches.get(ino.trim()) else {
            // A first namespace at this inode: apply, and keep the cache the plan leaves.
            assert_eq!(h.run(&["apply", &state]).code, 0);
            assert_eq!(h.run(&["plan", &state]).code, 0);
            if let Ok(bytes) = std::fs::read(h.file("/run/pfstate/save-cache")) {
                caches.insert(ino.trim().to_string(), bytes);
            }
            continue;
        };
        reused += 1;
        let other = common::write_yaml(h.shim.path(), "other.yaml", &STATE.replace("80}", "81}"));
        assert_eq!(h.run(&["apply", &other]).code, 0);
        let dir = h.file("/run/pfstate");
        std::fs::write(dir.join("save-cache"), bytes).unwrap();
        let r = h.run(&["apply", &state]);
        assert_eq!(r.code, 0, "round {round}: {}", r.show());
        assert!(
            h.save("iptables-save").contains("--dport 80 "),
            "round {round}: {}",
            r.show()
        );
    }
    assert!(
        reused > 0,
        "no inode was reused in 60 namespaces: the test proved nothing"
    );
}
