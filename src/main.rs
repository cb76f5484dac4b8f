//! The pfstate binary: parse arguments, run the command, map the outcome to an exit code.
//!
//! Exit codes (SPEC): 0 success / in sync; 1 error (nothing left half-applied);
//! 2 from `plan`, `apply --dry-run` and `diff` when there are changes.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use pfstate::app::{self, Ctx};
use pfstate::cli::{Cli, Format};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx::new(&cli);
    let result = app::run(&cli, &ctx);
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    // A closed pipe (`pfstate plan | head`) is not an error worth reporting.
    let code = match result {
        Ok(out) => {
            match ctx.format {
                Format::Json => {
                    let v = serde_json::json!({
                        "changed": out.changed,
                        "diff": out.diff,
                        "notes": out.notes,
                        "warnings": out.warnings,
                    });
                    let _ = writeln!(stdout, "{v}");
                }
                Format::Text => {
                    for w in &out.warnings {
                        let _ = writeln!(stderr, "warning: {w}");
                    }
                    let _ = write!(stdout, "{}", app::present_diff(&ctx, &out.diff));
                    for n in &out.notes {
                        let _ = writeln!(stdout, "{n}");
                    }
                }
            }
            if out.changes_exit_2 && out.changed {
                2
            } else {
                0
            }
        }
        Err(e) => {
            match ctx.format {
                Format::Json => {
                    let v = serde_json::json!({ "changed": false, "error": e.to_string() });
                    let _ = writeln!(stdout, "{v}");
                }
                Format::Text => {
                    let text = e.to_string();
                    // Spec errors already start with FILE:LINE:COL; others get the program name.
                    if matches!(
                        e,
                        pfstate::error::Error::Spec(_) | pfstate::error::Error::Usage(_)
                    ) {
                        let _ = writeln!(stderr, "{text}");
                    } else {
                        let _ = writeln!(stderr, "pfstate: {text}");
                    }
                }
            }
            1
        }
    };
    ExitCode::from(code)
}
