//! What every part of the bench shares: temporary directories, the pfstate binary, the test
//! states, timed runs with rusage, PATH shims for the restore tools, namespaces, statistics.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use pfstate::lab::{Netns, NetnsOptions};

/// A directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> Result<TempDir, String> {
        let base = std::env::temp_dir();
        for i in 0..1000u32 {
            let p = base.join(format!("pfstate-bench-{}-{what}-{i}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return Ok(TempDir(p));
            }
        }
        Err("cannot create a temporary directory".into())
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pfstate binary next to this one (built on demand when run through `cargo run`).
pub(crate) fn pfstate_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let sibling = me.with_file_name("pfstate");
    if sibling.exists() {
        return Ok(sibling);
    }
    if let Ok(cargo) = std::env::var("CARGO") {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let release = me.parent().is_some_and(|d| d.ends_with("release"));
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--bin", "pfstate", "--manifest-path", manifest]);
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().map_err(|e| e.to_string())?;
        if st.success() && sibling.exists() {
            return Ok(sibling);
        }
    }
    Err(format!(
        "{} not found: build it first (cargo build --release)",
        sibling.display()
    ))
}

/// The backend of forward `i`: distinct addresses in 10.0.0.0/8 (never 10.77.0.0/16, the lab).
pub(crate) fn backend(i: usize) -> String {
    let a = i + 1;
    format!("10.{}.{}.{}:80", (a >> 16) & 255, (a >> 8) & 255, a & 255)
}

pub(crate) const FIRST_PORT: usize = 10_000;

/// A desired state of `n` forwards on ports 10000.. ; `last` overrides the last forward's
/// backend (the data-plane target), `changed` moves one forward to another backend.
pub(crate) fn state_yaml(n: usize, last: Option<&str>, changed: Option<usize>) -> String {
    let mut s = String::with_capacity(n * 80);
    s.push_str("version: 1\nforwards:\n");
    for i in 0..n {
        let to = match (last, changed) {
            (Some(t), _) if i + 1 == n => t.to_string(),
            (_, Some(c)) if c == i => "10.254.254.254:8081".to_string(),
            _ => backend(i),
        };
        let _ = write!(
            s,
            "  - name: f{i}\n    listen:\n      port: {}\n    to: {to}\n",
            FIRST_PORT + i
        );
    }
    s
}

pub(crate) fn single_yaml(port: usize, to: &str) -> String {
    format!(
        "version: 1\nforwards:\n  - name: target\n    listen:\n      port: {port}\n    to: {to}\n"
    )
}

/// What a finished process cost.
pub(crate) struct Ran {
    pub(crate) secs: f64,
    pub(crate) max_rss_kb: i64,
    pub(crate) ok: bool,
    pub(crate) stdout: String,
}

/// Run a command to completion, timing it and reading its rusage (wait4).
pub(crate) fn run_timed(mut cmd: Command, stdin: Option<&Path>) -> Result<Ran, String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    match stdin {
        Some(p) => cmd.stdin(File::open(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => cmd.stdin(Stdio::null()),
    };
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let ereader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let pid = child.id() as nix::libc::pid_t;
    let mut status: nix::libc::c_int = 0;
    // SAFETY: plain wait4 on our own child, with valid out-pointers.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    if r != pid {
        return Err(format!("wait4 {cmd:?} failed"));
    }
    let stdout = String::from_utf8_lossy(&reader.join().unwrap_or_default()).to_string();
    let stderr = String::from_utf8_lossy(&ereader.join().unwrap_or_default()).to_string();
    let ok = nix::libc::WIFEXITED(status) && nix::libc::WEXITSTATUS(status) == 0;
    if !ok && !stderr.is_empty() {
        eprintln!("  ({:?} said: {})", cmd.get_program(), stderr.trim());
    }
    Ok(Ran {
        secs,
        max_rss_kb: usage.ru_maxrss,
        ok,
        stdout,
    })
}

/// `ip netns exec NS program args...` with the shim directory first in PATH.
pub(crate) fn in_ns(ns: &Netns, shim: &Shim, program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns.name()]).arg(program).args(args);
    c.env("PATH", shim.path_env());
    c
}

/// PATH shims for the restore tools: each call is logged (and its payload kept) before the
/// real tool runs, so the benchmark sees every kernel write pfstate makes.
pub(crate) struct Shim {
    pub(crate) dir: TempDir,
    pub(crate) log: PathBuf,
}

pub(crate) const RESTORE_TOOLS: [&str; 6] = [
    "iptables-restore",
    "ip6tables-restore",
    "iptables-nft-restore",
    "ip6tables-nft-restore",
    "iptables-legacy-restore",
    "ip6tables-legacy-restore",
];

impl Shim {
    pub(crate) fn new() -> Result<Shim, String> {
        let dir = TempDir::new("shim")?;
        let log = dir.path().join("calls.log");
        for tool in RESTORE_TOOLS {
            let Some(real) = which(tool) else { continue };
            let script = format!(
                "#!/bin/sh\nn=$(wc -l < '{log}' 2>/dev/null || echo 0)\np='{dir}/payload.'$n\ncat > \"$p\"\necho \"{tool} $*\" >> '{log}'\nexec '{real}' \"$@\" < \"$p\"\n",
                log = log.display(),
                dir = dir.path().display(),
                real = real.display(),
            );
            let path = dir.path().join(tool);
            std::fs::write(&path, script).map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
        }
        std::fs::write(&log, "").map_err(|e| e.to_string())?;
        Ok(Shim { dir, log })
    }
    pub(crate) fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        )
    }
    pub(crate) fn calls(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
    /// The payload of call `i` (0-based).
    pub(crate) fn payload(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("payload.{i}"))).unwrap_or_default()
    }
}

pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

pub(crate) fn fresh_ns(role: &str) -> Result<Netns, String> {
    Netns::create(
        role,
        NetnsOptions {
            rp_filter: 1,
            ipv6: false,
            conntrack_acct: false,
        },
    )
    .map_err(|e| e.to_string())
}

pub(crate) fn save(ns: &Netns) -> Result<String, String> {
    ns.exec("iptables-save", &[]).map_err(|e| e.to_string())
}

/// iptables-save without comments and counters: what to compare before/after.
pub(crate) fn ruleset_text(ns: &Netns) -> Result<String, String> {
    Ok(save(ns)?
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.split_once(' ') {
            Some((c, rest)) if c.ends_with(']') && l.starts_with(':') => {
                format!("{c} {}", rest.split(' ').next().unwrap_or(""))
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

#[derive(Default)]
pub(crate) struct Series(pub(crate) Vec<f64>);

impl Series {
    pub(crate) fn push(&mut self, v: f64) {
        self.0.push(v);
    }
    pub(crate) fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    pub(crate) fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
    pub(crate) fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
    /// `0.52 s [0.49–0.61]`, scaled and with a unit.
    pub(crate) fn show(&self, scale: f64, unit: &str, digits: usize) -> String {
        format!(
            "{:.d$}{unit} [{:.d$}–{:.d$}]",
            self.median() * scale,
            self.min() * scale,
            self.max() * scale,
            d = digits
        )
    }
}
