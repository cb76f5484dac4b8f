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
fn unit_binary() -> String {
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
