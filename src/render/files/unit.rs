//! The generated `pfstate.service`: the unit that re-applies the state at boot.
//!
//! The text comes from `templates/pfstate.service.hbs`, embedded with `include_str!` so the
//! binary is self-contained. Handlebars runs in strict mode (a misspelt variable is an error, not
//! an empty string) and with escaping off: its default HTML escaping would turn a host label like
//! `a&b` into `a&amp;b`. Escaping for *systemd* is done here instead, per field, because unit
//! files have their own rules: `%` starts a specifier (write `%%`), `$` expands environment
//! variables in command lines (write `$$`), words are split on whitespace unless quoted, and a
//! line ending in `\` continues on the next line.

use handlebars::Handlebars;
use serde::Serialize;

/// Where the unit lives on the target system.
pub const UNIT_PATH: &str = "/etc/systemd/system/pfstate.service";
/// Its name for systemd.
pub const UNIT_NAME: &str = "pfstate.service";
/// The state file the unit applies at boot.
pub const STATE_PATH: &str = "/etc/pfstate/host.yaml";

const TEMPLATE: &str = include_str!("../../../templates/pfstate.service.hbs");

/// What varies between installations of the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitParams {
    /// Absolute path of the pfstate binary (`std::env::current_exe()` at apply time).
    pub binary: String,
    /// The state file applied at boot (normally [`STATE_PATH`]).
    pub state_path: String,
    /// The host's label from the YAML, shown in `Description=`.
    pub host_label: Option<String>,
}

#[derive(Serialize)]
struct Vars {
    /// The package's copy (units/pfstate.service) says who installs and removes it.
    packaged: bool,
    description: String,
    documentation: String,
    exec: String,
}

/// Quote one command-line word the way systemd.service(5) "Command lines" parses it.
pub fn quote_exec_arg(arg: &str) -> String {
    let needs_quotes = arg.is_empty()
        || arg == ";"
        || arg
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\".contains(c));
    let mut out = String::with_capacity(arg.len() + 2);
    if needs_quotes {
        out.push('"');
    }
    for c in arg.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\\' if needs_quotes => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32 & 0xff)),
            c => out.push(c),
        }
    }
    if needs_quotes {
        out.push('"');
    }
    out
}

/// A free-text value (`Description=`): one line, specifiers escaped, no trailing `\`.
fn plain_value(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one_line
        .trim()
        .trim_end_matches('\\')
        .trim_end()
        .replace('%', "%%")
}

/// A `file:` URI for `Documentation=`: no whitespace allowed there, so percent-encode, then
/// double every `%` for the specifier expansion systemd applies to this setting.
fn file_uri(path: &str) -> String {
    let mut out = String::from("file:");
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~+,:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.replace('%', "%%")
}

/// Render the unit file text `apply` writes to [`UNIT_PATH`].
pub fn render_unit(p: &UnitParams) -> String {
    render(p, false)
}

/// The unit the Debian package ships as `units/pfstate.service`: the same unit for
/// `/usr/sbin/pfstate`, whose header says the package owns the file.
pub fn render_packaged_unit() -> String {
    let p = UnitParams {
        binary: "/usr/sbin/pfstate".into(),
        state_path: STATE_PATH.into(),
        host_label: None,
    };
    render(&p, true)
}

fn render(p: &UnitParams, packaged: bool) -> String {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_template_string("unit", TEMPLATE)
        .expect("templates/pfstate.service.hbs is valid (unit tests render it)");
    let description = match p.host_label.as_deref().map(plain_value) {
        Some(label) if !label.is_empty() => {
            format!("pfstate: port forwarding and firewall rules of {label}")
        }
        _ => "pfstate: port forwarding and firewall rules".to_string(),
    };
    let exec = [p.binary.as_str(), "apply", "--boot", p.state_path.as_str()]
        .iter()
        .map(|a| quote_exec_arg(a))
        .collect::<Vec<_>>()
        .join(" ");
    let vars = Vars {
        packaged,
        description,
        documentation: format!("man:pfstate(8) {}", file_uri(&p.state_path)),
        exec,
    };
    hb.render("unit", &vars)
        .expect("every template variable is provided (unit tests render it)")
}

/// Why `ExecStart=` cannot name this binary, if it cannot: systemd wants an absolute, normalized
/// path, expands `$` (environment) in command lines, and a control character or a byte that is
/// not UTF-8 (shown as U+FFFD here) cannot be written back as the same path.
pub fn exec_path_problem(binary: &str) -> Option<String> {
    let path = std::path::Path::new(binary);
    let normal = path.is_absolute()
        && !binary.contains("//")
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::RootDir | std::path::Component::Normal(_)
            )
        });
    let bad = binary
        .chars()
        .find(|c| c.is_control() || "$\\\u{fffd}".contains(*c));
    let why = match (normal, bad) {
        (false, _) => "it is not an absolute, normalized path".to_string(),
        (true, Some(c)) => format!("it contains {c:?}, which ExecStart= cannot express"),
        (true, None) => return None,
    };
    Some(format!(
        "the boot unit cannot run {binary:?}: {why}; install pfstate under a plain path (e.g. /usr/sbin/pfstate) and run it from there"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_exec_start_cannot_express_are_refused() {
        assert_eq!(exec_path_problem("/usr/sbin/pfstate"), None);
        assert_eq!(exec_path_problem("/opt/my tools/pfstate"), None);
        for bad in [
            "/opt/a$b/pfstate",
            "/opt/a\nb/pfstate",
            "/opt/a\\b/pfstate",
            "/opt/\u{fffd}/pfstate",
            "/opt/a/../pfstate",
            "/opt//pfstate",
            "pfstate",
        ] {
            let p = exec_path_problem(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(p.starts_with("the boot unit cannot run"), "{p}");
        }
        assert!(
            exec_path_problem("/opt/a$b/pfstate")
                .unwrap()
                .contains("'$'")
        );
    }

    fn params(label: Option<&str>) -> UnitParams {
        UnitParams {
            binary: "/usr/sbin/pfstate".into(),
            state_path: STATE_PATH.into(),
            host_label: label.map(Into::into),
        }
    }

    fn line<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    }

    #[test]
    fn the_unit() {
        let t = render_unit(&params(Some("edge-1")));
        assert!(t.starts_with("# Managed by pfstate"), "{t}");
        assert_eq!(line(&t, "Type"), ["oneshot"]);
        assert_eq!(line(&t, "RemainAfterExit"), ["yes"]);
        assert_eq!(line(&t, "DefaultDependencies"), ["no"]);
        assert_eq!(line(&t, "Wants"), ["network-pre.target"]);
        assert_eq!(
            line(&t, "Before"),
            ["network-pre.target", "shutdown.target"]
        );
        assert_eq!(
            line(&t, "After"),
            ["systemd-sysctl.service local-fs.target"]
        );
        assert_eq!(line(&t, "Conflicts"), ["shutdown.target"]);
        let exec = "/usr/sbin/pfstate apply --boot /etc/pfstate/host.yaml";
        assert_eq!(line(&t, "ExecStart"), [exec]);
        assert_eq!(line(&t, "ExecReload"), [exec]);
        assert_eq!(
            line(&t, "Documentation"),
            ["man:pfstate(8) file:/etc/pfstate/host.yaml"]
        );
        assert_eq!(
            line(&t, "Description"),
            ["pfstate: port forwarding and firewall rules of edge-1"]
        );
        assert_eq!(line(&t, "WantedBy"), ["multi-user.target"]);
        // Nothing pulls in the network itself.
        assert!(!t.contains("network.target") && !t.contains("network-online"));
        assert!(t.ends_with('\n'));
    }

    #[test]
    fn no_label() {
        let t = render_unit(&params(None));
        assert_eq!(
            line(&t, "Description"),
            ["pfstate: port forwarding and firewall rules"]
        );
        let t = render_unit(&params(Some("  ")));
        assert_eq!(
            line(&t, "Description"),
            ["pfstate: port forwarding and firewall rules"]
        );
    }

    #[test]
    fn label_is_not_html_escaped() {
        let t = render_unit(&params(Some(r#"a=&<"b'>"#)));
        assert_eq!(
            line(&t, "Description"),
            [r#"pfstate: port forwarding and firewall rules of a=&<"b'>"#]
        );
    }

    #[test]
    fn label_specifiers_newlines_continuations() {
        let t = render_unit(&params(Some("50% off\nExecStart=/bin/evil \\")));
        assert_eq!(
            line(&t, "Description"),
            ["pfstate: port forwarding and firewall rules of 50%% off ExecStart=/bin/evil"]
        );
        assert_eq!(line(&t, "ExecStart").len(), 1);
    }

    #[test]
    fn exec_args_quoted_for_systemd() {
        let t = render_unit(&UnitParams {
            binary: "/opt/my tools/pfstate".into(),
            state_path: "/etc/pfstate/100%$HOME\"x\".yaml".into(),
            host_label: None,
        });
        assert_eq!(
            line(&t, "ExecStart"),
            [r#""/opt/my tools/pfstate" apply --boot "/etc/pfstate/100%%$$HOME\"x\".yaml""#]
        );
        assert_eq!(
            line(&t, "Documentation"),
            ["man:pfstate(8) file:/etc/pfstate/100%%25%%24HOME%%22x%%22.yaml"]
        );
    }

    #[test]
    fn quote_words() {
        assert_eq!(quote_exec_arg("plain"), "plain");
        assert_eq!(quote_exec_arg(""), "\"\"");
        assert_eq!(quote_exec_arg(";"), "\";\"");
        assert_eq!(quote_exec_arg("a b"), "\"a b\"");
        assert_eq!(quote_exec_arg("a\\b"), "\"a\\\\b\"");
        assert_eq!(quote_exec_arg("it's"), "\"it's\"");
        assert_eq!(quote_exec_arg("a\nb"), "\"a\\nb\"");
        assert_eq!(quote_exec_arg("%h"), "%%h");
    }

    /// `units/pfstate.service` is what the package ships; it must stay the rendering of the
    /// template with the packaged binary path, and differ from apply's only in its header.
    #[test]
    fn shipped_unit_is_current() {
        let shipped = include_str!("../../../units/pfstate.service");
        assert_eq!(shipped, render_packaged_unit());
        let generated = render_unit(&params(None));
        assert!(
            shipped.starts_with("# Shipped by the pfstate package"),
            "{shipped}"
        );
        let body = |t: &str| {
            t.lines()
                .skip_while(|l| l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(body(shipped), body(&generated));
    }
}
