//! Shared helpers for tests that run the pfstate binary, inside throwaway network namespaces.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pfstate::lab::{Netns, NetnsOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_pfstate");

/// The result of one pfstate run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    pub fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run pfstate here (for commands that need no root: validate, render, diff).
pub fn pfstate(args: &[&str]) -> Run {
    Run::from(
        Command::new(BIN)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run pfstate"),
    )
}

/// A network namespace with its own --root directory and a PATH shim that logs every
/// iptables-restore call (and can make one fail), so tests can prove "no kernel write".
pub struct Host {
    pub ns: Netns,
    pub root: tempfile::TempDir,
    pub shim: tempfile::TempDir,
}

impl Host {
    pub fn new(role: &str) -> Host {
        let ns = Netns::create(
            role,
            NetnsOptions {
                ipv6: true,
                ..NetnsOptions::default()
            },
        )
        .expect("netns");
        let root = tempfile::tempdir().expect("tempdir");
        let shim = tempfile::tempdir().expect("tempdir");
        for tool in ["iptables-save", "ip6tables-save"] {
            let real = which(tool);
            let script = format!(
                "#!/bin/sh\necho {tool} >> {log}\nexec {real} \"$@\"\n",
                log = shim.path().join("save.log").display(),
                real = real.display()
            );
            let path = shim.path().join(tool);
            std::fs::write(&path, script).expect("write shim");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for tool in ["iptables-restore", "ip6tables-restore"] {
            let real = which(tool);
            let script = format!(
                "#!/bin/sh\necho {tool} >> {log}\nif [ -n \"$PFSTATE_TEST_FAIL\" ] && [ \"$PFSTATE_TEST_FAIL\" = {tool} ]; then cat >/dev/null; echo 'injected failure' >&2; exit 1; fi\nexec {real} \"$@\"\n",
                log = shim.path().join("restore.log").display(),
                real = real.display()
            );
            let path = shim.path().join(tool);
            std::fs::write(&path, script).expect("write shim");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Host { ns, root, shim }
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.shim.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// `pfstate --root ROOT ARGS...` inside the namespace.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns.name(), BIN, "--root"])
            .arg(self.root.path())
            .args(args);
        cmd.env("PATH", self.path_env()).env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().expect("run pfstate"))
    }

    /// How many times iptables-restore / ip6tables-restore ran so far.
    pub fn restores(&self) -> usize {
        std::fs::read_to_string(self.shim.path().join("restore.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// How many times pfstate ran iptables-save / ip6tables-save so far.
    pub fn saves(&self) -> usize {
        std::fs::read_to_string(self.shim.path().join("save.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// `iptables-save` (or ip6tables-save) without comments, counters or volatile lines.
    pub fn save(&self, tool: &str) -> String {
        let out = self.ns.exec(tool, &[]).expect("save");
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Load rules that some other system put there.
    pub fn load(&self, tool: &str, payload: &str) {
        let out = self
            .ns
            .exec_output(
                "sh",
                &["-c", &format!("{tool} --noflush <<'EOF'\n{payload}EOF\n")],
            )
            .expect("load");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn file(&self, target: &str) -> PathBuf {
        self.root.path().join(target.trim_start_matches('/'))
    }

    pub fn sysctl(&self, key: &str) -> String {
        self.ns.sysctl(key).expect("sysctl").unwrap_or_default()
    }
}

pub fn which(tool: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("{tool} not found; install the iptables package")
}

/// Write a YAML file into a directory and return its path as a string.
pub fn write_yaml(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write yaml");
    p.display().to_string()
}

/// The text of `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text of `examples/NAME`.
pub fn example(name: &str) -> String {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `examples/*.yaml`, sorted by name.
pub fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("examples/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    assert!(out.len() > 10, "{out:?}");
    out
}
