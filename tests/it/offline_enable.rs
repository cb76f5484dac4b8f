//! `OfflineServiceManager` must leave exactly the tree `systemctl --root DIR enable/disable`
//! leaves (same symlink names, same targets, empty `.wants` dirs removed). `systemctl --root`
//! only touches DIR, so this is safe on any host; skipped when systemctl is missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use pfstate::host::ServiceManager;
use pfstate::host::systemd::OfflineServiceManager;

const UNIT: &str = "# test\n[Unit]\nDescription=x\n[Service]\nType=oneshot\nExecStart=/bin/true\n\
                    [Install]\nWantedBy=multi-user.target\nWantedBy=network-pre.target\n\
                    RequiredBy=foo.target\n";

/// Every entry under DIR: symlinks with their targets, directories, files.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if t.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &p, out);
            } else {
                out.insert(rel, "file".into());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn fresh() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let units = d.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(units.join("pfstate.service"), UNIT).unwrap();
    d
}

fn systemctl(root: &Path, verb: &str) {
    let out = Command::new("systemctl")
        .arg(format!("--root={}", root.display()))
        .args([verb, "pfstate.service"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn same_tree_as_systemctl_root() {
    if Command::new("systemctl").arg("--version").output().is_err() {
        eprintln!("SKIPPED: systemctl missing");
        return;
    }
    let (ours, theirs) = (fresh(), fresh());
    let sm = OfflineServiceManager::new(ours.path());
    sm.enable("pfstate.service").unwrap();
    systemctl(theirs.path(), "enable");
    let enabled = tree(ours.path());
    assert_eq!(enabled, tree(theirs.path()));
    assert_eq!(
        enabled["etc/systemd/system/network-pre.target.wants/pfstate.service"],
        "-> /etc/systemd/system/pfstate.service"
    );
    assert!(enabled.contains_key("etc/systemd/system/foo.target.requires/pfstate.service"));

    // Disable what systemctl enabled, and vice versa.
    sm.disable("pfstate.service").unwrap();
    let sm_theirs = OfflineServiceManager::new(theirs.path());
    assert!(sm_theirs.is_enabled("pfstate.service").unwrap());
    sm_theirs.disable("pfstate.service").unwrap();
    systemctl(ours.path(), "enable");
    systemctl(ours.path(), "disable");
    assert_eq!(tree(ours.path()), tree(theirs.path()));
    assert_eq!(tree(ours.path()).len(), 4, "{:?}", tree(ours.path()));
}
