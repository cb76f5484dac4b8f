//! Everything a command prints, in text or JSON, and the ONE place the exit code is decided.
//!
//! Exit codes (SPEC): 0 success / in sync; 1 error (nothing left half-applied);
//! 2 from `plan`, `apply --dry-run` and `diff` when there are changes.

use std::io::Write;

use crate::cli::Format;
use crate::error::Error;

use super::ctx::{Ctx, Outcome};

/// Print a command's result and return the process exit code.
pub fn print(ctx: &Ctx, result: &Result<Outcome, Error>) -> u8 {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    // A closed pipe (`pfstate plan | head`) is not an error worth reporting.
    if ctx.format == Format::Json {
        let _ = writeln!(stdout, "{}", super::json::document(ctx, result));
        return exit_code(result);
    }
    match result {
        Ok(out) => {
            for w in &out.warnings {
                let _ = writeln!(stderr, "warning: {w}");
            }
            let _ = write!(stdout, "{}", present_diff(ctx, &out.diff));
            for n in &out.notes {
                let _ = writeln!(stdout, "{n}");
            }
            if let Some(e) = &out.failure {
                print_error(&mut stderr, e);
            }
        }
        Err(e) => print_error(&mut stderr, e),
    }
    exit_code(result)
}

/// Spec errors already start with FILE:LINE:COL; others get the program name.
fn print_error(stderr: &mut impl Write, e: &Error) {
    let text = e.to_string();
    if matches!(e, Error::Spec(_) | Error::Files(_) | Error::Usage(_)) {
        let _ = writeln!(stderr, "{text}");
    } else {
        let _ = writeln!(stderr, "pfstate: {text}");
    }
}

/// 0, 1 or 2 (see the module doc).
pub fn exit_code(result: &Result<Outcome, Error>) -> u8 {
    match result {
        Ok(out) if out.failure.is_some() => 1,
        Ok(out) if out.changes_exit_2 && out.changed => 2,
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// Colour a diff for the terminal if wanted.
fn present_diff(ctx: &Ctx, d: &str) -> String {
    if ctx.color {
        colorize(d)
    } else {
        d.to_string()
    }
}

/// Colour a unified diff's lines (red removals, green additions, cyan hunk headers).
pub fn colorize(diff: &str) -> String {
    let red = anstyle::AnsiColor::Red.on_default();
    let green = anstyle::AnsiColor::Green.on_default();
    let cyan = anstyle::AnsiColor::Cyan.on_default();
    let bold = anstyle::Style::new().bold();
    let mut out = String::with_capacity(diff.len() + diff.len() / 4);
    for line in diff.split_inclusive('\n') {
        let style = if line.starts_with("+++") || line.starts_with("---") {
            bold
        } else if line.starts_with('+') {
            green
        } else if line.starts_with('-') {
            red
        } else if line.starts_with("@@") {
            cyan
        } else {
            out.push_str(line);
            continue;
        };
        let body = line.trim_end_matches('\n');
        out.push_str(&format!("{style}{body}{style:#}"));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}
