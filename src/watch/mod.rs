//! `pfstate watch`: repair pfstate's own rules as soon as another manager removes them.
//!
//! Two event sources feed one channel, each from a thread blocked in a read (idle, the process
//! uses no CPU): nf_tables ruleset events ([`crate::host::nft_events`]), reduced to one message per
//! transaction that touched pfstate's tables, chains or hooks; and firewalld's D-Bus
//! announcements ([`crate::host::firewalld`]). The loop debounces them
//! ([`policy`]) and then runs one check: the same observe/plan/apply as
//! `pfstate apply --boot`, which rewrites only what drifted and nothing when all is in place.
//!
//! pfstate's own restore is an nf_tables transaction too. The loop reads the generation id
//! before and after each check and ignores the transactions in between, so a repair does not
//! trigger another check, and a fight (someone deleting again and again) is seen as one.
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
        generation: Option<u32>,
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
                let signal = Signal::Ruleset {
                    generation: ev.generation,
                    by,
                };
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
/// is gone or a check answers `Ok(None)` (nothing to watch any more). `genid` reads the
/// nf_tables generation (`None` on hosts without nf_tables).
pub fn serve(
    rx: Receiver<Signal>,
    policy: Policy,
    mut check: impl FnMut() -> Result<Option<Repair>, String>,
    genid: impl Fn() -> Option<u32>,
    log: impl Fn(Level, &str),
) -> bool {
    let mut deb = Debouncer::new(policy);
    let mut own: Vec<(u32, u32)> = Vec::new();
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
        let g0 = genid();
        let result = match check() {
            Ok(None) => return true,
            Ok(Some(r)) => Ok(r),
            Err(e) => Err(e),
        };
        let g1 = genid();
        if let (Some(a), Some(b)) = (g0, g1)
            && b > a
        {
            own.push((a, b));
            if own.len() > 8 {
                own.remove(0);
            }
        }
        let since = first.take().map(|t| t.elapsed()).unwrap_or_default();
        let repaired = report(&result, &cause, since, &log);
        let verdict = deb.checked(Instant::now(), repaired);
        say_verdict(&verdict, &cause, &log);
    }
    false
}

/// Whether a signal asks for a check, and how to name its cause in the log.
fn wakes(signal: &Signal, own: &[(u32, u32)], log: &impl Fn(Level, &str)) -> Option<String> {
    match signal {
        Signal::Ruleset { generation, by } => {
            let mine = generation.is_some_and(|g| own.iter().any(|(a, b)| *a < g && g <= *b));
            (!mine).then(|| match by {
                Some(p) => format!("a change by {p}"),
                None => "a ruleset change".to_string(),
            })
        }
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
        crate::host::save_cache::genid,
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
    use std::sync::atomic::{AtomicU32, Ordering};
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

    fn foreign(generation: u32) -> Signal {
        Signal::Ruleset {
            generation: Some(generation),
            by: Some("nft (pid 7)".into()),
        }
    }

    /// Feed `signals` with a pause after each, while `serve` runs with a fake host whose
    /// checks rewrite (and so commit a generation) when `rewrite` says so.
    fn scenario(signals: Vec<(Signal, u32)>, rewrite: bool) -> (usize, Vec<String>) {
        let generation = Arc::new(AtomicU32::new(10));
        let (tx, rx) = mpsc::channel();
        let feeder_gen = Arc::clone(&generation);
        let feeder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            for (s, pause_ms) in signals {
                if let Signal::Ruleset {
                    generation: Some(g),
                    ..
                } = &s
                {
                    feeder_gen.fetch_max(*g, Ordering::SeqCst);
                }
                tx.send(s).unwrap();
                std::thread::sleep(Duration::from_millis(pause_ms.into()));
            }
        });
        let checks = Arc::new(Mutex::new(0usize));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (c, g, l) = (
            Arc::clone(&checks),
            Arc::clone(&generation),
            Arc::clone(&logs),
        );
        serve(
            rx,
            fast(),
            move || {
                *c.lock().unwrap() += 1;
                if rewrite {
                    g.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Some(Repair {
                    rewrote: rewrite,
                    summary: "applied".into(),
                }))
            },
            || Some(generation.load(Ordering::SeqCst)),
            move |_, m| l.lock().unwrap().push(m.to_string()),
        );
        feeder.join().unwrap();
        let n = *checks.lock().unwrap();
        let logs = logs.lock().unwrap().clone();
        (n, logs)
    }

    #[test]
    fn one_check_per_burst_and_own_writes_are_ignored() {
        // The start check rewrites generation 10 -> 11 (own: its echo is ignored). A foreign
        // burst of three transactions (12..14) is one check, which commits 15 (own, ignored).
        let (n, logs) = scenario(
            vec![
                (foreign(11), 250),
                (foreign(12), 0),
                (foreign(13), 0),
                (foreign(14), 250),
                (foreign(15), 100),
            ],
            true,
        );
        assert_eq!(n, 2, "{logs:#?}");
        assert!(
            logs.iter()
                .any(|l| l.contains("after a change by nft (pid 7)")),
            "{logs:#?}"
        );
    }

    #[test]
    fn a_check_that_finds_everything_in_place_says_nothing() {
        let (n, logs) = scenario(vec![(foreign(11), 60)], false);
        assert_eq!(n, 2);
        assert!(logs.is_empty(), "{logs:#?}");
    }

    #[test]
    fn a_fight_backs_off_and_says_so() {
        // A deletion every 20 ms for 0.6 s: without back-off that is up to 30 repairs.
        let signals = (0..30).map(|i| (foreign(100 + 2 * i), 20)).collect();
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
