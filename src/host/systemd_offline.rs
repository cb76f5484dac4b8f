//! The [`ServiceManager`] of `--root DIR`: it does what `systemctl --root DIR enable` does,
//! create the `[Install]` symlinks under DIR/etc/systemd/system without talking to any
//! systemd, for images, chroots, containers without systemd, and `pfstate --root
//! /proc/PID/root` against a sandbox.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::HostError;
use crate::host::ServiceManager;

/// `--root DIR`: enable and disable by editing symlinks under DIR, like `systemctl --root`.
#[derive(Debug, Clone)]
pub struct OfflineServiceManager {
    pub root: PathBuf,
}

/// Where unit files are looked up, in systemd's order of precedence (system scope).
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];
/// Where `enable` puts its symlinks.
const CONFIG_DIR: &str = "/etc/systemd/system";
/// The dependency directories `[Install]` can create symlinks in.
const DEP_SUFFIXES: &[&str] = &[".wants", ".requires"];

fn io_err(path: &Path, source: io::Error) -> HostError {
    HostError::io(path.display(), source)
}

/// The `[Install]` section's `WantedBy=` and `RequiredBy=` targets of a unit file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InstallInfo {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
}

/// Parse the `[Install]` section as systemd does: `#`/`;` comments, `\` line continuations,
/// space-separated lists, repeated keys append, an empty assignment resets the list.
pub fn parse_install(text: &str) -> InstallInfo {
    let mut info = InstallInfo::default();
    let mut in_install = false;
    let mut logical = String::new();
    let mut lines = Vec::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if logical.is_empty() && (trimmed.starts_with('#') || trimmed.starts_with(';')) {
            continue;
        }
        if let Some(cont) = trimmed.strip_suffix('\\') {
            logical.push_str(cont);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        lines.push(std::mem::take(&mut logical));
    }
    lines.push(logical);
    for line in lines {
        let line = line.trim();
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let list = match key.trim() {
            "WantedBy" => &mut info.wanted_by,
            "RequiredBy" => &mut info.required_by,
            _ => continue,
        };
        if value.trim().is_empty() {
            list.clear();
        } else {
            list.extend(value.split_whitespace().map(str::to_string));
        }
    }
    info
}

impl OfflineServiceManager {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        OfflineServiceManager { root: root.into() }
    }

    fn under(&self, abs: &str) -> PathBuf {
        // Symlinks on the way resolve inside the root, as `systemctl --root` does.
        crate::host::confine::confined(&self.root, Path::new(abs), false)
    }

    /// The unit file's path on the target system (what the symlinks point to).
    fn find_unit(&self, unit: &str) -> Result<String, HostError> {
        for dir in UNIT_DIRS {
            let target = format!("{dir}/{unit}");
            if self.under(&target).is_file() {
                return Ok(target);
            }
        }
        Err(HostError::Systemd(format!(
            "{unit}: no such unit file under {} ({})",
            self.root.display(),
            UNIT_DIRS.join(", ")
        )))
    }

    /// Every `<name>.wants`/`.requires` directory under ROOT/etc/systemd/system.
    fn dep_dirs(&self) -> Result<Vec<PathBuf>, HostError> {
        let config = self.under(CONFIG_DIR);
        let entries = match fs::read_dir(&config) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&config, e)),
        };
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&config, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if DEP_SUFFIXES.iter().any(|s| name.ends_with(s))
                && entry.file_type().is_ok_and(|t| t.is_dir())
            {
                dirs.push(entry.path());
            }
        }
        dirs.sort();
        Ok(dirs)
    }
}

impl ServiceManager for OfflineServiceManager {
    /// Nothing to reload: no manager runs on ROOT.
    fn reload(&self) -> Result<(), HostError> {
        Ok(())
    }

    fn enable(&self, unit: &str) -> Result<(), HostError> {
        let target = self.find_unit(unit)?;
        let text =
            fs::read_to_string(self.under(&target)).map_err(|e| io_err(&self.under(&target), e))?;
        let info = parse_install(&text);
        if info.wanted_by.is_empty() && info.required_by.is_empty() {
            return Err(HostError::Systemd(format!(
                "{unit} has no WantedBy=/RequiredBy= in [Install], nothing to enable"
            )));
        }
        let links = info
            .wanted_by
            .iter()
            .map(|t| format!("{t}.wants"))
            .chain(info.required_by.iter().map(|t| format!("{t}.requires")));
        for dep_dir in links {
            let dir = self.under(&format!("{CONFIG_DIR}/{dep_dir}"));
            crate::host::confine::create_dirs(&dir, 0o755).map_err(|e| io_err(&dir, e))?;
            let link = dir.join(unit);
            match fs::read_link(&link) {
                Ok(existing) if existing == Path::new(&target) => continue,
                Ok(_) => fs::remove_file(&link).map_err(|e| io_err(&link, e))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&link, e)),
            }
            std::os::unix::fs::symlink(&target, &link).map_err(|e| io_err(&link, e))?;
        }
        Ok(())
    }

    /// Remove every symlink named `unit` in the dependency directories (what `systemctl
    /// disable` removes, whatever the `[Install]` section says now), and the directories that
    /// this leaves empty, as systemctl does.
    fn disable(&self, unit: &str) -> Result<(), HostError> {
        for dir in self.dep_dirs()? {
            let link = dir.join(unit);
            if fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
                fs::remove_file(&link).map_err(|e| io_err(&link, e))?;
                if fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none()) {
                    let _ = fs::remove_dir(&dir);
                }
            }
        }
        Ok(())
    }

    fn is_enabled(&self, unit: &str) -> Result<bool, HostError> {
        Ok(self.dep_dirs()?.iter().any(|dir| {
            fs::symlink_metadata(dir.join(unit)).is_ok_and(|m| m.file_type().is_symlink())
        }))
    }

    /// Nothing runs on ROOT: a no-op.
    fn restart(&self, _unit: &str) -> Result<(), HostError> {
        Ok(())
    }

    /// Nothing runs on ROOT: always `inactive`.
    fn active_state(&self, _unit: &str) -> Result<String, HostError> {
        Ok("inactive".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: &str = "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n\
                        [Install]\nWantedBy=multi-user.target\n";

    #[test]
    fn parses_install() {
        let info = parse_install(
            "[Unit]\nWantedBy=not-this.target\n[Install]\n# WantedBy=commented.target\n\
             WantedBy=a.target b.target\nWantedBy=c.target \\\n  d.target\nRequiredBy=x.target\n\
             RequiredBy=\nRequiredBy=y.target\n[X-Other]\nWantedBy=nope.target\n",
        );
        assert_eq!(
            info.wanted_by,
            ["a.target", "b.target", "c.target", "d.target"]
        );
        assert_eq!(info.required_by, ["y.target"]);
    }

    #[test]
    fn offline_enable_disable() {
        let dir = tempfile::tempdir().unwrap();
        let sm = OfflineServiceManager::new(dir.path());
        assert!(sm.enable("pfstate.service").is_err());
        let unit_dir = dir.path().join("etc/systemd/system");
        fs::create_dir_all(&unit_dir).unwrap();
        fs::write(unit_dir.join("pfstate.service"), UNIT).unwrap();
        assert!(!sm.is_enabled("pfstate.service").unwrap());
        sm.reload().unwrap();
        sm.enable("pfstate.service").unwrap();
        sm.enable("pfstate.service").unwrap(); // idempotent
        let link = unit_dir.join("multi-user.target.wants/pfstate.service");
        assert_eq!(
            fs::read_link(&link).unwrap(),
            Path::new("/etc/systemd/system/pfstate.service")
        );
        assert!(sm.is_enabled("pfstate.service").unwrap());
        sm.disable("pfstate.service").unwrap();
        assert!(!link.exists() && !unit_dir.join("multi-user.target.wants").exists());
        assert!(!sm.is_enabled("pfstate.service").unwrap());
        sm.disable("pfstate.service").unwrap(); // idempotent
    }

    #[test]
    fn offline_leaves_other_links() {
        let dir = tempfile::tempdir().unwrap();
        let sm = OfflineServiceManager::new(dir.path());
        let unit_dir = dir.path().join("etc/systemd/system");
        fs::create_dir_all(unit_dir.join("multi-user.target.wants")).unwrap();
        std::os::unix::fs::symlink(
            "/lib/systemd/system/other.service",
            unit_dir.join("multi-user.target.wants/other.service"),
        )
        .unwrap();
        fs::write(unit_dir.join("pfstate.service"), UNIT).unwrap();
        sm.enable("pfstate.service").unwrap();
        sm.disable("pfstate.service").unwrap();
        assert!(
            fs::symlink_metadata(unit_dir.join("multi-user.target.wants/other.service")).is_ok()
        );
    }
}
