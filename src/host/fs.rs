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
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::HostError;

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
    /// found from here. Relative paths are taken as relative to the target's `/`.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        match &self.dir {
            None => Path::new("/").join(abs),
            Some(dir) => dir.join(abs.strip_prefix("/").unwrap_or(abs)),
        }
    }

    /// Whether this is `--root DIR` (then systemd is not asked over D-Bus).
    pub fn is_offline(&self) -> bool {
        self.dir.is_some()
    }
}

/// Permissions of the files pfstate writes: world-readable like every unit and sysctl.d file.
pub const FILE_MODE: u32 = 0o644;

fn io_err(path: &Path, source: io::Error) -> HostError {
    HostError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Write `contents` to `path` atomically, only if the file's content or mode differs.
///
/// Returns `true` when the file was (re)written or its mode fixed, `false` when it already held
/// exactly these bytes with this mode. Missing parent directories are created (mode 0755).
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
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;

    // Hidden, pid-tagged, created exclusively: never collides with a concurrent writer and is
    // never picked up by systemd (units must end in .service etc., sysctl.d files in .conf).
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".pfstate-tmp.{}", std::process::id()));
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

/// Where the run lock lives on the target system.
pub const LOCK_PATH: &str = "/run/lock/pfstate.lock";

/// How long a second pfstate waits for the first by default (a boot apply and a timer recheck
/// may overlap; both finish in well under a second normally).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// An exclusive lock held for a whole `apply`/`remove`, so two pfstate runs (the boot unit,
/// the recheck timer, an admin) never interleave their iptables-restore and file writes.
///
/// It is an advisory `flock` on ROOT/run/lock/pfstate.lock (`std::fs::File::lock`): the kernel
/// drops it when the process dies, so a crashed run never leaves a stale lock; the file itself
/// is left in place (on tmpfs) on purpose, since unlinking a lock file races with waiters.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Take the lock, waiting up to `timeout` for another holder to finish.
    ///
    /// Fails with [`HostError::Locked`] naming the lock file when the wait times out.
    pub fn acquire(root: &Root, timeout: Duration) -> Result<RunLock, HostError> {
        let path = root.path(LOCK_PATH);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RunLock { _file: file, path }),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(io_err(&path, e)),
            }
            if start.elapsed() >= timeout {
                return Err(HostError::Locked(format!(
                    "another pfstate is running (it holds {}); gave up after {:.1} s",
                    path.display(),
                    timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(
                Duration::from_millis(50).min(timeout / 4 + Duration::from_millis(1)),
            );
        }
    }

    /// The lock file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
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
        write_atomic(&self.root.path(target), content.as_bytes(), FILE_MODE)
    }

    fn remove(&self, target: &str) -> Result<bool, HostError> {
        remove_if_exists(&self.root.path(target))
    }
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

    #[test]
    fn lock_is_exclusive_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::under(dir.path());
        let first = RunLock::acquire(&root, Duration::from_secs(1)).unwrap();
        assert_eq!(first.path(), dir.path().join("run/lock/pfstate.lock"));
        // flock locks belong to the open file description: a second open in the same process
        // conflicts just like another process would.
        let err = RunLock::acquire(&root, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, HostError::Locked(_)));
        assert!(
            err.to_string().contains("another pfstate is running"),
            "{err}"
        );
        drop(first);
        RunLock::acquire(&root, Duration::from_millis(200)).unwrap();
    }

    #[test]
    fn lock_waits_for_holder() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::under(dir.path());
        let first = RunLock::acquire(&root, Duration::from_secs(1)).unwrap();
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        let start = Instant::now();
        RunLock::acquire(&root, Duration::from_secs(10)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(250));
        handle.join().unwrap();
    }
}
