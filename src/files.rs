//! The files pfstate owns on a host (SPEC "Files pfstate owns"), rendered from the state and
//! written with rollback: apply keeps each file's previous content until everything succeeded.

use std::path::PathBuf;

use crate::error::HostError;
use crate::model::Model;
use crate::persist::{self, FILE_MODE, Root};
use crate::render::Desired;
use crate::sysctl_conf::{self, SYSCTL_CONF_PATH, SysctlEntry};
use crate::unit::{self, STATE_PATH, UNIT_PATH, UnitParams};

/// A file as pfstate wants it: `None` content means "must not exist".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedFile {
    /// The path on the target system (`/etc/...`), for messages and diffs.
    pub target: &'static str,
    pub content: Option<String>,
}

/// The three files for a desired state. `source` is the YAML text as given (persisted verbatim,
/// so comments survive and the boot unit applies exactly what was reviewed).
pub fn desired_files(
    model: &Model,
    desired: &Desired,
    source: &str,
) -> Result<Vec<ManagedFile>, HostError> {
    let entries: Vec<SysctlEntry> = desired
        .sysctls
        .iter()
        .map(|s| SysctlEntry::new(s.key.0.clone(), s.value.clone()))
        .collect();
    let sysctl = if entries.is_empty() {
        None
    } else {
        Some(
            sysctl_conf::render_sysctl_conf(&entries).map_err(|e| HostError::Command {
                program: "sysctl.d".into(),
                message: e.to_string(),
            })?,
        )
    };
    let binary = unit_binary();
    let unit = unit::render_unit(&UnitParams {
        binary,
        state_path: STATE_PATH.to_string(),
        host_label: model.host.clone(),
    });
    Ok(vec![
        ManagedFile {
            target: STATE_PATH,
            content: Some(source.to_string()),
        },
        ManagedFile {
            target: SYSCTL_CONF_PATH,
            content: sysctl,
        },
        ManagedFile {
            target: UNIT_PATH,
            content: Some(unit),
        },
    ])
}

/// What `remove` converges to: none of the files.
pub fn no_files() -> Vec<ManagedFile> {
    [STATE_PATH, SYSCTL_CONF_PATH, UNIT_PATH]
        .into_iter()
        .map(|target| ManagedFile {
            target,
            content: None,
        })
        .collect()
}

/// A file's live content (`None` when absent).
pub fn read(root: &Root, target: &str) -> Result<Option<String>, HostError> {
    let path = root.path(target);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HostError::io(path.display(), e)),
    }
}

/// Files written so far, with what they held before, for rollback.
#[derive(Default)]
pub struct FileJournal {
    before: Vec<(PathBuf, Option<String>)>,
}

impl FileJournal {
    /// Make a file hold `want`; returns whether anything changed.
    pub fn converge(&mut self, root: &Root, f: &ManagedFile) -> Result<bool, HostError> {
        let path = root.path(f.target);
        let old = read(root, f.target)?;
        if old == f.content {
            return Ok(false);
        }
        self.before.push((path.clone(), old));
        match &f.content {
            Some(c) => persist::write_atomic(&path, c.as_bytes(), FILE_MODE)?,
            None => {
                persist::remove_if_exists(&path)?;
            }
        }
        Ok(true)
    }

    /// Put every written file back as it was, newest first.
    pub fn rollback(self) -> Result<(), HostError> {
        for (path, old) in self.before.into_iter().rev() {
            match old {
                Some(c) => persist::write_atomic(&path, c.as_bytes(), FILE_MODE)?,
                None => {
                    persist::remove_if_exists(&path)?;
                }
            }
        }
        Ok(())
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
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
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
