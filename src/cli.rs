//! The command line, defined once with clap's derive API.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Keep a host's port forwarding, NAT and firewall rules in the desired state a YAML file
/// describes, in iptables chains pfstate owns, without touching anyone else's rules.
#[derive(Debug, Parser)]
#[command(name = "pfstate", version = crate::build_info::VERSION, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, clap::Args)]
pub struct Global {
    /// Read and write every file (/etc/...) under DIR; enable the unit by creating its
    /// [Install] symlinks directly instead of over D-Bus (like `systemctl --root`).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// When to colour diffs.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Parse and check files; errors as FILE:LINE:COL: message.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print everything apply would install: restore payloads, the sysctl.d file, the unit.
    Render { file: PathBuf },
    /// Unified diff between the renders of two desired states (exit 2 when they differ).
    Diff { old: PathBuf, new: PathBuf },
    /// Unified diff between the live host and FILE (exit 2 when there are changes). Several
    /// files, or a directory of *.yaml, make one state.
    Plan {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Converge the host to FILE; nothing is written when it is already converged. Several
    /// files, or a directory of *.yaml (in name order), make one state.
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only show what would change, like `plan`.
        #[arg(long)]
        dry_run: bool,
        /// Put pfstate's own objects back as they were unless `pfstate confirm` arrives within
        /// DURATION (60s, 2m, 1m30s), even if this session is gone.
        #[arg(long, value_name = "DURATION", conflicts_with_all = ["dry_run", "boot"])]
        confirm: Option<String>,
        /// Used by the boot unit: apply FILE as it is, without rewriting the persisted copy.
        #[arg(long, hide = true)]
        boot: bool,
    },
    /// Keep the state applied with `apply --confirm`.
    Confirm {
        /// Used by the timer or process that `apply --confirm` started: put back the state of
        /// transaction ID (if it is still pending).
        #[arg(long, hide = true, value_name = "ID")]
        revert: Option<String>,
        /// With --revert: wait for the deadline first (the detached process).
        #[arg(long, hide = true, requires = "revert")]
        wait: bool,
    },
    /// Owned chains with counters per forward, active connections per forward, drift, and a
    /// pending confirmation.
    Status {
        /// The desired state to compare with (default: the persisted /etc/pfstate/host.yaml);
        /// several files, or a directory, make one state.
        files: Vec<PathBuf>,
    },
    /// Build a throwaway copy of FILE's host in network namespaces, apply FILE there, send real
    /// connections to every forward and print what reached which backend; never touches the
    /// host's own firewall.
    Try { file: PathBuf },
    /// Delete every owned chain and jump, the persisted state, the sysctl.d file and the unit.
    Remove {
        /// The chain prefix to remove (default: the persisted state's, else PFSTATE).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Write the man pages or a shell completion script (for packagers; see docs/packaging.md).
    #[command(hide = true, subcommand)]
    Generate(Generate),
}

/// What `pfstate generate` writes (src/cmd/generate/).
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Write pfstate.8 and one pfstate-COMMAND.8 per command into DIR (created if missing).
    Man { dir: PathBuf },
    /// Print the completion script for SHELL on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Cmd {
    /// The command's name, as `--format json` reports it (`"command"`).
    pub fn name(&self) -> &'static str {
        match self {
            Cmd::Validate { .. } => "validate",
            Cmd::Render { .. } => "render",
            Cmd::Diff { .. } => "diff",
            Cmd::Plan { .. } => "plan",
            Cmd::Apply { .. } => "apply",
            Cmd::Confirm { .. } => "confirm",
            Cmd::Status { .. } => "status",
            Cmd::Try { .. } => "try",
            Cmd::Remove { .. } => "remove",
            Cmd::Generate(_) => "generate",
        }
    }

    /// The command's name when it reads or changes the kernel and so needs root.
    pub fn needs_root(&self) -> Option<&'static str> {
        match self {
            Cmd::Plan { .. } => Some("plan"),
            Cmd::Apply { .. } => Some("apply"),
            Cmd::Status { .. } => Some("status"),
            Cmd::Remove { .. } => Some("remove"),
            Cmd::Confirm { .. } => Some("confirm"),
            // `try` says so itself, in its own words.
            Cmd::Try { .. }
            | Cmd::Validate { .. }
            | Cmd::Render { .. }
            | Cmd::Diff { .. }
            | Cmd::Generate(_) => None,
        }
    }

    /// Whether the command changes the host (as one transaction).
    pub fn is_transaction(&self) -> bool {
        matches!(self, Cmd::Apply { dry_run: false, .. } | Cmd::Remove { .. })
    }
}
