//! What can go wrong while building or using a lab.

use thiserror::Error;

/// What went wrong while building or using a lab.
#[derive(Debug, Error)]
pub enum NetlabError {
    /// A command (`ip`, `sysctl`, ...) failed; `message` holds its stderr.
    #[error("{command}: {message}")]
    Command { command: String, message: String },
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// Entering a namespace failed.
    #[error("setns into {netns}: {errno}")]
    Setns { netns: String, errno: nix::Error },
    /// A name or argument this module refuses (wrong prefix, too long, ...).
    #[error("{0}")]
    Invalid(String),
}

impl NetlabError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        NetlabError::Io {
            what: what.into(),
            source,
        }
    }
}
