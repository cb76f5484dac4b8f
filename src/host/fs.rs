//! The files pfstate owns, written so that a crash or power cut never leaves half a file.
//!
//! The boot unit reads `/etc/pfstate/host.yaml` early at boot; if a power cut hit in the middle
//! of a plain `write`, the next boot would apply a truncated state. So every file is written to a
//! temporary file in the same directory, fsynced, renamed over the old one (atomic within one
//! filesystem) and the directory fsynced (so the rename itself is durable). Files are only written
//! when their content differs, because "nothing written when already converged" is part of the
//! contract of `apply` (SPEC, Command line) and because it lets `apply` report `changed`.
//!
//! Every path goes through [`Root`], so `--root DIR` puts all of it under DIR.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::HostError;
use crate::host::confine;

/// Where pfstate's absolute paths (`/etc/...`, `/run/...`) land: the real `/`, or `--root DIR`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Root {
    /// `None` for the live system, `Some(dir)` for `--root DIR`.
    pub dir: Option<PathBuf>,
}

impl Root {
    /// The live system.
    pub fn live() -> Self {
        Root { dir: None }
    }

    /// Everything under `dir` (`--root DIR`).
    pub fn under(dir: impl Into<PathBuf>) -> Self {
        Root {
            dir: Some(dir.into()),
        }
    }

    /// Map an absolute path of the target system (`/etc/pfstate/host.yaml`) to where it is
    /// found from here. Relative paths are taken as relative to the target's `/`. Under
    /// `--root`, symlinks on the way resolve inside the root (see [`confine::confined`]).
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        match &self.dir {
            None => Path::new("/").join(abs),
            Some(dir) => confine::confined(dir, abs, false),
        }
    }

    /// Like [`Root::path`], following a symlink in the last component too (inside the root):
    /// the path to read a file through.
    pub fn path_to_read(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        match &self.dir {
            None => Path::new("/").join(abs),
            Some(dir) => confine::confined(dir, abs, true),
        }
    }

    /// Whether this is `--root DIR` (then systemd is not asked over D-Bus).
    pub fn is_offline(&self) -> bool {
        self.dir.is_some()
    }
}

/// Permissions of the files pfstate writes: world-readable like every unit and sysctl.d file.
pub const FILE_MODE: u32 = 0o644;

/// Where pfstate keeps state of its own (the transaction journal), with [`PRIVATE_MODE`].
pub const PRIVATE_DIR: &str = "/var/lib/pfstate/";
/// Permissions of pfstate's own state files (their directories get 0700).
pub const PRIVATE_MODE: u32 = 0o600;

fn io_err(path: &Path, source: io::Error) -> HostError {
    HostError::io(path.display(), source)
}

/// Write `contents` to `path` atomically, only if the file's content or mode differs.
///
/// Returns `true` when the file was (re)written or its mode fixed, `false` when it already held
/// exactly these bytes with this mode. Missing parent directories are created (mode 0755, or 0700 for a private `mode`).
/// A symlink at `path` is replaced by a regular file (`rename` replaces the link, not its target),
/// which is what a package manager does too.
pub fn write_if_changed(path: &Path, contents: &[u8], mode: u32) -> Result<bool, HostError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => {
            let current = fs::read(path).map_err(|e| io_err(path, e))?;
            if current == contents {
                if meta.permissions().mode() & 0o7777 == mode {
                    return Ok(false);
                }
                fs::set_permissions(path, fs::Permissions::from_mode(mode))
                    .map_err(|e| io_err(path, e))?;
                return Ok(true);
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path, e)),
    }
    write_atomic(path, contents, mode)?;
    Ok(true)
}

/// Unconditionally replace `path` with `contents` (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), HostError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        io_err(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    // Private files (mode 0600) live in private directories; the others in 0755 ones.
    let dir_mode = if mode & 0o077 == 0 { 0o700 } else { 0o755 };
    confine::create_dirs(dir, dir_mode).map_err(|e| io_err(dir, e))?;

    // Hidden, pid-tagged, created exclusively: never collides with a concurrent writer and is
    // never picked up by systemd (units must end in .service etc., sysctl.d files in .conf).
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!("{}{}", confine::TEMP_MARK, std::process::id()));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        // The umask may have cut bits off `mode`: set it explicitly.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| io_err(&tmp, e))?;
        file.write_all(contents).map_err(|e| io_err(&tmp, e))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| io_err(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir)
}

/// Remove `path` if it exists; returns whether something was removed. The directory is fsynced
/// so the removal is durable (a unit that comes back after a power cut would re-apply rules).
pub fn remove_if_exists(path: &Path) -> Result<bool, HostError> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync_dir(dir)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path, e)),
    }
}

/// fsync a directory, making a rename or unlink in it durable.
fn sync_dir(dir: &Path) -> Result<(), HostError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// The managed files of the target system under a [`Root`].
pub struct RootFiles {
    pub root: Root,
}

impl crate::host::Files for RootFiles {
    fn read(&self, target: &str) -> Result<Option<String>, HostError> {
        read(&self.root, target)
    }

    fn write(&self, target: &str, content: &str) -> Result<(), HostError> {
        // pfstate's own state (the transaction journal) is root's alone.
        let mode = if target.starts_with(PRIVATE_DIR) {
            PRIVATE_MODE
        } else {
            FILE_MODE
        };
        write_atomic(&self.root.path(target), content.as_bytes(), mode)
    }

    fn remove(&self, target: &str) -> Result<bool, HostError> {
        remove_if_exists(&self.root.path(target))
    }
}

/// A file's live content (`None` when absent).
pub fn read(root: &Root, target: &str) -> Result<Option<String>, HostError> {
    let path = root.path_to_read(target);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HostError::io(path.display(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_maps_paths() {
        assert_eq!(
            Root::live().path("/etc/pfstate/host.yaml"),
            PathBuf::from("/etc/pfstate/host.yaml")
        );
        assert_eq!(
            Root::under("/tmp/r").path("/etc/pfstate/host.yaml"),
            PathBuf::from("/tmp/r/etc/pfstate/host.yaml")
        );
        assert_eq!(
            Root::under("/tmp/r").path("etc/x"),
            PathBuf::from("/tmp/r/etc/x")
        );
        assert!(Root::under("/x").is_offline());
        assert!(!Root::live().is_offline());
    }

    #[test]
    fn writes_only_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::under(dir.path());
        let p = root.path("/etc/sysctl.d/90-pfstate.conf");
        assert!(write_if_changed(&p, b"a = 1\n", FILE_MODE).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"a = 1\n");
        let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&p).unwrap());
        assert!(!write_if_changed(&p, b"a = 1\n", FILE_MODE).unwrap());
        // Not rewritten: same inode.
        let ino2 = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&p).unwrap());
        assert_eq!(ino, ino2);
        assert!(write_if_changed(&p, b"a = 2\n", FILE_MODE).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"a = 2\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("90-pfstate.conf")]);
    }

    #[test]
    fn fixes_mode_without_rewriting() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"x").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(write_if_changed(&p, b"x", 0o644).unwrap());
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        assert!(!write_if_changed(&p, b"x", 0o644).unwrap());
    }

    #[test]
    fn replaces_symlink_not_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_if_changed(&link, b"old", FILE_MODE).unwrap());
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_file());
        assert_eq!(fs::read(&target).unwrap(), b"old");
    }

    #[test]
    fn remove_if_exists_reports() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert!(!remove_if_exists(&p).unwrap());
        fs::write(&p, b"x").unwrap();
        assert!(remove_if_exists(&p).unwrap());
        assert!(!p.exists());
    }
}
