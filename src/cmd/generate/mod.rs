//! `pfstate generate`: the man pages and shell completions, made from the clap definition in
//! [`crate::cli`] so they cannot drift from the real options. Hidden from `--help`: it is for
//! packagers (scripts/build-deb.sh) and for installs from source (docs/packaging.md).

mod manpage;

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, Generate};
use crate::error::Error;

use super::ctx::Outcome;

pub(super) fn run(what: &Generate) -> Result<Outcome, Error> {
    match what {
        Generate::Man { dir } => write_man_pages(dir),
        Generate::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                *shell,
                &mut visible(&Cli::command()),
                "pfstate",
                &mut script,
            );
            write_stdout(&script)?;
            Ok(Outcome::default())
        }
    }
}

fn write_man_pages(dir: &Path) -> Result<Outcome, Error> {
    let io_err = |path: &Path, source| Error::Read {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut out = Outcome::default();
    for (name, text) in manpage::pages() {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io_err(&path, e))?;
        out.notes.push(format!("wrote {}", path.display()));
    }
    Ok(out)
}

/// `cmd` without its hidden commands and options: clap_complete would offer them (`generate`,
/// `apply --boot`), and they are not for people at a prompt. A hidden option stays as an empty
/// group of the same name, so what refers to it (`conflicts_with = "boot"`) still resolves;
/// derive's own groups (one per argument struct, naming hidden options too) are left out.
pub fn visible(cmd: &clap::Command) -> clap::Command {
    let (hidden, shown): (Vec<&clap::Arg>, Vec<&clap::Arg>) =
        cmd.get_arguments().partition(|a| a.is_hide_set());
    let mut out = clap::Command::new(cmd.get_name().to_string())
        .propagate_version(cmd.is_propagate_version_set())
        .disable_help_subcommand(cmd.is_disable_help_subcommand_set())
        .args(shown.into_iter().cloned())
        .groups(
            hidden
                .iter()
                .map(|a| clap::ArgGroup::new(a.get_id().clone())),
        )
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(visible),
        );
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_string());
    }
    out
}

/// A closed pipe (`pfstate generate completions bash | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), Error> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Read {
            path: "standard output".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_name_every_visible_command_and_no_hidden_one() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut visible(&Cli::command()), "pfstate", &mut buf);
            let text = String::from_utf8(buf).unwrap();
            for cmd in Cli::command().get_subcommands() {
                let name = cmd.get_name();
                assert_eq!(
                    text.contains(name),
                    !cmd.is_hide_set(),
                    "{shell}: command {name}"
                );
            }
            // fish spells long options `-l NAME`.
            let long = |name: &str| match shell {
                clap_complete::Shell::Fish => format!("-l {name}"),
                _ => format!("--{name}"),
            };
            assert!(
                text.contains(&long("dry-run")) && text.contains(&long("root")),
                "{shell}"
            );
            assert!(!text.contains(&long("boot")), "{shell}: a hidden option");
        }
    }
}
