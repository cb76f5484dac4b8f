//! The control plane: apply, no-op apply, plan and one-change apply of N forwards, against
//! `iptables-restore` of the same rules.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::interrupted;
use crate::util::*;

/// The figures of one size.
#[derive(Default)]
pub(crate) struct ControlFigures {
    pub(crate) apply: Series,
    pub(crate) restore: Series,
    pub(crate) noop: Series,
    pub(crate) plan: Series,
    pub(crate) change: Series,
    pub(crate) rss_kb: Series,
    pub(crate) noop_restores: usize,
    pub(crate) plan_restores: usize,
    pub(crate) noop_changed_kernel: bool,
    pub(crate) apply_restores: usize,
    pub(crate) change_restores: usize,
    pub(crate) change_chains: usize,
    pub(crate) change_rules: usize,
    pub(crate) total_rules: usize,
    pub(crate) total_chains: usize,
}

// Over 60 lines on purpose: one measurement protocol (apply, baseline restore, no-op, plan,
// one change) per run, kept in one place so every run is measured alike.
pub(crate) fn control_plane(
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

pub(crate) fn row(
    out: &mut String,
    what: &str,
    value: &str,
    base: &str,
    ratio: &str,
    target: &str,
) {
    let _ = writeln!(out, "{what:<44} {value:<24} {base:<32} {ratio:<8} {target}");
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// `targets`: the targets are for 10,000 forwards; other sizes are reported only.
// Over 60 lines on purpose: the rows of the report, one after the other, as printed.
pub(crate) fn report_control(
    out: &mut String,
    n: usize,
    f: &ControlFigures,
    full: bool,
    targets: bool,
) {
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
