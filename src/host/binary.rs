//! The binary the boot unit runs, and whether running it as root at every boot is safe.

use std::path::PathBuf;

use crate::host::Binary;

/// The binary of this process.
pub struct RunningBinary;

impl Binary for RunningBinary {
    fn unit_binary(&self) -> String {
        unit_binary()
    }

    fn problem(&self, binary: &str) -> Option<String> {
        unit_binary_problem(binary)
    }

    fn spawn_detached(&self, argv: &[String]) -> Result<u32, crate::error::HostError> {
        super::deadline::spawn_process(argv)
    }
}

/// Where packages install pfstate; the unit names one of these when it is the running binary.
const INSTALLED_PATHS: [&str; 4] = [
    "/usr/sbin/pfstate",
    "/usr/local/sbin/pfstate",
    "/usr/bin/pfstate",
    "/usr/local/bin/pfstate",
];

/// The binary the boot unit runs: the running one, named by its installed path when it has one
/// (a stable name across upgrades that replace the file), never a "(deleted)" path.
pub fn unit_binary() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(exe) = std::env::current_exe() else {
        return INSTALLED_PATHS[0].to_string();
    };
    let exe = PathBuf::from(exe.to_string_lossy().trim_end_matches(" (deleted)"));
    let id = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let running = id(&exe);
    INSTALLED_PATHS
        .iter()
        .find(|p| running.is_some() && id(std::path::Path::new(p)) == running)
        .map(|p| p.to_string())
        .unwrap_or_else(|| exe.to_string_lossy().into_owned())
}

/// Why the binary the boot unit runs is unsafe to run as root at every boot, if it is: a file
/// or directory on its path that someone other than root may write could swap it, and a
/// binary under /tmp may be gone by then.
pub fn unit_binary_problem(binary: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = std::path::Path::new(binary);
    if path.starts_with("/tmp") || path.starts_with("/var/tmp") {
        return Some(format!(
            "the boot unit runs {binary}, which may be gone after a reboot; install pfstate (e.g. /usr/sbin/pfstate) and apply again"
        ));
    }
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let Ok(m) = std::fs::metadata(p) else {
            continue;
        };
        let sticky_dir = m.is_dir() && m.mode() & 0o1000 != 0;
        if m.uid() != 0 || (m.mode() & 0o022 != 0 && !sticky_dir) {
            return Some(format!(
                "the boot unit runs {binary} as root, but {} can be changed by a user other than root; install pfstate (e.g. /usr/sbin/pfstate) and apply again",
                p.display()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_unit_binaries_are_named() {
        assert!(
            unit_binary_problem("/tmp/pfstate").is_some_and(|p| p.contains("gone after a reboot"))
        );
        // A root-owned system path is fine (when the tests run as root, as in CI).
        if nix::unistd::geteuid().is_root() && std::path::Path::new("/usr/bin/env").exists() {
            assert_eq!(unit_binary_problem("/usr/bin/env"), None);
        }
        // A directory outside /tmp (a checkout may live there; /tmp is reported first): the
        // checkout, else the home directory, else /run.
        let home = std::env::var("HOME").unwrap_or_default();
        let dir = [env!("CARGO_MANIFEST_DIR"), home.as_str(), "/run"]
            .into_iter()
            .filter(|d| !d.is_empty() && !d.starts_with("/tmp") && !d.starts_with("/var/tmp"))
            .find_map(|d| tempfile::tempdir_in(d).ok())
            .expect("a writable directory outside /tmp");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let exe = dir.path().join("pfstate");
        std::fs::write(&exe, "").unwrap();
        let problem =
            unit_binary_problem(exe.to_str().unwrap()).expect("a world-writable directory");
        assert!(
            problem.contains("can be changed by a user other than root"),
            "{problem}"
        );
    }
}
