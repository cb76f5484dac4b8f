//! `pfstate watch`: repair pfstate's own rules as soon as another manager removes them.
//!
//! Two event sources feed one channel, each from a thread blocked in a read (idle, the process
//! uses no CPU): nf_tables ruleset events ([`crate::host::nft_events`]), reduced to one message per
//! transaction that touched pfstate's tables, chains or hooks; and firewalld's D-Bus
//! announcements ([`crate::host::firewalld`]). The loop debounces them
//! ([`policy`]) and then runs one check: the same observe/plan/apply as
//! `pfstate apply --repair`, which rewrites only what drifted and nothing when all is in place.
//!
//! pfstate's own restore is an nf_tables transaction too. The kernel names the committing
//! process of every transaction; the loop ignores those committed by the restores it ran, so a
//! repair does not trigger another check, and a fight (someone deleting again and again) is
//! seen as one.
//!
//! [`policy`] decides when to check (debounce, back-off from a fight).

pub mod policy;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::host::firewalld::{self, Announcement};
use crate::host::nft_events::{EventSocket, Kind, touches_owned};
use policy::{Debouncer, Policy, Verdict};

/// What woke the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// One nf_tables transaction touched pfstate's objects; `by` names the committing process.
    Ruleset {
        pid: Option<u32>,
        by: Option<String>,
    },
    /// The kernel dropped events: anything may have changed.
    Overflow,
    Firewalld(Announcement),
    /// An event source stopped, with the reason.
    Lost(&'static str, String),
}

/// What one check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub rewrote: bool,
    /// A line for the log ("applied: 1 rule set(s) rewritten (IPv4)").
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// Log to stderr; under systemd (`JOURNAL_STREAM` set) with the `<N>` priority prefix journald
/// reads, so the fight warnings stand out in `journalctl -p warning`.
pub fn log_stderr(level: Level, msg: &str) {
    let prefix = if std::env::var_os("JOURNAL_STREAM").is_some() {
        match level {
            Level::Info => "<6>",
            Level::Warning => "<4>",
            Level::Error => "<3>",
        }
    } else {
        match level {
            Level::Info => "",
            Level::Warning => "warning: ",
            Level::Error => "error: ",
        }
    };
    eprintln!("{prefix}pfstate watch: {msg}");
}

/// Subscribe to nf_tables events (in this thread, so a failure is reported at once) and
/// forward one [`Signal::Ruleset`] per transaction that touched pfstate's objects.
pub fn spawn_ruleset_events(tx: Sender<Signal>, prefix: String) -> Result<(), String> {
    let mut sock = EventSocket::open().map_err(|e| format!("nf_tables events: {e}"))?;
    std::thread::spawn(move || {
        let mut touched = false;
        loop {
            let batch = match sock.next_batch() {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Signal::Lost("nf_tables events", e.to_string()));
                    return;
                }
            };
            if batch.overflowed && tx.send(Signal::Overflow).is_err() {
                return;
            }
            for ev in &batch.events {
                touched |= touches_owned(ev, &prefix);
                if ev.kind != Kind::NewGen || !std::mem::take(&mut touched) {
                    continue;
                }
                let by = ev.process.as_ref().map(|p| match ev.pid {
                    Some(pid) => format!("{p} (pid {pid})"),
                    None => p.clone(),
                });
                let signal = Signal::Ruleset { pid: ev.pid, by };
                if tx.send(signal).is_err() {
                    return;
                }
            }
        }
    });
    Ok(())
}

/// Listen to firewalld's announcements on the system bus in a thread.
pub fn spawn_firewalld(tx: Sender<Signal>) {
    std::thread::spawn(move || {
        let result = firewalld::listen(|a| tx.send(Signal::Firewalld(a)).is_ok());
        if let Err(e) = result {
            let _ = tx.send(Signal::Lost("firewalld's D-Bus signals", e));
        }
    });
}

/// The event loop. Runs one check at start, then one per debounced burst, until every source
/// is gone or a check answers `Ok(None)` (nothing to watch any more). `own` says whether a
/// committing PID is one of the checks' own restores.
pub fn serve(
    rx: Receiver<Signal>,
    policy: Policy,
    mut check: impl FnMut() -> Result<Option<Repair>, String>,
    own: impl Fn(u32) -> bool,
    log: impl Fn(Level, &str),
) -> bool {
    let mut deb = Debouncer::new(policy);
    let mut cause = String::from("start");
    let mut first: Option<Instant> = Some(Instant::now());
    deb.event(Instant::now());
    let mut open = true;
    while open || deb.due().is_some() {
        let received = match deb.due() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
        };
        match received {
            Ok(signal) => {
                if let Some(why) = wakes(&signal, &own, &log) {
                    let now = Instant::now();
                    deb.event(now);
                    first.get_or_insert(now);
                    cause = why;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => open = false,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if deb.due().is_none_or(|d| d > Instant::now()) {
            continue;
        }
        let result = match check() {
            Ok(None) => return true,
            Ok(Some(r)) => Ok(r),
            Err(e) => Err(e),
        };
        let since = first.take().map(|t| t.elapsed()).unwrap_or_default();
        let repaired = report(&result, &cause, since, &log);
        let verdict = deb.checked(Instant::now(), repaired);
        say_verdict(&verdict, &cause, &log);
    }
    false
}

/// Whether a signal asks for a check, and how to name its cause in the log.
fn wakes(
    signal: &Signal,
    own: &impl Fn(u32) -> bool,
    log: &impl Fn(Level, &str),
) -> Option<String> {
    match signal {
        Signal::Ruleset { pid, by } => (!pid.is_some_and(own)).then(|| match by {
            Some(p) => format!("a change by {p}"),
            None => "a ruleset change".to_string(),
        }),
        Signal::Overflow => Some("a burst of ruleset changes".into()),
        Signal::Firewalld(a) => {
            log(Level::Info, &format!("firewalld: {a:?}"));
            Some(format!("firewalld {a:?}").to_lowercase())
        }
        Signal::Lost(source, why) => {
            log(
                Level::Warning,
                &format!("no longer listening to {source}: {why}"),
            );
            None
        }
    }
}

fn report(
    result: &Result<Repair, String>,
    cause: &str,
    since: Duration,
    log: &impl Fn(Level, &str),
) -> bool {
    match result {
        Ok(r) if r.rewrote => {
            log(
                Level::Warning,
                &format!(
                    "pfstate's rules had drifted after {cause}; repaired {:.0} ms after it: {}",
                    since.as_secs_f64() * 1000.0,
                    r.summary
                ),
            );
            true
        }
        Ok(_) => false,
        Err(e) => {
            log(Level::Error, &format!("check after {cause} failed: {e}"));
            false
        }
    }
}

fn say_verdict(verdict: &Verdict, cause: &str, log: &impl Fn(Level, &str)) {
    match verdict {
        Verdict::Calm => {}
        Verdict::Fighting { repairs, wait } => log(
            Level::Error,
            &format!(
                "another program keeps removing pfstate's rules (last: {cause}); {repairs} repairs within a minute. Not fighting it: the next repair waits {:.1} s (doubling up to 5 min). Find the program that rewrites the firewall and stop it, or make it leave the PFSTATE chains alone",
                wait.as_secs_f64()
            ),
        ),
        Verdict::Settled => log(
            Level::Info,
            "pfstate's rules stayed in place: back to repairing at once",
        ),
    }
}

/// Run the watcher: subscribe to every source available, then [`serve`] until they are all
/// gone. `legacy`: the rules live in iptables-legacy, which announces no events (the recheck
/// timer covers that host; here only firewalld's signals are left).
pub fn run(
    prefix: &str,
    legacy: bool,
    check: impl FnMut() -> Result<Option<Repair>, String>,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    if legacy {
        log_stderr(
            Level::Warning,
            "the rules live in iptables-legacy, which announces no changes: only firewalld's signals trigger repairs here; pfstate-recheck.timer catches the rest within 60 s",
        );
    } else {
        spawn_ruleset_events(tx.clone(), prefix.to_string())?;
    }
    spawn_firewalld(tx);
    log_stderr(
        Level::Info,
        &format!("watching the {prefix} rules for changes"),
    );
    if serve(
        rx,
        Policy::default(),
        check,
        crate::host::iptables::is_own_restore,
        log_stderr,
    ) {
        Ok(())
    } else {
        Err("every event source is gone".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn fast() -> Policy {
        Policy {
            quiet: Duration::from_millis(40),
            max_delay: Duration::from_millis(200),
            fight_repairs: 3,
            first_backoff: Duration::from_millis(300),
            ..Policy::default()
        }
    }

    /// A transaction committed by `pid`.
    fn by(pid: u32) -> Signal {
        Signal::Ruleset {
            pid: Some(pid),
            by: Some(format!("nft (pid {pid})")),
        }
    }

    /// Feed `signals` with a pause (ms) after each, while `serve` runs with a fake host whose
    /// checks, when `rewrite` says so, write as the "restores" 1000, 1001, ... (so `by(1000)`
    /// is the echo of the first check's write).
    fn scenario(signals: Vec<(Signal, u64)>, rewrite: bool) -> (usize, Vec<String>) {
        let (tx, rx) = mpsc::channel();
        let feeder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            for (s, pause_ms) in signals {
                tx.send(s).unwrap();
                std::thread::sleep(Duration::from_millis(pause_ms));
            }
        });
        let writes = Arc::new(Mutex::new(Vec::<u32>::new()));
        let checks = Arc::new(Mutex::new(0usize));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (c, w, l) = (Arc::clone(&checks), Arc::clone(&writes), Arc::clone(&logs));
        let w2 = Arc::clone(&writes);
        serve(
            rx,
            fast(),
            move || {
                *c.lock().unwrap() += 1;
                if rewrite {
                    let mut w = w.lock().unwrap();
                    let pid = 1000 + w.len() as u32;
                    w.push(pid);
                }
                Ok(Some(Repair {
                    rewrote: rewrite,
                    summary: "applied".into(),
                }))
            },
            move |pid| w2.lock().unwrap().contains(&pid),
            move |_, m| l.lock().unwrap().push(m.to_string()),
        );
        feeder.join().unwrap();
        let n = *checks.lock().unwrap();
        let logs = logs.lock().unwrap().clone();
        (n, logs)
    }

    #[test]
    fn one_check_per_burst_and_own_writes_are_ignored() {
        // The start check writes as 1000 (its echo is ignored). A foreign burst of three
        // transactions is one check, which writes as 1001 (ignored too).
        let (n, logs) = scenario(
            vec![
                (by(1000), 250),
                (by(7), 0),
                (by(8), 0),
                (by(9), 250),
                (by(1001), 100),
            ],
            true,
        );
        assert_eq!(n, 2, "{logs:#?}");
        assert!(
            logs.iter()
                .any(|l| l.contains("after a change by nft (pid 9)")),
            "{logs:#?}"
        );
    }

    #[test]
    fn a_check_that_finds_everything_in_place_says_nothing() {
        let (n, logs) = scenario(vec![(by(7), 60)], false);
        assert_eq!(n, 2);
        assert!(logs.is_empty(), "{logs:#?}");
    }

    #[test]
    fn a_fight_backs_off_and_says_so() {
        // A deletion every 20 ms for 0.6 s: without back-off that is up to 30 repairs.
        let signals = (0..30).map(|i| (by(100 + i), 20)).collect();
        let (n, logs) = scenario(signals, true);
        assert!(n <= 6, "{n} checks: {logs:#?}");
        assert!(
            logs.iter()
                .any(|l| l.contains("keeps removing pfstate's rules") && l.contains("waits 0.3 s")),
            "{logs:#?}"
        );
    }

    #[test]
    fn lost_sources_are_logged() {
        let (_, logs) = scenario(
            vec![(
                Signal::Lost("firewalld's D-Bus signals", "no bus".into()),
                1,
            )],
            false,
        );
        assert_eq!(
            logs,
            ["no longer listening to firewalld's D-Bus signals: no bus"]
        );
    }
}
