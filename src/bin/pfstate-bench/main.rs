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
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

mod control;
mod data;
mod util;

use control::*;
use data::*;
use util::*;

pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub(crate) fn interrupted() -> Result<(), String> {
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
