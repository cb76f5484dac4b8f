//! The timeline of one event: when pfstate's rules were deleted and written again, read from
//! an nf_tables event socket opened in the sandbox's network namespace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::Sandbox;
use pfstate::host::nft_events::{EventSocket, Kind};

/// What the event socket saw, with when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    /// pfstate's rules were deleted (an iptables table, an owned chain, or rules in it).
    Gone,
    /// A rule was written into an owned chain again.
    Back,
}

/// Records [`Mark`]s from inside the sandbox's network namespace until dropped.
pub(super) struct Recorder {
    marks: Arc<Mutex<Vec<(Instant, Mark)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn classify(ev: &pfstate::host::nft_events::Event) -> Option<Mark> {
    if ev.family != 2 || !matches!(ev.table.as_deref(), Some("nat" | "filter")) {
        return None;
    }
    let ours = ev
        .chain
        .as_deref()
        .is_some_and(|c| c.starts_with("PFSTATE-"));
    match ev.kind {
        Kind::DelTable => Some(Mark::Gone),
        Kind::DelChain | Kind::DelRule if ours => Some(Mark::Gone),
        Kind::NewRule if ours => Some(Mark::Back),
        _ => None,
    }
}

impl Recorder {
    pub(super) fn start(sb: &Sandbox) -> Recorder {
        let marks = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", sb.pid)).unwrap();
        let (m, s) = (Arc::clone(&marks), Arc::clone(&stop));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            // This thread only: the sandbox's netns, never the host's.
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let mut sock = EventSocket::open().unwrap();
            ready_tx.send(()).unwrap();
            while !s.load(Ordering::SeqCst) {
                if !sock.readable(Duration::from_millis(100)) {
                    continue;
                }
                let batch = sock.next_batch().unwrap();
                let now = Instant::now();
                let mut m = m.lock().unwrap();
                m.extend(batch.events.iter().filter_map(classify).map(|k| (now, k)));
            }
        });
        ready_rx.recv().unwrap();
        Recorder {
            marks,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn take(&self) -> Vec<(Instant, Mark)> {
        std::mem::take(&mut *self.marks.lock().unwrap())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// (deleted at, written again after) for each flush in a timeline.
pub(super) fn outages(marks: &[(Instant, Mark)]) -> Vec<(Instant, Duration)> {
    let mut out = Vec::new();
    let mut gone: Option<Instant> = None;
    for (t, m) in marks {
        match m {
            Mark::Gone if gone.is_none() => gone = Some(*t),
            Mark::Back => {
                if let Some(g) = gone.take() {
                    out.push((g, t.duration_since(g)));
                }
            }
            _ => {}
        }
    }
    assert!(
        gone.is_none(),
        "rules deleted and never written back: {marks:?}"
    );
    out
}
