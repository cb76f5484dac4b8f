//! What every command shares: the context built from the global options, and the [`Outcome`]
//! a command reports.

use std::io::IsTerminal;

use crate::cli::{Cli, ColorChoice, Format};
use crate::host::fs::Root;

/// What a command reports: whether the host differs (or changed), and text to print.
#[derive(Debug, Default)]
pub struct Outcome {
    pub changed: bool,
    /// The diff (plan/diff/apply) or other main output.
    pub diff: String,
    /// Short lines for a person: summaries, "in sync".
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    /// `plan`, `apply --dry-run` and `diff` exit 2 when `changed`.
    pub changes_exit_2: bool,
    /// What `--format json` adds to the fields every command has (docs/json.md).
    pub json: serde_json::Map<String, serde_json::Value>,
    /// A failure that still has a result to show (`try`'s probe table): exit code 1.
    pub failure: Option<crate::error::Error>,
}

impl Outcome {
    /// Set one field of the JSON document.
    pub fn set(&mut self, key: &str, value: serde_json::Value) {
        self.json.insert(key.to_string(), value);
    }
}

pub struct Ctx {
    /// The subcommand's name (`--format json` reports it).
    pub command: &'static str,
    pub root: Root,
    pub color: bool,
    pub format: Format,
}

impl Ctx {
    pub fn new(cli: &Cli) -> Ctx {
        let color = match cli.global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        } && cli.global.format == Format::Text;
        let root = cli
            .global
            .root
            .as_ref()
            .map(Root::under)
            .unwrap_or_else(Root::live);
        Ctx {
            command: cli.command.name(),
            root,
            color,
            format: cli.global.format,
        }
    }
}
