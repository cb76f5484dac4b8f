//! Paths and directories on a host that may be hostile: `--root DIR` never leaves DIR, the
//! directories pfstate creates get explicit modes whatever the umask, its private directories
//! are root's alone, and the temp files a crash left behind are swept.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::HostError;

/// How many symlinks one resolution follows, as the kernel's limit (ELOOP).
const MAX_LINKS: usize = 40;

/// `abs` (a path of the target system) resolved inside `root`, the way `systemctl --root`
/// does: a symlink met on the way is followed, an absolute target starts again at `root`, and
/// `..` never climbs above it. The last component is followed only with `follow_last` (a read;
/// a write or a removal replaces the link itself). Components that do not exist are kept as
/// written.
pub fn confined(root: &Path, abs: &Path, follow_last: bool) -> PathBuf {
    let mut rest: VecDeque<OsString> = parts(abs).collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = rest.pop_front() {
        if part == ".." {
            done.pop();
            continue;
        }
        let here: PathBuf = root.join(done.iter().collect::<PathBuf>()).join(&part);
        let is_link = fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink());
        let follow = is_link && (follow_last || !rest.is_empty());
        if follow && links == MAX_LINKS {
            // The kernel would follow this link out of the root: name a path no call accepts
            // (a NUL byte), so every use fails with this text instead.
            return root.join("too many levels of symbolic links\0");
        }
        match fs::read_link(&here).ok().filter(|_| follow) {
            Some(target) => {
                links += 1;
                if target.is_absolute() {
                    done.clear();
                }
                for p in parts(&target).collect::<Vec<_>>().into_iter().rev() {
                    rest.push_front(p);
                }
            }
            None => done.push(part),
        }
    }
    root.join(done.iter().collect::<PathBuf>())
}

/// The normal components of a path, with `..` kept as a marker (`.` and `/` dropped).
fn parts(p: &Path) -> impl Iterator<Item = OsString> + '_ {
    p.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        _ => None,
    })
}

/// Create `dir` and its missing parents, each with exactly `mode` (the umask does not apply:
/// under umask 000 a plain create would make them world-writable).
pub fn create_dirs(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.as_os_str().is_empty() || fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, mode)?;
    }
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Make `dir` a directory only its owner (root) may enter: created 0700, and refused when it
/// is a symlink or belongs to someone else (who could then swap what pfstate opens in it).
pub fn private_dir(dir: &Path) -> Result<(), HostError> {
    let err = |e| HostError::io(dir.display(), e);
    create_dirs(dir, 0o700).map_err(err)?;
    let meta = fs::symlink_metadata(dir).map_err(err)?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.file_type().is_dir() || meta.uid() != me {
        return Err(HostError::Locked(format!(
            "{} must be a directory owned by uid {me}, but it is {}owned by uid {}; remove it and run pfstate again",
            dir.display(),
            if meta.file_type().is_symlink() {
                "a symlink "
            } else {
                ""
            },
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// The marker in the names of the temp files `fs::write_atomic` writes
/// (`.NAME.pfstate-tmp.PID`).
pub const TEMP_MARK: &str = ".pfstate-tmp.";

/// Remove the temp files in `dir` that a process no longer running left (a crash between the
/// create and the rename). Returns those removed.
pub fn sweep_temps(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = temp_pid(&name) else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// The PID in a temp file's name, if the name is one of ours.
fn temp_pid(name: &OsStr) -> Option<u32> {
    let name = name.to_str()?;
    let (_, pid) = name.strip_prefix('.')?.rsplit_once(TEMP_MARK)?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_links_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("real/pfstate")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("real/pfstate/host.yaml")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("real/up")).unwrap();
        let p = |abs: &str, last| confined(root, Path::new(abs), last);
        assert_eq!(p("/etc/pfstate/x", false), root.join("real/pfstate/x"));
        // The link itself for a write; its target, inside the root, for a read.
        assert_eq!(
            p("/etc/pfstate/host.yaml", false),
            root.join("real/pfstate/host.yaml")
        );
        assert_eq!(p("/etc/pfstate/host.yaml", true), root.join("real/passwd"));
        assert_eq!(p("/etc/up/etc/shadow", false), root.join("real/shadow"));
        assert_eq!(p("/../../x", false), root.join("x"));
        // A link to itself through the root never reaches the host's /etc.
        std::os::unix::fs::symlink("/loop", root.join("loop")).unwrap();
        assert!(fs::write(p("/loop/x", false), "x").is_err());
    }

    #[test]
    fn directories_get_their_mode_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let made = create_dirs(&dir.path().join("a/b"), 0o755);
        let private = private_dir(&dir.path().join("run/pfstate"));
        nix::sys::stat::umask(old);
        made.unwrap();
        private.unwrap();
        let mode = |p: &str| fs::metadata(dir.path().join(p)).unwrap().mode() & 0o7777;
        assert_eq!((mode("a"), mode("a/b")), (0o755, 0o755));
        assert_eq!((mode("run"), mode("run/pfstate")), (0o700, 0o700));
    }

    #[test]
    fn a_private_dir_that_is_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("p")).unwrap();
        let e = private_dir(&dir.path().join("p")).unwrap_err().to_string();
        assert!(e.contains("a symlink"), "{e}");
    }

    #[test]
    fn temps_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir
            .path()
            .join(format!(".host.yaml{TEMP_MARK}{}", u32::MAX - 1));
        let mine = dir
            .path()
            .join(format!(".host.yaml{TEMP_MARK}{}", std::process::id()));
        let other = dir.path().join("host.yaml");
        for f in [&dead, &mine, &other] {
            fs::write(f, "x").unwrap();
        }
        assert_eq!(sweep_temps(dir.path()), vec![dead.clone()]);
        assert!(!dead.exists() && mine.exists() && other.exists());
    }
}
