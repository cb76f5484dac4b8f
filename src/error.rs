//! One error type per layer.

use thiserror::Error;

/// Something the machine refused or could not do.
#[derive(Debug, Error)]
pub enum HostError {
    #[error("{program}: {message}")]
    Command { program: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no system bus ({0}); use --root DIR to install the unit without systemd running")]
    NoSystemBus(String),
    #[error("systemd: {0}")]
    Systemd(String),
    /// Another pfstate holds the run lock (see `persist::RunLock`).
    #[error("{0}")]
    Locked(String),
}
