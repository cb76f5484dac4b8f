//! Run the revert of an `apply --confirm` at its deadline, even when the session that applied
//! is gone (the SSH connection the change cut off, a closed terminal).
//!
//! With systemd, a transient timer and service in the system manager (StartTransientUnit over
//! D-Bus): they belong to no session, survive the caller, and `pfstate confirm` stops the timer.
//! Without a system bus (containers, `--root`), a detached process in its own session, with no
//! terminal, that polls the record once a second and exits when it is confirmed.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::error::HostError;
use crate::host::fs::Root;

/// The transient units of one transaction: `pfstate-confirm-ID.timer` triggers the service of
/// the same name.
pub fn unit_stem(id: &str) -> String {
    format!("pfstate-confirm-{id}")
}

/// The command the revert runs: `BINARY [--root DIR] confirm --revert ID`.
pub fn revert_argv(binary: &str, root: &Root, id: &str) -> Vec<String> {
    let mut argv = vec![binary.to_string()];
    if let Some(dir) = &root.dir {
        argv.push("--root".into());
        argv.push(dir.display().to_string());
    }
    argv.extend(["confirm".into(), "--revert".into(), id.to_string()]);
    argv
}

/// Start `argv` (`revert_argv` and `--wait`) as a detached process that waits for the deadline
/// and then reverts; returns its pid.
pub fn spawn_process(argv: &[String]) -> Result<u32, HostError> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent. A new session has
    // no controlling terminal, so the hangup of the SSH session's terminal never reaches it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd.spawn().map_err(|e| HostError::Command {
        program: argv[0].clone(),
        message: format!("cannot start the revert process: {e}"),
    })?;
    // Not waited for: it outlives this process and is reaped by init.
    Ok(child.id())
}
