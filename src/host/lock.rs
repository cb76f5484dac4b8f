//! The run lock: one pfstate at a time changes a host.
//!
//! It lives in a directory only root may enter (`/run/pfstate`, 0700): in a world-writable one
//! (`/run/lock`) any user could hold it and block every apply, or plant a symlink that makes
//! root create or truncate a file elsewhere. The directory is checked (a real directory, owned
//! by this user) and the file opened with `O_NOFOLLOW`.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::HostError;
use crate::host::confine;
use crate::host::fs::Root;

/// Where the run lock lives on the target system.
pub const LOCK_PATH: &str = "/run/pfstate/lock";

/// The directories pfstate writes files into (atomically, through temp files).
const SWEPT_DIRS: [&str; 5] = [
    "/etc/pfstate",
    "/etc/sysctl.d",
    "/etc/systemd/system",
    "/var/lib/pfstate",
    "/run/pfstate",
];

/// How long a second pfstate waits for the first by default (a boot apply and a timer recheck
/// may overlap; both finish in well under a second normally).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// An exclusive lock held for a whole `apply`/`remove`, so two pfstate runs (the boot unit,
/// the recheck timer, an admin) never interleave their iptables-restore and file writes.
///
/// It is an advisory `flock` (`std::fs::File::lock`): the kernel drops it when the process
/// dies, so a crashed run never leaves a stale lock; the file itself is left in place (on
/// tmpfs) on purpose, since unlinking a lock file races with waiters.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Take the lock, waiting up to `timeout` for another holder to finish. Temp files a
    /// crashed run left in pfstate's directories are swept once the lock is held.
    ///
    /// Fails with [`HostError::Locked`] naming the lock file when the wait times out.
    pub fn acquire(root: &Root, timeout: Duration) -> Result<RunLock, HostError> {
        let path = root.path(LOCK_PATH);
        if let Some(dir) = path.parent() {
            confine::private_dir(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| HostError::io(path.display(), e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    // Under the lock no other pfstate writes: every temp file is a crash's.
                    for dir in SWEPT_DIRS {
                        confine::sweep_temps(&root.path(dir));
                    }
                    return Ok(RunLock { _file: file, path });
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(HostError::io(path.display(), e)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::under(dir.path());
        let first = RunLock::acquire(&root, Duration::from_secs(1)).unwrap();
        assert_eq!(first.path(), dir.path().join("run/pfstate/lock"));
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

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::under(dir.path());
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        confine::private_dir(&dir.path().join("run/pfstate")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("run/pfstate/lock")).unwrap();
        let e = RunLock::acquire(&root, Duration::from_millis(100)).unwrap_err();
        assert!(e.to_string().contains("run/pfstate/lock"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
