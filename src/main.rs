//! The pfstate binary: parse arguments, run the command, print the outcome. What is printed
//! and the exit code are decided in `pfstate::cmd::output`.

use std::process::ExitCode;

use clap::Parser;
use pfstate::cli::Cli;
use pfstate::cmd::{self, Ctx, output};
use pfstate::host::live::LiveHost;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx::new(&cli);
    let live = LiveHost::new(&ctx.root);
    let result = cmd::run(&cli, &ctx, &live.host());
    ExitCode::from(output::print(&ctx, &result))
}
