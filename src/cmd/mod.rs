//! The commands, one file each, chaining the stages; [`output`] prints an [`Outcome`] and
//! decides the exit code.

mod apply;
pub mod ctx;
pub mod output;
mod plan;
mod prepare;
mod remove;
mod render;
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
        Cmd::Render { file } => render::render_file(host, file),
        Cmd::Diff { old, new } => render::diff_files(host, old, new),
        Cmd::Plan { file } => plan::plan_file(ctx, host, file),
        Cmd::Apply {
            file,
            dry_run: true,
            ..
        } => plan::plan_file(ctx, host, file),
        Cmd::Apply { file, boot, .. } => apply::apply_file(ctx, host, file, *boot),
        Cmd::Status { file } => status::status(ctx, host, file.as_deref()),
        Cmd::Remove { prefix } => remove::remove(ctx, host, prefix.as_deref()),
        Cmd::Try { file } => try_lab::try_file(ctx, file),
    }
}
