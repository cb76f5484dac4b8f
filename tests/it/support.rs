//! A booted systemd sandbox (tests/support/sandbox.sh) as a Rust value that halts on drop.
//!
//! Shelling out to the script keeps the namespace juggling in one reviewed place and avoids the
//! pitfalls of a native launcher (a `PR_SET_PDEATHSIG` tied to cargo's per-test thread, a child
//! holding the test's stdout open).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sandbox.sh");

/// Why the sandbox tests cannot run here, or `None`. Only "not root" and "no systemd" (and the
/// few tools the recipe cannot do without) are reasons to skip.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    for p in ["/lib/systemd/systemd", "/usr/bin/systemctl"] {
        if !Path::new(p).exists() {
            return Some(format!("systemd missing ({p})"));
        }
    }
    for tool in [
        "unshare",
        "nsenter",
        "script",
        "setpriv",
        "dbus-daemon",
        "iptables",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{tool} missing (see tests/support/sandbox.sh for packages)"
            ));
        }
    }
    None
}

/// A command's exit code, stdout and stderr, for assertion messages.
pub fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The cargo target dir holding this test binary (bound read-only into the sandbox).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test>-<hash>
    exe.ancestors()
        .nth(3)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

pub struct Sandbox {
    pub pid: u32,
    pub dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    veth: String,
    /// Extra dirs made writable inside (SANDBOX_OVERLAY), e.g. "usr" to install a package.
    overlay: String,
    running: bool,
}

fn script(args: &[&str], dir: &Path, veth: &str, overlay: &str) -> Output {
    Command::new(SCRIPT)
        .args(args.iter().take(1))
        .arg(dir)
        .args(args.iter().skip(1))
        .env(
            "SANDBOX_BIND",
            format!("{}:{}", target_dir().display(), env!("CARGO_MANIFEST_DIR")),
        )
        .env("SANDBOX_VETH", veth)
        .env("SANDBOX_OVERLAY", overlay)
        .stdin(Stdio::null())
        .output()
        .expect("run sandbox.sh")
}

impl Sandbox {
    /// Boot a fresh sandbox in a new state dir under cargo's tmp dir; `veth` names interfaces
    /// created before systemd starts (space-separated).
    pub fn boot(name: &str, veth: &str) -> Sandbox {
        Sandbox::boot_with_overlay(name, veth, "")
    }

    /// [`Sandbox::boot`] with more writable dirs (space-separated top-level names, e.g. "usr").
    pub fn boot_with_overlay(name: &str, veth: &str, overlay: &str) -> Sandbox {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("sbx-{name}-"))
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("state dir");
        let mut sb = Sandbox {
            pid: 0,
            dir: tmp.path().to_path_buf(),
            tmp: Some(tmp),
            veth: veth.to_string(),
            overlay: overlay.to_string(),
            running: false,
        };
        sb.start();
        sb
    }

    fn start(&mut self) -> Duration {
        let t0 = Instant::now();
        let out = script(&["boot"], &self.dir, &self.veth, &self.overlay);
        let took = t0.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "sandbox boot failed:\n{stderr}");
        self.pid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("boot printed no PID; stderr:\n{stderr}"));
        self.running = true;
        eprintln!(
            "[sandbox] boot {} -> PID {} in {:.3} s",
            self.dir.display(),
            self.pid,
            took.as_secs_f64()
        );
        took
    }

    /// Halt (idempotent).
    pub fn stop(&mut self) -> Duration {
        let t0 = Instant::now();
        if self.running {
            let out = script(&["stop"], &self.dir, &self.veth, &self.overlay);
            assert!(
                out.status.success(),
                "sandbox stop failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            self.running = false;
            eprintln!(
                "[sandbox] stop PID {} in {:.3} s",
                self.pid,
                t0.elapsed().as_secs_f64()
            );
        }
        t0.elapsed()
    }

    /// Halt and boot the same state dir: same /etc and /var, fresh netns, /run and /tmp.
    pub fn reboot(&mut self) -> Duration {
        let t0 = Instant::now();
        self.stop();
        self.start();
        let took = t0.elapsed();
        eprintln!("[sandbox] reboot in {:.3} s", took.as_secs_f64());
        took
    }

    /// What the sandbox's `/` is from the host (for `Root::under` / `--root`).
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid))
    }

    /// Its system bus, from the host.
    pub fn bus(&self) -> String {
        format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.pid
        )
    }

    /// Run a command inside (nsenter, `DBUS_*` removed), with optional stdin.
    pub fn exec_with(&self, argv: &[&str], envs: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(SCRIPT);
        cmd.arg("exec").arg(&self.dir).args(argv);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("sandbox.sh exec");
        if let Some(data) = stdin {
            child.stdin.take().unwrap().write_all(data).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    pub fn exec(&self, argv: &[&str]) -> Output {
        self.exec_with(argv, &[], None)
    }

    /// Run inside and return stdout, panicking with stderr on failure.
    pub fn check(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?} failed in the sandbox: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The tail of the sandbox console, for failure messages.
    pub fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.running {
            let out = script(&["stop"], &self.dir, &self.veth, &self.overlay);
            self.running = !out.status.success();
        }
        if self.running {
            // Never delete the overlay dirs of a sandbox that may still be running.
            if let Some(tmp) = self.tmp.take() {
                eprintln!("[sandbox] stop failed; keeping {}", tmp.keep().display());
            }
        }
    }
}
