//! The Debian package (scripts/build-deb.sh, docs/packaging.md) in a real systemd: installed
//! with dpkg in the systemd-in-namespaces sandbox (its /usr, /etc and /var are overlays, so the
//! host's dpkg database and /usr never change), then checked the way an administrator uses it:
//!
//! - installing and re-installing (the upgrade path of the maintainer scripts) changes nothing in
//!   the kernel and enables no unit;
//! - `man pfstate` renders without a groff warning, the bash completion loads and completes;
//! - `pfstate --version` names the commit of this checkout;
//! - `/usr/sbin/pfstate apply` enables the package's unit and writes no copy of its own, and the
//!   rules come back after a reboot of the sandbox;
//! - a host that applied before the package existed (its own unit copy in /etc) moves over to
//!   the package's unit on the next apply;
//! - `dpkg --remove` keeps /etc/pfstate; `dpkg --purge` deletes pfstate's files (not the
//!   administrator's) but leaves the live rules until the next boot, after which nothing
//!   comes back.
//!
//! The package: `PFSTATE_DEB` when set (CI builds the release package first), else this build's
//! binary packaged with `scripts/build-deb.sh --profile dev --no-build` (cargo-deb needed:
//! scripts/install-deps.sh installs it). Skips only when not root or without systemd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{Sandbox, shown};

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const PACKAGED: &str = "/usr/sbin/pfstate";
const VENDOR_UNIT: &str = "/usr/lib/systemd/system/pfstate.service";
const OWN_UNIT: &str = "/etc/systemd/system/pfstate.service";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/pfstate.service";
const STATE: &str = "/etc/pfstate/host.yaml";
const SYSCTL_CONF: &str = "/etc/sysctl.d/90-pfstate.conf";
const SHARE: &str = "/run/pfstate-test/share";
/// A file of the administrator's in pfstate's directory (a source the state was made from).
const ADMIN_FILE: &str = "/etc/pfstate/site.yaml";

/// A forward and a sysctl whose value differs from the kernel default (60), so a value after a
/// reboot proves the sysctl.d file was applied.
const YAML: &str = "version: 1
host: packaged-gw
sysctl:
  net.ipv4.tcp_fin_timeout: 42
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, snat: masquerade}
";
const RULE_MARK: &str = "10.77.0.11:8080";

/// The .deb under test (see the module comment), built once for both tests.
fn package() -> PathBuf {
    static DEB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DEB.get_or_init(build_package).clone()
}

fn build_package() -> PathBuf {
    if let Some(deb) = std::env::var_os("PFSTATE_DEB") {
        return PathBuf::from(deb);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-deb.sh");
    let out = Command::new(script)
        .args(["--profile", "dev", "--no-build"])
        .output()
        .expect("run scripts/build-deb.sh");
    assert!(out.status.success(), "build-deb.sh: {}", shown(&out));
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(deb.is_file(), "build-deb.sh printed {}", deb.display());
    deb
}

/// Boot a sandbox whose /usr is writable, with the package in its share dir.
fn boot_with_package(name: &str, deb: &Path) -> Sandbox {
    let sb = Sandbox::boot_with_overlay(name, "", "usr");
    std::fs::copy(deb, sb.dir.join("share/pfstate.deb")).expect("copy the package");
    std::fs::write(sb.dir.join("share/host.yaml"), YAML).expect("write the state");
    sb
}

fn run(sb: &Sandbox, argv: &[&str]) -> Output {
    sb.exec_with(argv, &[("NO_COLOR", "1"), ("LC_ALL", "C")], None)
}

fn ok(sb: &Sandbox, argv: &[&str]) -> String {
    let out = run(sb, argv);
    assert!(out.status.success(), "{argv:?}: {}", shown(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dpkg(sb: &Sandbox, args: &[&str]) -> String {
    let mut argv = vec!["dpkg"];
    argv.extend_from_slice(args);
    let out = run(sb, &argv);
    assert!(out.status.success(), "dpkg {args:?}: {}", shown(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What the kernel holds: both rule sets and the sysctls a package could touch.
fn kernel(sb: &Sandbox) -> String {
    let mut k = ok(sb, &["iptables-save"]);
    k += &ok(sb, &["ip6tables-save"]);
    k += &ok(
        sb,
        &[
            "sysctl",
            "-a",
            "-r",
            "^net\\.(ipv4|ipv6)\\.(ip_forward|conf\\.all|tcp_fin)",
        ],
    );
    // Counters change with any packet; the rules are what matters.
    k.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(':'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn exists(sb: &Sandbox, path: &str) -> bool {
    run(sb, &["test", "-e", path]).status.success()
}

fn is_enabled(sb: &Sandbox, unit: &str) -> String {
    let out = run(sb, &["systemctl", "is-enabled", unit]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn show(sb: &Sandbox, prop: &str, unit: &str) -> String {
    ok(sb, &["systemctl", "show", "-p", prop, "--value", unit])
        .trim()
        .to_string()
}

fn fin_timeout(sb: &Sandbox) -> String {
    ok(sb, &["cat", "/proc/sys/net/ipv4/tcp_fin_timeout"])
        .trim()
        .to_string()
}

fn install_changes_nothing(sb: &Sandbox) {
    let before = kernel(sb);
    dpkg(sb, &["--install", &format!("{SHARE}/pfstate.deb")]);
    assert_eq!(kernel(sb), before, "installing changed the kernel");
    for unit in [
        "pfstate.service",
        "pfstate-reapply.service",
        "pfstate-recheck.timer",
    ] {
        assert_eq!(is_enabled(sb, unit), "disabled", "{unit} after install");
    }
    assert!(!exists(sb, STATE) && !exists(sb, SYSCTL_CONF) && !exists(sb, OWN_UNIT));
}

fn man_page_renders(sb: &Sandbox) {
    for page in ["pfstate", "pfstate-apply"] {
        let out = sb.exec_with(
            &["man", "--warnings", "-P", "cat", page],
            &[("MANWIDTH", "80"), ("LC_ALL", "C.UTF-8")],
            None,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man {page}: {}", shown(&out));
        assert!(out.stderr.is_empty(), "man {page} warned: {}", shown(&out));
        assert!(text.contains("SYNOPSIS"), "{text}");
        if page == "pfstate" {
            for section in ["FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO", "COMMANDS"] {
                assert!(
                    text.contains(section),
                    "no {section} in man pfstate:\n{text}"
                );
            }
        } else {
            assert!(text.contains("--dry-run"), "{text}");
        }
    }
}

/// bash-completion's loader finds the packaged script, and it completes a command and an option.
fn bash_completion_loads(sb: &Sandbox) {
    let script = r#"
        source /usr/share/bash-completion/bash_completion
        _completion_loader pfstate
        complete -p pfstate
        COMP_WORDS=(pfstate ap); COMP_CWORD=1; COMP_LINE="pfstate ap"; COMP_POINT=10
        _pfstate pfstate ap pfstate; echo "words: ${COMPREPLY[*]}"
        COMP_WORDS=(pfstate apply --dr); COMP_CWORD=2; COMP_LINE="pfstate apply --dr"; COMP_POINT=18
        _pfstate pfstate --dr apply; echo "words: ${COMPREPLY[*]}"
    "#;
    let out = ok(sb, &["bash", "-c", script]);
    assert!(out.contains("-F _pfstate pfstate"), "{out}");
    assert!(out.contains("words: apply\n"), "{out}");
    assert!(out.contains("words: --dry-run\n"), "{out}");
    for f in [
        "/usr/share/zsh/vendor-completions/_pfstate",
        "/usr/share/fish/vendor_completions.d/pfstate.fish",
    ] {
        assert!(exists(sb, f), "{f}");
    }
}

fn version_names_the_commit(sb: &Sandbox) {
    let version = ok(sb, &[PACKAGED, "--version"]);
    assert!(version.starts_with("pfstate 0."), "{version}");
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success() && std::env::var_os("PFSTATE_BUILD_COMMIT").is_none());
    match head {
        Some(o) => {
            let commit = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert!(
                version.contains(&format!("(commit {commit}")),
                "{version} vs {commit}"
            );
        }
        None => assert!(version.contains("(commit "), "{version}"),
    }
}

fn apply_packaged(sb: &Sandbox) {
    let out = run(sb, &[PACKAGED, "apply", &format!("{SHARE}/host.yaml")]);
    assert!(out.status.success(), "apply: {}", shown(&out));
    assert!(
        !exists(sb, OWN_UNIT),
        "apply wrote its own unit beside the package's"
    );
    assert_eq!(is_enabled(sb, "pfstate.service"), "enabled");
    // systemd may name it /lib/systemd/system/... (the same file on a merged-/usr system).
    assert_eq!(ok(sb, &["readlink", "-f", WANTS_LINK]).trim(), VENDOR_UNIT);
    let plan = run(sb, &[PACKAGED, "plan", STATE]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "plan after apply: {}",
        shown(&plan)
    );
}

fn back_after_reboot(sb: &mut Sandbox) {
    sb.reboot();
    assert!(
        ok(sb, &["iptables-save"]).contains(RULE_MARK),
        "rules after reboot"
    );
    assert_eq!(fin_timeout(sb), "42");
    assert_eq!(show(sb, "ActiveState", "pfstate.service"), "active");
    assert_eq!(show(sb, "Result", "pfstate.service"), "success");
    let fragment = show(sb, "FragmentPath", "pfstate.service");
    assert_eq!(ok(sb, &["readlink", "-f", &fragment]).trim(), VENDOR_UNIT);
}

sandbox_test!(package_install_apply_reboot_purge, || {
    let deb = package();
    let mut sb = boot_with_package("pkg", &deb);
    install_changes_nothing(&sb);
    man_page_renders(&sb);
    bash_completion_loads(&sb);
    version_names_the_commit(&sb);
    apply_packaged(&sb);
    back_after_reboot(&mut sb);

    // Upgrade path (prerm/postrm "upgrade", unpack over the old files): nothing in the kernel.
    let live = kernel(&sb);
    dpkg(&sb, &["--install", &format!("{SHARE}/pfstate.deb")]);
    assert_eq!(kernel(&sb), live, "re-installing changed the kernel");
    assert_eq!(show(&sb, "ActiveState", "pfstate.service"), "active");

    // An upgrade whose version refuses the applied state says so, with the file's own error,
    // and still changes nothing in the kernel.
    let applied = ok(&sb, &["cat", STATE]);
    ok(
        &sb,
        &["sh", "-c", &format!("echo 'forwardz: []' >> {STATE}")],
    );
    let said = dpkg(&sb, &["--install", &format!("{SHARE}/pfstate.deb")]);
    assert!(
        said.contains("this version refuses the applied state"),
        "{said}"
    );
    assert!(
        said.contains("forwardz"),
        "the file's own error is shown: {said}"
    );
    assert_eq!(
        kernel(&sb),
        live,
        "an upgrade over a refused state changed the kernel"
    );
    ok(
        &sb,
        &[
            "sh",
            "-c",
            &format!("printf '%s' \"$1\" > {STATE}"),
            "sh",
            &applied,
        ],
    );
    let said = dpkg(&sb, &["--install", &format!("{SHARE}/pfstate.deb")]);
    assert!(
        !said.contains("refuses"),
        "a valid state was called refused: {said}"
    );

    // Remove keeps what pfstate wrote in /etc; purge deletes it (and only it: an administrator's
    // own file in /etc/pfstate stays); neither touches the kernel.
    ok(&sb, &["cp", &format!("{SHARE}/host.yaml"), ADMIN_FILE]);
    dpkg(&sb, &["--remove", "pfstate"]);
    assert!(!exists(&sb, PACKAGED) && !exists(&sb, VENDOR_UNIT));
    assert!(exists(&sb, STATE) && exists(&sb, SYSCTL_CONF));
    assert_eq!(kernel(&sb), live, "removing changed the kernel");
    let said = dpkg(&sb, &["--purge", "pfstate"]);
    assert!(
        said.contains("stay in the kernel until the next boot"),
        "{said}"
    );
    assert!(said.contains("kept /etc/pfstate"), "{said}");
    for gone in [STATE, SYSCTL_CONF, WANTS_LINK] {
        assert!(!exists(&sb, gone), "{gone} after purge");
    }
    assert!(
        exists(&sb, ADMIN_FILE),
        "purge deleted the administrator's file"
    );
    assert_eq!(kernel(&sb), live, "purging changed the kernel");
    sb.reboot();
    assert!(
        !ok(&sb, &["iptables-save"]).contains("PFSTATE"),
        "rules after purge + reboot"
    );
    assert_ne!(fin_timeout(&sb), "42");
    sb.stop();
});

// A host that applied with a binary from `cargo install` (unit copy in /etc naming that binary)
// and then installed the package: install leaves it alone, the packaged apply moves over, and
// `pfstate remove` disables the package's unit.
sandbox_test!(apply_moves_from_its_own_unit_to_the_package_unit, || {
    let deb = package();
    let mut sb = boot_with_package("pkgmove", &deb);
    let out = run(&sb, &[BIN, "apply", &format!("{SHARE}/host.yaml")]);
    assert!(out.status.success(), "apply (from source): {}", shown(&out));
    let own = ok(&sb, &["cat", OWN_UNIT]);
    assert!(
        own.contains(&format!("ExecStart={BIN} apply --boot")),
        "{own}"
    );
    let live = kernel(&sb);
    dpkg(&sb, &["--install", &format!("{SHARE}/pfstate.deb")]);
    assert_eq!(kernel(&sb), live, "installing changed the kernel");
    assert_eq!(
        ok(&sb, &["cat", OWN_UNIT]),
        own,
        "installing touched the unit copy"
    );

    let plan = run(&sb, &[PACKAGED, "plan", STATE]);
    assert_eq!(plan.status.code(), Some(2), "{}", shown(&plan));
    assert!(String::from_utf8_lossy(&plan.stdout).contains(OWN_UNIT));
    apply_packaged(&sb);
    assert_eq!(
        kernel(&sb),
        live,
        "moving to the package's unit changed rules"
    );
    back_after_reboot(&mut sb);

    // `pfstate remove` disables the package's unit and leaves the package's file alone.
    ok(&sb, &[PACKAGED, "remove"]);
    assert_eq!(is_enabled(&sb, "pfstate.service"), "disabled");
    assert!(exists(&sb, VENDOR_UNIT) && !exists(&sb, STATE));
    assert!(!ok(&sb, &["iptables-save"]).contains(RULE_MARK));
    sb.stop();
});
