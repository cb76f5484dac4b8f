//! Entering a lab namespace from a thread, checked, so nothing meant for the lab lands in the
//! root namespace.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::sched::{CloneFlags, setns};

use super::error::NetlabError;

/// Move the calling thread into the namespace behind `fd`, then check that it really is there
/// (same inode as `/proc/thread-self/ns/net`) so nothing meant for the lab lands in the root
/// namespace.
pub(crate) fn enter(fd: &OwnedFd, name: &str) -> Result<(), NetlabError> {
    setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|errno| NetlabError::Setns {
        netns: name.to_string(),
        errno,
    })?;
    let want = File::from(
        fd.try_clone()
            .map_err(|e| NetlabError::io("dup netns fd", e))?,
    )
    .metadata()
    .map_err(|e| NetlabError::io("stat netns fd", e))?
    .ino();
    let have = std::fs::metadata("/proc/thread-self/ns/net")
        .map_err(|e| NetlabError::io("/proc/thread-self/ns/net", e))?
        .ino();
    if want != have {
        return Err(NetlabError::Invalid(format!(
            "thread is not in netns {name} after setns"
        )));
    }
    Ok(())
}
