//! SIGTERM (what `systemctl stop` sends), SIGINT (Ctrl-C) and SIGHUP (a closed terminal) during
//! `apply` or `remove` must not leave half a transaction: once [`catch`] ran, they only set a
//! flag, which the transaction checks between its steps ([`check`]) and answers by putting
//! everything back. The handler does nothing else, so it is async-signal-safe.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::error::Error;

/// The last signal caught, 0 for none.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(signal: nix::libc::c_int) {
    CAUGHT.store(signal, Ordering::SeqCst);
}

/// From now on, SIGTERM, SIGINT and SIGHUP are noted instead of ending the process.
pub fn catch() {
    let action = SigAction::new(
        SigHandler::Handler(note),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// The signal caught so far, if any.
pub fn caught() -> Option<Signal> {
    Signal::try_from(CAUGHT.load(Ordering::SeqCst)).ok()
}

/// `Err` once a signal was caught: the transaction stops before its next change.
pub fn check() -> Result<(), Error> {
    match caught() {
        Some(signal) => Err(Error::Interrupted(signal.as_str().to_string())),
        None => Ok(()),
    }
}
