//! The lab of `pfstate try FILE`: build a throwaway copy of the host the file describes out of network
//! namespaces, apply the file in its gateway, send real connections to every forward and print
//! what reached which backend.
//!
//! The lab (all in namespaces named `pft-<pid>-...`, removed on return, also on panic):
//!
//! ```text
//! WAN client ── <wan if> gateway <lan if> ── switch ── one host per backend address
//!   (listen addresses on the WAN side)        (pure L2)   └─ LAN client
//! ```
//! - interface names come from the file (`interfaces:` aliases, `listen.interface`, `via`,
//!   `snat.out_interface`); any other interface it names becomes a dummy device in the gateway;
//! - each backend gets the /24 (IPv6: /64) around it; the gateway takes `.1` (`::1`) of that net
//!   unless a backend has it, or a listen address of the file lies in it;
//! - listen addresses outside the LAN nets go on the WAN interface (default 192.0.2.1/24 and
//!   2001:db8::1/64); the WAN client sits in that net (inside `listen.from` when it can);
//! - backends route via the gateway; echo servers on every backend address and port answer with
//!   `<address:port>` and the source address they saw.
//!
//! The file is applied with `ip netns exec <gw> pfstate --root <tmp> apply FILE`, so no file of
//! the host is written and the host's own firewall and sysctls are never touched.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::model::Model;

mod addressing;
mod blueprint;
mod build;
mod checks;
mod sides;
#[cfg(test)]
mod tests;

use crate::lab as netlab;
use blueprint::LabPlan;
use build::Lab;
use checks::{Verdict, run_probes, table};

/// Timeout of one probe.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Timeout of the first probe of a row: right after `net.ipv6.conf.all.forwarding` goes
/// 0 -> 1 the first forwarded IPv6 connection was measured to take ~2 s (a retransmission).
pub(super) const FIRST_PROBE_TIMEOUT: Duration = Duration::from_millis(3500);
/// Port of the WAN client's server (for `snat:` entries).
pub(super) const CLIENT_PORT: u16 = 9000;
/// Consecutive failures after which a row stops probing.
pub(super) const GIVE_UP_AFTER: usize = 2;

/// What a trial found: the report, and how many of its checks failed.
pub struct Trial {
    pub text: String,
    pub checks: usize,
    pub failed: usize,
    /// The lab as built (interfaces, addresses).
    pub lab: String,
    /// One per row of the report's table.
    pub probes: Vec<Probe>,
}

/// One row of the report's table, as `--format json` gives it.
pub struct Probe {
    pub entry: String,
    pub proto: &'static str,
    pub from: &'static str,
    pub to: String,
    /// `ok`, `fail` or `skip`.
    pub result: &'static str,
    pub reached: String,
}

impl Probe {
    fn of(r: &checks::Row) -> Probe {
        Probe {
            entry: r.entry.clone(),
            proto: r.proto.name(),
            from: r.from.label(),
            to: r.target.to_string(),
            result: match r.verdict {
                Verdict::Ok => "ok",
                Verdict::Fail => "fail",
                Verdict::Skipped => "skip",
            },
            reached: r.result.clone(),
        }
    }
}

/// Build the lab for `model`, apply `file` (its source) in the lab gateway, probe every entry.
/// Needs root; the lab is removed on return.
pub fn run(model: &Model, file: &Path) -> Result<Trial, Error> {
    // No sweep of "stale" `pft-` namespaces here: on a shared machine their owner may live in
    // another PID namespace, where its pid looks dead from here.
    let plan = LabPlan::from_model(model);
    let start = Instant::now();
    let lab = Lab::build(&plan).map_err(|e| lab_error("building the lab", e))?;
    let mut text = String::new();
    text.push_str(&plan.describe());
    let built = start.elapsed();

    let tmp = TempDir::new()?;
    let applied = lab.apply(file, &tmp.0)?;
    let _ = writeln!(
        text,
        "lab built in {} ms; pfstate apply in the lab gateway: {}",
        built.as_millis(),
        applied.trim().lines().last().unwrap_or("done")
    );

    let rows = run_probes(&plan, model, &lab);
    drop(lab);
    text.push('\n');
    text.push_str(&table(&rows));
    let failed = rows.iter().filter(|r| r.verdict == Verdict::Fail).count();
    let ok = rows.iter().filter(|r| r.verdict == Verdict::Ok).count();
    let _ = writeln!(
        text,
        "\n{ok} check(s) passed, {failed} failed; the lab is removed, the host was not touched"
    );
    Ok(Trial {
        text,
        checks: rows.len(),
        failed,
        lab: plan.describe(),
        probes: rows.iter().map(Probe::of).collect(),
    })
}

pub(super) fn lab_error(what: &str, e: netlab::NetlabError) -> Error {
    Error::Usage(format!("pfstate try: {what}: {e}"))
}

/// A private temporary directory for the lab's `--root`, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, Error> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pfstate-try-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| Error::Read {
            path: dir.display().to_string(),
            source: e,
        })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
