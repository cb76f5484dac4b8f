//! `pfstate-bench`: pfstate at scale, each figure next to its baseline measured in the same run.
//!
//! ```text
//! sudo -E cargo run --release --bin pfstate-bench            # everything (about 3-5 minutes)
//! sudo target/release/pfstate-bench --runs 3 --no-50k        # quicker
//! ```
//!
//! Everything that touches netfilter runs inside throwaway network namespaces created for the
//! run (`pft-<pid>-<n>-<role>`, via `pfstate::lab`) and deleted afterwards, also on Ctrl-C
//! and on panic; pfstate runs with `--root <tempdir>`, so no file of the host is written. The
//! root namespace's firewall and sysctls are never touched.
//!
//! Figures (medians [min-max] over the runs):
//! - apply of N forwards into an empty namespace vs `iptables-restore --noflush` of the very
//!   rules pfstate installed (its `iptables-save`, loaded into another fresh namespace);
//! - plan and no-op apply of the same file, with the number of `iptables-restore` processes
//!   they started (a PATH shim counts them: a no-op must start none);
//! - apply after changing one forward, vs the full apply, and the size of what it wrote;
//! - peak RSS of apply (wait4 rusage: pfstate or its largest child);
//! - data plane: new TCP connections per second from a client namespace through the gateway
//!   namespace to a backend, to the forward a linear chain would serve last, with 1 forward,
//!   with N forwards as pfstate lays them out, and with N forwards in linear chains.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pfstate::lab::{GatewayOptions, Netns, NetnsOptions, Topology};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

struct Opts {
    runs: usize,
    n: usize,
    big: Option<usize>,
    dataplane: bool,
    control: bool,
    seconds: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: pfstate-bench [--runs N] [--forwards N] [--big N | --no-50k] [--no-dataplane] [--no-control] [--seconds S]\n\
         defaults: --runs 5 --forwards 10000 --big 50000 --seconds 4 (data plane, per point, 3-5 s)"
    );
    std::process::exit(2)
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        runs: 5,
        n: 10_000,
        big: Some(50_000),
        dataplane: true,
        control: true,
        seconds: 4.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |a: &str| -> f64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{a} needs a number");
                usage()
            })
        };
        match a.as_str() {
            "--runs" => o.runs = (num(&a) as usize).clamp(1, 50),
            "--forwards" => o.n = (num(&a) as usize).clamp(2, 50_000),
            "--big" => o.big = Some((num(&a) as usize).clamp(2, 55_000)),
            "--no-50k" => o.big = None,
            "--no-dataplane" => o.dataplane = false,
            "--no-control" => o.control = false,
            "--seconds" => o.seconds = num(&a).clamp(1.0, 5.0),
            _ => usage(),
        }
    }
    o
}

/// `pfstate-bench --engine N`: time the pure stages in this process (no root needed).
fn engine(n: usize) {
    let text = state_yaml(n, None, None);
    let t = Instant::now();
    let spec = pfstate::spec::parse("state.yaml", &text).expect("parses");
    let parse = t.elapsed();
    drop(spec);
    let t = Instant::now();
    let model = pfstate::spec::load_str("state.yaml", &text).expect("valid");
    let load = t.elapsed();
    let t = Instant::now();
    let desired = pfstate::render::render(&model);
    let render = t.elapsed();
    let rs = desired.ruleset(pfstate::model::Family::V4);
    let t = Instant::now();
    let plan = pfstate::plan::plan_family(&desired.prefix, rs, &Default::default());
    let plan_t = t.elapsed();
    let t = Instant::now();
    let payload = plan.payload();
    let payload_t = t.elapsed();
    let t = Instant::now();
    let live = pfstate::ruleset::dump::parse(&payload);
    let parse_save = t.elapsed();
    let t = Instant::now();
    let again = pfstate::plan::plan_family(&desired.prefix, rs, &live);
    let noop_plan = t.elapsed();
    let t = Instant::now();
    let d = pfstate::plan::view::unified(&again.live_view, &again.desired_view, "a", "b");
    let diff_t = t.elapsed();
    let changed = state_yaml(n, None, Some(n / 2));
    let t = Instant::now();
    let fd = pfstate::plan::view::unified(&text, &changed, "a", "b");
    let file_diff = t.elapsed();
    println!(
        "state file diff (one change) {file_diff:?} ({} bytes)",
        fd.len()
    );
    println!(
        "{n} forwards: yaml {parse:?}, parse+validate {load:?}, render {render:?}, plan (empty host) {plan_t:?}, payload {payload_t:?} ({} bytes), parse save {parse_save:?}, plan (converged, {} to write) {noop_plan:?}, view diff {diff_t:?} ({} bytes)",
        payload.len(),
        again.payload().len(),
        d.len()
    );
}

fn main() {
    if let Some(n) = std::env::args()
        .skip_while(|a| a != "--engine")
        .nth(1)
        .and_then(|v| v.parse().ok())
    {
        engine(n);
        return;
    }
    let opts = parse_opts();
    if !pfstate::lab::have_root() {
        eprintln!("pfstate-bench needs root (it creates network namespaces)");
        std::process::exit(1);
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        nix::libc::signal(
            nix::libc::SIGINT,
            on_signal as extern "C" fn(nix::libc::c_int) as nix::libc::sighandler_t,
        );
        nix::libc::signal(
            nix::libc::SIGTERM,
            on_signal as extern "C" fn(nix::libc::c_int) as nix::libc::sighandler_t,
        );
    }
    let code = match run(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pfstate-bench: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Result<TempDir, String> {
        let base = std::env::temp_dir();
        for i in 0..1000u32 {
            let p = base.join(format!("pfstate-bench-{}-{what}-{i}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return Ok(TempDir(p));
            }
        }
        Err("cannot create a temporary directory".into())
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pfstate binary next to this one (built on demand when run through `cargo run`).
fn pfstate_binary() -> Result<PathBuf, String> {
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
fn backend(i: usize) -> String {
    let a = i + 1;
    format!("10.{}.{}.{}:80", (a >> 16) & 255, (a >> 8) & 255, a & 255)
}

const FIRST_PORT: usize = 10_000;

/// A desired state of `n` forwards on ports 10000.. ; `last` overrides the last forward's
/// backend (the data-plane target), `changed` moves one forward to another backend.
fn state_yaml(n: usize, last: Option<&str>, changed: Option<usize>) -> String {
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

fn single_yaml(port: usize, to: &str) -> String {
    format!(
        "version: 1\nforwards:\n  - name: target\n    listen:\n      port: {port}\n    to: {to}\n"
    )
}

/// What a finished process cost.
struct Ran {
    secs: f64,
    max_rss_kb: i64,
    ok: bool,
    stdout: String,
}

/// Run a command to completion, timing it and reading its rusage (wait4).
fn run_timed(mut cmd: Command, stdin: Option<&Path>) -> Result<Ran, String> {
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
fn in_ns(ns: &Netns, shim: &Shim, program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns.name()]).arg(program).args(args);
    c.env("PATH", shim.path_env());
    c
}

/// PATH shims for the restore tools: each call is logged (and its payload kept) before the
/// real tool runs, so the benchmark sees every kernel write pfstate makes.
struct Shim {
    dir: TempDir,
    log: PathBuf,
}

const RESTORE_TOOLS: [&str; 6] = [
    "iptables-restore",
    "ip6tables-restore",
    "iptables-nft-restore",
    "ip6tables-nft-restore",
    "iptables-legacy-restore",
    "ip6tables-legacy-restore",
];

impl Shim {
    fn new() -> Result<Shim, String> {
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
    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        )
    }
    fn calls(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
    /// The payload of call `i` (0-based).
    fn payload(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("payload.{i}"))).unwrap_or_default()
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

fn fresh_ns(role: &str) -> Result<Netns, String> {
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

fn save(ns: &Netns) -> Result<String, String> {
    ns.exec("iptables-save", &[]).map_err(|e| e.to_string())
}

/// iptables-save without comments and counters: what to compare before/after.
fn ruleset_text(ns: &Netns) -> Result<String, String> {
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
struct Series(Vec<f64>);

impl Series {
    fn push(&mut self, v: f64) {
        self.0.push(v);
    }
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
    /// `0.52 s [0.49–0.61]`, scaled and with a unit.
    fn show(&self, scale: f64, unit: &str, digits: usize) -> String {
        format!(
            "{:.d$}{unit} [{:.d$}–{:.d$}]",
            self.median() * scale,
            self.min() * scale,
            self.max() * scale,
            d = digits
        )
    }
}

/// The figures of one size.
#[derive(Default)]
struct ControlFigures {
    apply: Series,
    restore: Series,
    noop: Series,
    plan: Series,
    change: Series,
    rss_kb: Series,
    noop_restores: usize,
    plan_restores: usize,
    noop_changed_kernel: bool,
    apply_restores: usize,
    change_restores: usize,
    change_chains: usize,
    change_rules: usize,
    total_rules: usize,
    total_chains: usize,
}

fn control_plane(
    pfstate: &Path,
    n: usize,
    runs: usize,
    full: bool,
) -> Result<ControlFigures, String> {
    let files = TempDir::new("files")?;
    let state = files.path().join("state.yaml");
    let changed = files.path().join("changed.yaml");
    std::fs::write(&state, state_yaml(n, None, None)).map_err(|e| e.to_string())?;
    std::fs::write(&changed, state_yaml(n, None, Some(n / 2))).map_err(|e| e.to_string())?;
    let saved = files.path().join("saved.rules");
    let st = state.to_str().expect("utf-8 temp path");
    let ch = changed.to_str().expect("utf-8 temp path");
    let mut f = ControlFigures::default();
    for run in 0..runs {
        interrupted()?;
        eprint!("  {n} forwards, run {}/{runs}: ", run + 1);
        let a = fresh_ns("bench-a")?;
        let root = TempDir::new("root")?;
        let shim = Shim::new()?;
        let r = root.path().to_str().expect("utf-8 temp path");
        let apply = run_timed(in_ns(&a, &shim, pfstate, &["--root", r, "apply", st]), None)?;
        if !apply.ok {
            return Err("pfstate apply failed".into());
        }
        f.apply.push(apply.secs);
        f.rss_kb.push(apply.max_rss_kb as f64);
        f.apply_restores = shim.calls();
        eprint!("apply {:.2}s ", apply.secs);

        // The floor: the very rules pfstate installed, into another fresh namespace.
        let text = save(&a)?;
        f.total_rules = text.lines().filter(|l| l.starts_with("-A ")).count();
        f.total_chains = text.lines().filter(|l| l.starts_with(':')).count();
        std::fs::write(&saved, &text).map_err(|e| e.to_string())?;
        {
            let b = fresh_ns("bench-b")?;
            let mut c = Command::new("ip");
            c.args(["netns", "exec", b.name(), "iptables-restore", "--noflush"]);
            let restore = run_timed(c, Some(&saved))?;
            if !restore.ok {
                return Err("iptables-restore of the saved rules failed".into());
            }
            f.restore.push(restore.secs);
            eprint!("restore {:.2}s ", restore.secs);
        }
        if !full {
            eprintln!();
            continue;
        }
        interrupted()?;
        let before = ruleset_text(&a)?;
        let calls = shim.calls();
        let noop = run_timed(in_ns(&a, &shim, pfstate, &["--root", r, "apply", st]), None)?;
        if !noop.ok || !noop.stdout.contains("in sync") {
            return Err(format!("no-op apply did something: {}", noop.stdout));
        }
        f.noop.push(noop.secs);
        f.noop_restores += shim.calls() - calls;
        f.noop_changed_kernel |= ruleset_text(&a)? != before;
        let calls = shim.calls();
        let plan = run_timed(in_ns(&a, &shim, pfstate, &["--root", r, "plan", st]), None)?;
        if !plan.ok {
            return Err("plan of a converged host did not exit 0".into());
        }
        f.plan.push(plan.secs);
        f.plan_restores += shim.calls() - calls;
        eprint!("no-op {:.2}s plan {:.2}s ", noop.secs, plan.secs);

        let calls = shim.calls();
        let change = run_timed(in_ns(&a, &shim, pfstate, &["--root", r, "apply", ch]), None)?;
        if !change.ok {
            return Err("apply of one change failed".into());
        }
        f.change.push(change.secs);
        f.change_restores = shim.calls() - calls;
        let payload = shim.payload(calls);
        f.change_chains = payload.lines().filter(|l| l.starts_with(':')).count();
        f.change_rules = payload.lines().filter(|l| l.starts_with("-A ")).count();
        eprintln!("one change {:.2}s", change.secs);
    }
    Ok(f)
}

fn row(out: &mut String, what: &str, value: &str, base: &str, ratio: &str, target: &str) {
    let _ = writeln!(out, "{what:<44} {value:<24} {base:<32} {ratio:<8} {target}");
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// `targets`: the issue's targets are for 10,000 forwards; other sizes are reported only.
fn report_control(out: &mut String, n: usize, f: &ControlFigures, full: bool, targets: bool) {
    let target = |t: String| if targets { t } else { "(reported)".to_string() };
    let ratio = f.apply.median() / f.restore.median();
    row(
        out,
        &format!("apply, {n} forwards, empty netns"),
        &f.apply.show(1.0, " s", 2),
        &format!("restore {}", f.restore.show(1.0, " s", 2)),
        &format!("{ratio:.2}x"),
        &target(format!("<= 1.3x {}", verdict(ratio <= 1.3))),
    );
    let _ = writeln!(
        out,
        "{:<44} {} rules in {} chains (iptables-save), {} restore process(es)",
        "", f.total_rules, f.total_chains, f.apply_restores
    );
    let rss = f.rss_kb.median() / 1024.0;
    row(
        out,
        &format!("peak RSS of apply, {n} forwards"),
        &f.rss_kb.show(1.0 / 1024.0, " MB", 1),
        "",
        "",
        &target(format!("< 100 MB {}", verdict(rss < 100.0))),
    );
    if !full {
        return;
    }
    let noop = f.noop.median();
    row(
        out,
        &format!("no-op apply, {n} forwards"),
        &f.noop.show(1.0, " s", 3),
        &format!(
            "{} restore(s), ruleset {}",
            f.noop_restores,
            if f.noop_changed_kernel {
                "CHANGED"
            } else {
                "unchanged"
            }
        ),
        "",
        &target(format!(
            "< 0.5 s, no write {}",
            verdict(noop < 0.5 && f.noop_restores == 0 && !f.noop_changed_kernel)
        )),
    );
    let plan = f.plan.median();
    row(
        out,
        &format!("plan, {n} forwards (in sync)"),
        &f.plan.show(1.0, " s", 3),
        &format!("{} restore(s)", f.plan_restores),
        "",
        &target(format!(
            "< 0.5 s {}",
            verdict(plan < 0.5 && f.plan_restores == 0)
        )),
    );
    let speedup = f.apply.median() / f.change.median();
    row(
        out,
        &format!("apply of one changed forward among {n}"),
        &f.change.show(1.0, " s", 3),
        &format!("full apply {}", f.apply.show(1.0, " s", 2)),
        &format!("{speedup:.1}x"),
        &target(format!(">= 5x faster {}", verdict(speedup >= 5.0))),
    );
    let _ = writeln!(
        out,
        "{:<44} wrote {} chain(s), {} rule(s) in {} restore process(es)",
        "", f.change_chains, f.change_rules, f.change_restores
    );
}

// ---------------------------------------------------------------------------------------
// Data plane

/// A server in a namespace that accepts and closes, until dropped.
struct Acceptor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Acceptor {
    fn start(ns: &Netns, port: u16) -> Result<Acceptor, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let path = ns.path();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let entered = File::open(&path).map_err(|e| e.to_string()).and_then(|f| {
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = entered {
                let _ = tx.send(Err(e));
                return;
            }
            let l = match TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = l.set_nonblocking(true);
            // A deep accept queue: a busy machine may not run this thread for a while, and a
            // full queue drops SYNs (a 1 s retransmit, counted as a failure).
            // SAFETY: listen() again on our own listening socket only resizes its backlog.
            unsafe { nix::libc::listen(l.as_raw_fd(), 4096) };
            let _ = tx.send(Ok(()));
            let fd = l.as_raw_fd();
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => drop(s),
                    Err(_) => {
                        let mut p = nix::libc::pollfd {
                            fd,
                            events: nix::libc::POLLIN,
                            revents: 0,
                        };
                        // SAFETY: one valid pollfd.
                        unsafe { nix::libc::poll(&mut p, 1, 100) };
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Acceptor {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("server did not start".into()),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sequential connect/close from `ns` to `dst` for `secs`: (connections per second, failures).
fn connect_rate(ns: &Netns, dst: SocketAddr, secs: f64) -> Result<(f64, usize), String> {
    ns.run_in(move || {
        let start = Instant::now();
        let limit = Duration::from_secs_f64(secs);
        let (mut ok, mut failed) = (0usize, 0usize);
        // Bounded in time and in count.
        while start.elapsed() < limit && ok + failed < 2_000_000 {
            match TcpStream::connect_timeout(&dst, Duration::from_millis(500)) {
                Ok(s) => {
                    // RST on close: no TIME_WAIT on the client, so ports are not exhausted.
                    let l = nix::libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    // SAFETY: a valid socket and a properly sized option value.
                    unsafe {
                        nix::libc::setsockopt(
                            s.as_raw_fd(),
                            nix::libc::SOL_SOCKET,
                            nix::libc::SO_LINGER,
                            (&l as *const nix::libc::linger).cast(),
                            std::mem::size_of::<nix::libc::linger>() as nix::libc::socklen_t,
                        )
                    };
                    ok += 1;
                }
                Err(_) => failed += 1,
            }
            if INTERRUPTED.load(Ordering::Relaxed) {
                break;
            }
        }
        (ok as f64 / start.elapsed().as_secs_f64(), failed)
    })
    .map_err(|e| e.to_string())
}

fn linear_payload(n: usize, last: &str) -> Result<String, String> {
    let model = pfstate::spec::load_str("linear.yaml", &state_yaml(n, Some(last), None))
        .map_err(|e| e.to_string())?;
    let desired = pfstate::render::render_linear(&model);
    let rs = desired.ruleset(pfstate::model::Family::V4);
    let plan = pfstate::plan::plan_family(&desired.prefix, rs, &Default::default());
    Ok(plan.payload())
}

struct DataFigures {
    single: Series,
    tree: Series,
    linear: Series,
    failures: usize,
}

fn data_plane(pfstate: &Path, n: usize, runs: usize, secs: f64) -> Result<DataFigures, String> {
    let files = TempDir::new("dp")?;
    let target_port = FIRST_PORT + n - 1;
    let be = format!("{}:{}", Topology::BE1, 8080);
    let many = files.path().join("many.yaml");
    let one = files.path().join("one.yaml");
    std::fs::write(&many, state_yaml(n, Some(&be), None)).map_err(|e| e.to_string())?;
    std::fs::write(&one, single_yaml(target_port, &be)).map_err(|e| e.to_string())?;
    let linear = files.path().join("linear.rules");
    std::fs::write(&linear, linear_payload(n, &be)?).map_err(|e| e.to_string())?;

    let topo = Topology::gateway(GatewayOptions {
        servers: false,
        ..GatewayOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let gw = topo.gw();
    gw.set_sysctls(&[("net.ipv4.ip_forward", "1")])
        .map_err(|e| e.to_string())?;
    topo.client()
        .set_sysctls(&[("net.ipv4.ip_local_port_range", "1024 65000")])
        .map_err(|e| e.to_string())?;
    let backend = topo.host("be1").ok_or("no be1")?;
    let _server = Acceptor::start(backend, 8080)?;
    let dst = SocketAddr::from((Topology::GW_WAN, target_port as u16));
    let shim = Shim::new()?;
    let reset = files.path().join("reset.rules");
    // FORWARD policy DROP (as Docker sets it): only the accepts let the connections through.
    std::fs::write(
        &reset,
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
    )
    .map_err(|e| e.to_string())?;
    let mut fig = DataFigures {
        single: Series::default(),
        tree: Series::default(),
        linear: Series::default(),
        failures: 0,
    };
    for run in 0..runs {
        for layout in ["single", "tree", "linear"] {
            interrupted()?;
            // Start from an empty ruleset (flushes every chain of the gateway) and no flows.
            let mut c = Command::new("ip");
            c.args(["netns", "exec", gw.name(), "iptables-restore"]);
            if !run_timed(c, Some(&reset))?.ok {
                return Err("reset of the gateway failed".into());
            }
            let _ = gw.exec_output("conntrack", &["-F"]);
            let root = TempDir::new("dproot")?;
            let r = root.path().to_str().expect("utf-8");
            let loaded = match layout {
                "single" => run_timed(
                    in_ns(
                        gw,
                        &shim,
                        pfstate,
                        &["--root", r, "apply", one.to_str().expect("utf-8")],
                    ),
                    None,
                )?,
                "tree" => run_timed(
                    in_ns(
                        gw,
                        &shim,
                        pfstate,
                        &["--root", r, "apply", many.to_str().expect("utf-8")],
                    ),
                    None,
                )?,
                _ => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", gw.name(), "iptables-restore", "--noflush"]);
                    run_timed(c, Some(&linear))?
                }
            };
            if !loaded.ok {
                return Err(format!("loading the {layout} layout failed"));
            }
            let (rate, failed) = connect_rate(topo.client(), dst, secs)?;
            fig.failures += failed;
            eprintln!(
                "  data plane run {}/{runs}, {layout}: {rate:.0} conn/s{}",
                run + 1,
                if failed > 0 {
                    format!(" ({failed} failed)")
                } else {
                    String::new()
                }
            );
            match layout {
                "single" => fig.single.push(rate),
                "tree" => fig.tree.push(rate),
                _ => fig.linear.push(rate),
            }
        }
    }
    Ok(fig)
}

fn report_data(out: &mut String, n: usize, d: &DataFigures) {
    let base = d.single.median();
    let tree = d.tree.median() / base;
    let lin = d.linear.median() / base;
    row(
        out,
        &format!("new TCP conn/s, {n} forwards (pfstate)"),
        &d.tree.show(1.0, "", 0),
        &format!("1 forward {}", d.single.show(1.0, "", 0)),
        &format!("{tree:.2}x"),
        &format!(">= 0.8x {}", verdict(tree >= 0.8)),
    );
    row(
        out,
        &format!("new TCP conn/s, {n} forwards, linear chains"),
        &d.linear.show(1.0, "", 0),
        &format!("1 forward {}", d.single.show(1.0, "", 0)),
        &format!("{lin:.2}x"),
        "(for comparison)",
    );
    if d.failures > 0 {
        let _ = writeln!(out, "{:<44} {} connection attempts failed", "", d.failures);
    }
}

fn run(opts: &Opts) -> Result<(), String> {
    let pfstate = pfstate_binary()?;
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ipt = Command::new("iptables")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pfstate-bench: {cores} cores, kernel {}, {ipt}, {} runs per figure (median [min–max])",
        kernel.trim(),
        opts.runs
    );
    row(
        &mut out,
        "figure",
        "pfstate",
        "baseline (same run)",
        "ratio",
        "target",
    );
    if opts.control {
        eprintln!("control plane, {} forwards:", opts.n);
        let f = control_plane(&pfstate, opts.n, opts.runs, true)?;
        report_control(&mut out, opts.n, &f, true, opts.n == 10_000);
    }
    if let Some(big) = opts.big.filter(|_| opts.control) {
        eprintln!("control plane, {big} forwards:");
        let runs = opts.runs.clamp(1, 3);
        let g = control_plane(&pfstate, big, runs, true)?;
        report_control(&mut out, big, &g, true, false);
    }
    if opts.dataplane {
        eprintln!("data plane, {} forwards:", opts.n);
        let d = data_plane(&pfstate, opts.n, opts.runs.clamp(1, 5), opts.seconds)?;
        report_data(&mut out, opts.n, &d);
    }
    let _ = writeln!(out, "({:.0} s in all)", started.elapsed().as_secs_f64());
    print!("{out}");
    std::io::stdout().flush().map_err(|e| e.to_string())
}
