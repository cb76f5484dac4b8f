//! The pfstate binary: parse arguments, run the command, print the outcome. What is printed
//! and the exit code are decided in `pfstate::cmd::output`.

use std::process::ExitCode;

use clap::Parser;
use pfstate::cli::Cli;
use pfstate::cmd::{self, Ctx, output};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx::new(&cli);
    let result = cmd::run(&cli, &ctx);
    ExitCode::from(output::print(&ctx, &result))
}
