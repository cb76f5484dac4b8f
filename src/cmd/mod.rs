//! The commands, one file each, chaining the stages; [`output`] prints an [`Outcome`] and
//! decides the exit code.

mod apply;
mod confirm;
pub mod ctx;
mod generate;
pub mod json;
pub mod output;
mod plan;
mod prepare;
mod remove;
mod render;
mod report;
pub mod status;
mod try_lab;
mod validate;

use crate::cli::{Cli, Cmd};
use crate::error::Error;
use crate::host::Host;

pub use ctx::{Ctx, Outcome};
pub use render::render_text;

/// Run the command `cli` names against `host`.
pub fn run(cli: &Cli, ctx: &Ctx, host: &Host) -> Result<Outcome, Error> {
    match &cli.command {
        Cmd::Validate { files } => validate::validate_files(files),
        Cmd::Render { file } => render::render_file(ctx, host, file),
        Cmd::Diff { old, new } => render::diff_files(host, old, new),
        Cmd::Plan { files } => plan::plan_files(ctx, host, files),
        Cmd::Apply {
            files,
            dry_run: true,
            ..
        } => plan::plan_files(ctx, host, files),
        Cmd::Apply {
            files,
            boot,
            confirm,
            ..
        } => apply::apply_files(ctx, host, files, *boot, confirm.as_deref()),
        Cmd::Confirm { revert: None, .. } => confirm::confirm(ctx, host),
        Cmd::Confirm {
            revert: Some(id),
            wait,
        } => confirm::revert(ctx, host, id, *wait),
        Cmd::Status { files } => status::status(ctx, host, files),
        Cmd::Remove { prefix } => remove::remove(ctx, host, prefix.as_deref()),
        Cmd::Try { file } => try_lab::try_file(file),
        Cmd::Generate(what) => generate::run(what),
    }
}
