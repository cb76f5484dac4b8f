//! The pfstate binary: parse arguments, run the command, print the outcome. What is printed
//! and the exit code are decided in `pfstate::cmd::output`.

use std::process::ExitCode;

use clap::Parser;
use pfstate::cli::Cli;
use pfstate::cmd::{self, Ctx, output};
use pfstate::host::live::LiveHost;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap exits 2 on a usage error, the code that means "changes pending" here: print its
        // message, and exit 1 like every other error (0 for --help and --version).
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::from(e.use_stderr()));
        }
    };
    // Before any file is touched: an unprivileged run must not leave files (a lock) behind.
    if let Some(name) = cli.command.needs_root()
        && !nix::unistd::geteuid().is_root()
    {
        eprintln!(
            "pfstate: `pfstate {name}` reads and changes the firewall and needs root; run it as root (sudo pfstate {name} ...)"
        );
        return ExitCode::from(1);
    }
    if cli.command.is_transaction() {
        // From here a signal is answered by finishing or rolling back, never by half a state.
        pfstate::apply::signals::catch();
    }
    let ctx = Ctx::new(&cli);
    let live = LiveHost::new(&ctx.root);
    let result = cmd::run(&cli, &ctx, &live.host());
    ExitCode::from(output::print(&ctx, &result))
}
