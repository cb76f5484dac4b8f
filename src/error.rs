//! One error type per layer: the spec (with file:line:col), the machine, and apply.

use std::fmt;

use thiserror::Error;

/// A position in the desired-state file, 1-based. `file` tells the files of a state made of
/// several apart (0: the first; see `SpecError::file_name`), and sorts errors by file first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
/// Lines and columns are `u32`: a file is at most 64 MiB, and a node of the YAML tree carries
/// one (12 bytes instead of 24, for every key and value of 10,000 forwards).
pub struct Location {
    pub file: u16,
    pub line: u32,
    pub column: u32,
}

impl Location {
    pub fn new(line: u64, column: u64) -> Self {
        // The parser reports 0 for positions it does not know; print those as 1:1.
        let clamp = |n: u64| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        Location {
            file: 0,
            line: clamp(line),
            column: clamp(column),
        }
    }
    pub fn start() -> Self {
        Location::new(1, 1)
    }
    /// The same position in file `file` of a state made of several.
    pub fn in_file(self, file: u16) -> Self {
        Location { file, ..self }
    }
}

/// One thing wrong with the desired state, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

/// Everything wrong with one file (or one state of several files): parse errors stop at the
/// first, validation collects all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
    /// The other files of a state made of several, for `Location::file` 1, 2, ...
    pub more_files: Vec<String>,
}

impl SpecError {
    pub fn one(file: &str, location: Location, message: impl Into<String>) -> Self {
        SpecError {
            file: file.to_string(),
            diagnostics: vec![Diagnostic {
                location,
                message: message.into(),
            }],
            more_files: Vec::new(),
        }
    }

    /// The name of the file a location is in.
    pub fn file_name(&self, location: Location) -> &str {
        match location.file {
            0 => &self.file,
            i => self
                .more_files
                .get(usize::from(i) - 1)
                .map_or(self.file.as_str(), String::as_str),
        }
    }
}

/// How many problems of one file are printed; the rest are counted. A file with thousands of
/// mistakes needs its first ones fixed, not a screen of repeats.
pub const MAX_SHOWN_DIAGNOSTICS: usize = 100;

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.diagnostics.iter().take(MAX_SHOWN_DIAGNOSTICS);
        for (i, d) in shown.enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.file_name(d.location),
                d.location.line,
                d.location.column,
                d.message
            )?;
        }
        let more = self.diagnostics.len().saturating_sub(MAX_SHOWN_DIAGNOSTICS);
        if more > 0 {
            write!(
                f,
                "\n{}: ... and {more} more problem(s) not shown",
                self.file
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

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
    /// Another pfstate holds the run lock (see `host::lock::RunLock`).
    #[error("{0}")]
    Locked(String),
}

impl HostError {
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        HostError::Io {
            path: path.to_string(),
            source,
        }
    }
}

/// Why a command did not do what was asked.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// Several files, each with its own problem (`validate FILE...`, or files that do not
    /// parse when several make one state).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Files(Vec<Error>),
    #[error("{0}")]
    Host(#[from] HostError),
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Apply failed, and what it had changed was put back.
    #[error("{cause}\nnothing was changed: the previous state was restored")]
    RolledBack { cause: Box<Error> },
    /// Apply failed and some parts could not be put back: the operator must look.
    #[error(
        "{cause}\nputting the previous state back failed for:\n{}\neverything else was put back; the next pfstate run tries again (run `pfstate plan` to see what is live)",
        bullets(failed)
    )]
    RollbackFailed {
        cause: Box<Error>,
        failed: Vec<String>,
    },
    /// A run found the journal of an interrupted one and could not put all of it back.
    #[error(
        "an interrupted pfstate run left changes that could not all be put back:\n{}\nfix the cause and run pfstate again",
        bullets(failed)
    )]
    RecoveryFailed { failed: Vec<String> },
    /// A signal arrived during a transaction.
    #[error("interrupted by {0}")]
    Interrupted(String),
    #[error("{0}")]
    Usage(String),
}

fn bullets(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("  - {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}
