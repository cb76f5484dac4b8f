//! The man pages, section 8: pfstate(8) and one pfstate-COMMAND(8) per command.
//!
//! NAME, SYNOPSIS, OPTIONS and the command list come from the clap definition (clap_mangen), so
//! they always match the binary; the sections clap knows nothing about (FILES, EXIT STATUS,
//! ENVIRONMENT, EXAMPLES, SEE ALSO) are written here. Paths are taken from the constants the
//! code uses, so the page names the files pfstate really writes.

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::Cli;

const SECTION: &str = "8";
const MANUAL: &str = "System Administration";

/// `(file name, roff text)` of every page, pfstate.8 first.
pub fn pages() -> Vec<(String, String)> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Gives each subcommand its display name ("pfstate-apply") and the global options.
    cmd.build();
    let mut pages = vec![("pfstate.8".to_string(), main_page(&cmd))];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = man(sub.clone());
        let mut text = Vec::new();
        render_common(&man, &mut text);
        let mut extra = Roff::new();
        see_also(&mut extra, &[("pfstate", SECTION)]);
        extra.to_writer(&mut text).expect("writing to a Vec");
        pages.push((
            man.get_filename(),
            String::from_utf8_lossy(&text).into_owned(),
        ));
    }
    pages
}

fn man(cmd: clap::Command) -> Man {
    Man::new(cmd)
        .section(SECTION)
        .date(crate::build_info::DATE)
        .source(format!("pfstate {}", env!("CARGO_PKG_VERSION")))
        .manual(MANUAL)
}

/// Title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS, all from clap.
fn render_common(man: &Man, w: &mut Vec<u8>) {
    render_common_with(man, w, None);
}

/// The same with more DESCRIPTION paragraphs. Writing to a Vec cannot fail.
fn render_common_with(man: &Man, w: &mut Vec<u8>, more: Option<fn(&mut Roff)>) {
    let _ = man.render_title(w);
    let _ = man.render_name_section(w);
    let _ = man.render_synopsis_section(w);
    let _ = man.render_description_section(w);
    if let Some(more) = more {
        let mut r = Roff::new();
        more(&mut r);
        let _ = r.to_writer(w);
    }
    let _ = man.render_options_section(w);
}

fn main_page(cmd: &clap::Command) -> String {
    let man = man(cmd
        .clone()
        .subcommand_help_heading("COMMANDS")
        .subcommand_value_name("COMMAND"));
    let mut w = Vec::new();
    render_common_with(&man, &mut w, Some(description));
    let _ = man.render_subcommands_section(&mut w);
    let mut r = Roff::new();
    files(&mut r);
    exit_status(&mut r);
    environment(&mut r);
    examples(&mut r);
    let mut also: Vec<(String, &str)> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| (format!("pfstate-{}", s.get_name()), SECTION))
        .collect();
    for (page, section) in SEE_ALSO {
        also.push((page.to_string(), section));
    }
    let also: Vec<(&str, &str)> = also.iter().map(|(p, s)| (p.as_str(), *s)).collect();
    see_also(&mut r, &also);
    r.to_writer(&mut w).expect("writing to a Vec");
    let _ = man.render_version_section(&mut w);
    String::from_utf8_lossy(&w).into_owned()
}

/// More paragraphs for DESCRIPTION (clap's `about` is its first).
fn description(r: &mut Roff) {
    r.control("PP", []).text([roman(
        "The desired state is rendered into chains pfstate owns (named with the prefix PFSTATE-) \
         in the exact text iptables-save prints, compared with the live kernel, and changed with \
         one iptables-restore --noflush per address family. Rules that other programs own \
         (Docker, libvirt, Kubernetes, firewalld, ufw) are never flushed, reordered or deleted. \
         If any part of an apply fails, everything it changed is put back.",
    )]);
    r.control("PP", []).text([roman(
        "apply persists the state, the sysctls it needs and a systemd oneshot unit that \
         re-applies the state early at boot, before network-pre.target. Where the pfstate \
         package installed its unit, apply enables that unit instead of writing its own copy. \
         Installing, upgrading or removing the package changes nothing in the kernel.",
    )]);
}

fn tagged(r: &mut Roff, tag: &str, text: &str) {
    r.control("TP", []).text([bold(tag)]).text([roman(text)]);
}

fn files(r: &mut Roff) {
    r.control("SH", ["FILES"]);
    let state = crate::render::files::unit::STATE_PATH;
    tagged(
        r,
        state,
        "The last applied desired state; the boot unit applies it. Written by apply, deleted by remove.",
    );
    tagged(
        r,
        crate::render::files::sysctl_d::SYSCTL_CONF_PATH,
        "Every sysctl the state needs, applied by systemd-sysctl at boot. Written by apply, deleted by remove.",
    );
    tagged(
        r,
        crate::render::files::unit::UNIT_PATH,
        "The boot unit apply generates when the package's unit is not installed. Deleted by remove.",
    );
    tagged(
        r,
        crate::plan::packaged_unit::VENDOR_UNIT_PATH,
        "The boot unit the package ships; apply enables it, remove disables it.",
    );
    tagged(
        r,
        "/usr/lib/systemd/system/pfstate-recheck.timer",
        "Shipped disabled: re-applies the state every minute (systemctl enable --now pfstate-recheck.timer).",
    );
    tagged(
        r,
        "/usr/lib/systemd/system/pfstate-reapply.service",
        "Shipped disabled: re-applies the state after Docker, libvirt, firewalld, ufw or netfilter-persistent (re)start.",
    );
    tagged(
        r,
        crate::host::lock::LOCK_PATH,
        "Held while a command changes the host, so two runs never interleave.",
    );
    tagged(
        r,
        "/usr/share/doc/pfstate/examples/",
        "One desired state per scenario; try-demo.yaml is the one pfstate try is shown with.",
    );
}

fn exit_status(r: &mut Roff) {
    r.control("SH", ["EXIT STATUS"]);
    tagged(r, "0", "Success; the host is (now) in the desired state.");
    tagged(
        r,
        "1",
        "An error: bad input (reported as FILE:LINE:COL: message), a usage error, or a failed \
         apply, after which nothing is left half-applied.",
    );
    tagged(
        r,
        "2",
        "Changes pending: plan, apply --dry-run and diff found differences.",
    );
}

fn environment(r: &mut Roff) {
    r.control("SH", ["ENVIRONMENT"]);
    tagged(
        r,
        "NO_COLOR",
        "When set, diffs are never coloured (as with --color never).",
    );
}

/// `(command, what it does)`.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "pfstate validate host.yaml",
        "Check a file without root; every error at once.",
    ),
    (
        "pfstate try /usr/share/doc/pfstate/examples/try-demo.yaml",
        "Try the example on a throwaway copy of a gateway in network namespaces; the host's own firewall is never touched.",
    ),
    (
        "pfstate diff old.yaml new.yaml",
        "Review a change: which rules, sysctls and files it adds or removes.",
    ),
    (
        "pfstate plan host.yaml",
        "What apply would change on this host.",
    ),
    (
        "pfstate apply host.yaml",
        "Converge the host and persist the state for the next boot.",
    ),
    (
        "pfstate status",
        "Counters and connections per forward, and whether the host drifted.",
    ),
    (
        "systemctl enable --now pfstate-recheck.timer",
        "Repair drift every minute (another tool deleted or moved pfstate's rules).",
    ),
    (
        "pfstate remove",
        "Delete pfstate's chains, jumps, files and unit; run it before purging the package to remove the live rules too.",
    ),
];

fn examples(r: &mut Roff) {
    r.control("SH", ["EXAMPLES"]);
    for (cmd, what) in EXAMPLES {
        r.control("PP", []).text([roman(*what)]);
        r.control("RS", ["4"])
            .control("nf", [])
            .text([bold(*cmd)])
            .control("fi", [])
            .control("RE", []);
    }
}

const SEE_ALSO: &[(&str, &str)] = &[
    ("iptables", "8"),
    ("ip6tables", "8"),
    ("iptables-save", "8"),
    ("iptables-restore", "8"),
    ("conntrack", "8"),
    ("sysctl.d", "5"),
    ("systemd.service", "5"),
    ("systemctl", "1"),
];

fn see_also(r: &mut Roff, pages: &[(&str, &str)]) {
    r.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, (page, section)) in pages.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(*page));
        line.push(roman(format!("({section})")));
    }
    r.text(line);
    r.control("PP", []).text([
        roman("The contract, the YAML schema and notes on coexistence: "),
        italic("/usr/share/doc/pfstate/"),
        roman("."),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_visible_command() {
        let names: Vec<String> = pages().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "pfstate.8");
        for cmd in [
            "validate", "render", "diff", "plan", "apply", "status", "try", "remove",
        ] {
            assert!(names.contains(&format!("pfstate-{cmd}.8")), "{names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("generate") || n.contains("help"))
        );
    }

    #[test]
    fn main_page_has_the_written_sections() {
        let (_, text) = pages().remove(0);
        assert!(text.contains("\n.TH pfstate 8 "), "{}", &text[..200]);
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "FILES",
            "EXIT STATUS",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            let header = if section.contains(' ') {
                format!(".SH \"{section}\"")
            } else {
                format!(".SH {section}")
            };
            assert!(text.contains(&header), "no {section}");
        }
        assert!(text.contains("/etc/pfstate/host.yaml"));
        assert!(
            text.contains("pfstate\\-apply(8)"),
            "command pages are referenced"
        );
    }
}
