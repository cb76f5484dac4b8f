//! The real pfstate binary against a real systemd (PID 1 in namespaces, tests/support/sandbox.sh):
//! `apply` inside the sandbox, "reboot" it on the same /etc and /var overlays with a fresh
//! network namespace, and check that the persisted state comes back by itself, early, next to
//! foreign rules that other units load; then `remove`, reboot, and nothing comes back.
//!
//! The second test covers what an operator sees between reboots: `plan` shows hand edits of the
//! managed files and a disabled unit as diffs, `systemctl reload pfstate` re-applies, and the
//! per-interface sysctl of an interface that appears after boot takes effect.
//!
//! How a per-interface sysctl reaches an interface created after boot: systemd-sysctl runs once,
//! early, and skips keys of missing interfaces; pfstate's boot unit sets runtime sysctls only
//! for interfaces present when it runs. On a host with udev, `99-systemd.rules` runs
//! `systemd-sysctl --prefix=/net/ipv4/conf/$name ...` on every new interface, which applies the
//! key from 90-pfstate.conf (checked here by running exactly that command: the sandbox has no
//! udev, and running one would re-trigger the host's devices). Without udev (containers, this
//! sandbox) the shipped `units/pfstate-recheck.timer` re-applies the state periodically, and
//! `systemctl reload pfstate` does it on demand; both are checked here.
//!
//! D-Bus calls from outside (the host test process to the sandbox's bus socket) use only calls
//! that do not resolve the caller's PID (notes/systemd-sandbox.md, pitfall 2): GetUnitFileState,
//! LoadUnit + ActiveState, Subscribe + RestartUnit.
//!
//! Skips (with a message on stderr) only when not root or when systemd is missing.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pfstate::host::ServiceManager;
use pfstate::host::systemd::DbusServiceManager;
use support::Sandbox;

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const UNIT: &str = "pfstate.service";
const STATE: &str = "/etc/pfstate/host.yaml";
const SYSCTL_CONF: &str = "/etc/sysctl.d/90-pfstate.conf";
const UNIT_FILE: &str = "/etc/systemd/system/pfstate.service";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/pfstate.service";
const YAML_INSIDE: &str = "/run/pfstate-test/share/host.yaml";

/// v4 and v6 forwards, a `local` forward through an interface that exists at boot (eth1, made
/// by the harness before systemd starts) and one through an interface that appears only later
/// (late0), explicit sysctls whose values differ from the kernel defaults, an input filter.
const YAML: &str = "version: 1
host: sandbox-gw
interfaces: {lan: eth1, late: late0}
sysctl:
  net.ipv4.tcp_fin_timeout: 42
  net.ipv4.conf.default.log_martians: 1
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, snat: masquerade}
  - {name: web6, listen: {port: 80}, to: \"[fd00:77::11]:8080\"}
  - {name: admin, listen: {port: 8443}, to: 10.77.0.12:443, local: true, via: lan}
  - {name: late, listen: {port: 9000}, to: 10.88.0.12:9000, local: true, via: late}
filter:
  - {name: ssh, chain: input, proto: tcp, dport: 22, source: 10.0.0.0/8, action: accept}
";

/// Docker-like and admin rules another tool loads, early at boot (before pfstate, as
/// netfilter-persistent does). The FORWARD policy is DROP, as Docker sets it.
const FOREIGN_EARLY_RULES: &str = "*filter
:SBXFOREIGN-IN - [0:0]
:DOCKER-USER - [0:0]
-P FORWARD DROP
-A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -j SBXFOREIGN-IN
-A SBXFOREIGN-IN -p udp -m udp --dport 53 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
COMMIT
";

/// Rules loaded late, after pfstate (as dockerd or libvirtd do), in chains pfstate also hooks.
const FOREIGN_LATE_RULES: &str = "*nat
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
*filter
-I FORWARD 1 -o virbr0 -j ACCEPT
COMMIT
";
const FOREIGN_LATE_RULES_V6: &str = "*filter
:SBXFOREIGN6 - [0:0]
-A INPUT -j SBXFOREIGN6
-A SBXFOREIGN6 -p ipv6-icmp -j ACCEPT
COMMIT
";

fn foreign_unit(name: &str, order: &str, cmds: &[&str]) -> String {
    let exec: String = cmds.iter().map(|c| format!("ExecStart={c}\n")).collect();
    format!(
        "[Unit]\nDescription=test: foreign rules ({name})\nDefaultDependencies=no\n{order}\n\
         [Service]\nType=oneshot\nRemainAfterExit=yes\n{exec}\n[Install]\nWantedBy=multi-user.target\n"
    )
}

fn skip() -> bool {
    if let Some(why) = support::skip_reason() {
        eprintln!("SKIPPED: boot persistence test: {why}");
        return true;
    }
    false
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Write a file inside the sandbox (lands in its /etc overlay, never in the host's /etc).
fn put(sb: &Sandbox, path: &str, content: &str) {
    let dir = Path::new(path).parent().unwrap().display().to_string();
    let out = sb.exec_with(
        &["sh", "-c", &format!("mkdir -p '{dir}' && cat > '{path}'")],
        &[],
        Some(content.as_bytes()),
    );
    assert!(out.status.success(), "writing {path}: {}", text(&out));
}

/// pfstate inside the sandbox (the binary under test, bound read-only at the same path).
fn pf(sb: &Sandbox, args: &[&str]) -> Output {
    let mut argv = vec![BIN];
    argv.extend_from_slice(args);
    sb.exec_with(&argv, &[("NO_COLOR", "1")], None)
}

fn plan_code(sb: &Sandbox) -> (i32, String) {
    let out = pf(sb, &["plan", STATE]);
    (out.status.code().unwrap_or(-1), text(&out))
}

fn sysctl(sb: &Sandbox, key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    sb.check(&["cat", &path]).trim().to_string()
}

fn show(sb: &Sandbox, prop: &str, unit: Option<&str>) -> String {
    let mut argv = vec!["systemctl", "show", "-p", prop, "--value"];
    argv.extend(unit);
    sb.check(&argv).trim().to_string()
}

fn mono(sb: &Sandbox, prop: &str, unit: Option<&str>) -> u64 {
    let v = show(sb, prop, unit);
    v.parse()
        .unwrap_or_else(|_| panic!("{prop} of {unit:?}: {v:?}"))
}

/// Foreign lines of a save: no pfstate chain or jump, no comments, no counters.
/// A table left with nothing but built-in chains at policy ACCEPT counts as absent (the kernel
/// keeps a table once anything loaded it).
fn foreign(save: &str) -> String {
    let kept = norm(
        &save
            .lines()
            .filter(|l| !l.contains("PFSTATE-"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let mut out = String::new();
    for block in kept.split_inclusive("COMMIT\n") {
        let empty = block.lines().all(|l| {
            l.starts_with('*') || l == "COMMIT" || (l.starts_with(':') && l.ends_with(" ACCEPT"))
        });
        if !empty {
            out.push_str(block);
        }
    }
    out
}

/// A save without its comments (timestamps) and counters.
fn norm(save: &str) -> String {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.find(" [") {
            Some(i) if l.starts_with(':') => format!("{}\n", &l[..i]),
            _ => format!("{l}\n"),
        })
        .collect()
}

fn saves(sb: &Sandbox) -> (String, String) {
    (sb.check(&["iptables-save"]), sb.check(&["ip6tables-save"]))
}

/// From the host: the sandbox's systemd over its bus socket.
fn outside(sb: &Sandbox) -> DbusServiceManager {
    DbusServiceManager::at_address(&sb.bus())
        .unwrap_or_else(|e| panic!("connect to {}: {e}", sb.bus()))
        .with_job_timeout(Duration::from_secs(30))
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

/// What the host has that a sandbox must never change.
fn host_snapshot() -> String {
    let mut s = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        let out = Command::new(tool).output().unwrap();
        s.push_str(&foreign(&String::from_utf8_lossy(&out.stdout)));
    }
    for dir in ["/etc/systemd/system", "/etc/sysctl.d"] {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        s.push_str(&format!("{dir}: {names:?}\n"));
    }
    for key in [
        "ipv4/ip_forward",
        "ipv6/conf/all/forwarding",
        "ipv4/tcp_fin_timeout",
    ] {
        let v = std::fs::read_to_string(format!("/proc/sys/net/{key}")).unwrap_or_default();
        s.push_str(&format!("{key} = {v}"));
    }
    s
}

fn assert_host_untouched(before: &str) {
    assert_eq!(host_snapshot(), before, "the host changed");
    for p in [UNIT_FILE, SYSCTL_CONF, "/etc/pfstate"] {
        assert!(!Path::new(p).exists(), "the host got {p}");
    }
}

/// Boot, load foreign rules through two foreign units (one before pfstate, one after), apply.
fn boot_and_apply(name: &str) -> Sandbox {
    let sb = Sandbox::boot(name, "eth1");
    assert!(
        BIN.starts_with(&support::target_dir().display().to_string()),
        "{BIN} is not under the bound target dir"
    );
    put(&sb, "/etc/sbx-foreign/early.rules", FOREIGN_EARLY_RULES);
    put(&sb, "/etc/sbx-foreign/late.rules", FOREIGN_LATE_RULES);
    put(&sb, "/etc/sbx-foreign/late6.rules", FOREIGN_LATE_RULES_V6);
    put(
        &sb,
        "/etc/systemd/system/sbx-foreign-early.service",
        &foreign_unit(
            "early",
            "Before=pfstate.service network-pre.target\nAfter=systemd-sysctl.service\n",
            &["/usr/sbin/iptables-restore --noflush /etc/sbx-foreign/early.rules"],
        ),
    );
    put(
        &sb,
        "/etc/systemd/system/sbx-foreign-late.service",
        &foreign_unit(
            "late",
            "After=pfstate.service\n",
            &[
                "/usr/sbin/iptables-restore --noflush /etc/sbx-foreign/late.rules",
                "/usr/sbin/ip6tables-restore --noflush /etc/sbx-foreign/late6.rules",
            ],
        ),
    );
    sb.check(&["systemctl", "daemon-reload"]);
    sb.check(&[
        "systemctl",
        "enable",
        "--now",
        "sbx-foreign-early.service",
        "sbx-foreign-late.service",
    ]);
    std::fs::write(sb.dir.join("share/host.yaml"), YAML).unwrap();

    let t = Instant::now();
    let out = pf(&sb, &["apply", YAML_INSIDE]);
    assert!(out.status.success(), "apply: {}", text(&out));
    eprintln!(
        "[boot] first apply inside the sandbox: {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("late0 does not exist (yet)"),
        "no warning about late0: {stderr}"
    );
    sb
}

#[test]
fn apply_survives_reboot_and_remove_does_not() {
    if skip() {
        return;
    }
    let host_before = host_snapshot();
    let t_test = Instant::now();
    let t_boot = Instant::now();
    let mut sb = boot_and_apply("persist");
    let first_boot_and_apply = t_boot.elapsed();

    // After apply: enabled (over D-Bus, from inside and from the host), files in the overlay.
    assert_eq!(
        sb.check(&["systemctl", "is-enabled", UNIT]).trim(),
        "enabled"
    );
    assert!(outside(&sb).is_enabled(UNIT).unwrap());
    for f in [STATE, SYSCTL_CONF, UNIT_FILE] {
        assert!(sb.root().join(&f[1..]).is_file(), "{f} missing inside");
    }
    let unit_text = std::fs::read_to_string(sb.root().join(&UNIT_FILE[1..])).unwrap();
    let exec = format!("ExecStart={BIN} apply --boot {STATE}\n");
    assert!(unit_text.contains(&exec), "{unit_text}");
    assert!(unit_text.contains(&format!("ExecReload={BIN} apply --boot {STATE}\n")));
    assert_eq!(
        std::fs::read_to_string(sb.root().join(&STATE[1..])).unwrap(),
        YAML
    );
    let conf = std::fs::read_to_string(sb.root().join(&SYSCTL_CONF[1..])).unwrap();
    // route_localnet is set by the unit after its guard rule, never by systemd-sysctl.
    assert!(
        !conf
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("route_localnet")),
        "{conf}"
    );
    for line in [
        "# net.ipv4.conf.eth1.route_localnet = 1 is set by pfstate.service after its guard rule, not here",
        "net.ipv4.ip_forward = 1",
        "net.ipv6.conf.all.forwarding = 1",
        "net.ipv4.tcp_fin_timeout = 42",
        "net.ipv4.conf.default.log_martians = 1",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} not in:\n{conf}");
    }
    let (code, out) = plan_code(&sb);
    assert_eq!(code, 0, "plan right after apply: {out}");
    let again = pf(&sb, &["apply", YAML_INSIDE]);
    assert!(
        again.status.success() && String::from_utf8_lossy(&again.stdout).contains("in sync"),
        "{}",
        text(&again)
    );
    let (v4_before, v6_before) = saves(&sb);
    assert!(v4_before.contains("-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD"));
    let (foreign4, foreign6) = (foreign(&v4_before), foreign(&v6_before));
    assert!(foreign4.contains("-A INPUT -j SBXFOREIGN-IN"), "{foreign4}");
    assert!(foreign6.contains("-A INPUT -j SBXFOREIGN6"), "{foreign6}");
    // Kernel state that only lives in this boot: must be gone after the reboot.
    sb.check(&["iptables", "-w", "-N", "TEST-RUNTIME-ONLY"]);

    // Halt: the files are plain files in the overlay's upper dir, not on the host.
    sb.stop();
    let upper = sb.dir.join("ovl/etc/upper");
    for f in [STATE, SYSCTL_CONF, UNIT_FILE, WANTS_LINK] {
        assert!(
            upper.join(&f[5..]).symlink_metadata().is_ok(),
            "{f} not in the overlay"
        );
    }
    assert_host_untouched(&host_before);

    // Boot again: fresh netns, same /etc.
    let t_reboot = Instant::now();
    sb.reboot();
    let boot_wall = t_reboot.elapsed();
    let (code, out) = plan_code(&sb);
    let boot_to_plan_clean = t_reboot.elapsed();
    assert_eq!(
        code,
        0,
        "plan after reboot: {out}\nconsole:\n{}",
        sb.console_tail()
    );
    // pfstate inside reached systemd over the sandbox's system bus (else it warns).
    assert!(!out.contains("cannot ask systemd"), "{out}");
    let (v4, v6) = saves(&sb);
    assert!(!v4.contains("TEST-RUNTIME-ONLY"), "not a fresh netns");
    for chain in [
        ":PFSTATE-PREROUTING",
        ":PFSTATE-OUTPUT",
        ":PFSTATE-POSTROUTING",
        ":PFSTATE-INPUT",
        ":PFSTATE-FORWARD",
    ] {
        assert!(v4.contains(chain), "{chain} missing:\n{v4}");
    }
    assert!(v6.contains("--to-destination [fd00:77::11]:8080"), "{v6}");
    // Foreign rules: the same as before the reboot, pfstate's jumps where they were.
    assert_eq!(foreign(&v4), foreign4);
    assert_eq!(foreign(&v6), foreign6);
    assert!(v4.contains("-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD"));
    // Sysctls (the host's stay as they were, checked at the end).
    for (key, want) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv6.conf.all.forwarding", "1"),
        ("net.ipv4.conf.eth1.route_localnet", "1"),
        ("net.ipv4.tcp_fin_timeout", "42"),
        ("net.ipv4.conf.default.log_martians", "1"),
    ] {
        assert_eq!(sysctl(&sb, key), want, "{key} after reboot");
    }

    // The unit: active (asked from the host over the bus), succeeded, early enough.
    let dbus = outside(&sb);
    assert_eq!(dbus.active_state(UNIT).unwrap(), "active");
    assert!(dbus.is_enabled(UNIT).unwrap());
    assert_eq!(show(&sb, "Result", Some(UNIT)), "success");
    let userspace = mono(&sb, "UserspaceTimestampMonotonic", None);
    let ours_start = mono(&sb, "ExecMainStartTimestampMonotonic", Some(UNIT));
    let ours = mono(&sb, "ActiveEnterTimestampMonotonic", Some(UNIT));
    let pre = mono(
        &sb,
        "ActiveEnterTimestampMonotonic",
        Some("network-pre.target"),
    );
    let sysctl_done = mono(
        &sb,
        "ActiveEnterTimestampMonotonic",
        Some("systemd-sysctl.service"),
    );
    let early = mono(
        &sb,
        "ActiveEnterTimestampMonotonic",
        Some("sbx-foreign-early.service"),
    );
    let late_start = mono(
        &sb,
        "ExecMainStartTimestampMonotonic",
        Some("sbx-foreign-late.service"),
    );
    assert!(
        pre > 0 && ours > 0 && ours <= pre,
        "pfstate active at {ours}, network-pre.target at {pre}"
    );
    assert!(
        sysctl_done <= ours_start,
        "pfstate started before systemd-sysctl finished"
    );
    assert!(
        early <= ours_start && ours <= late_start,
        "foreign units out of order"
    );

    // Drift repaired from outside: delete an owned rule inside, RestartUnit from the host.
    sb.check(&[
        "iptables",
        "-w",
        "-t",
        "nat",
        "-D",
        "PFSTATE-PREROUTING",
        "1",
    ]);
    sb.check(&["ip6tables", "-w", "-D", "PFSTATE-FORWARD", "1"]);
    assert_eq!(plan_code(&sb).0, 2);
    let t_restart = Instant::now();
    dbus.restart(UNIT).unwrap();
    let restart = t_restart.elapsed();
    let (code, out) = plan_code(&sb);
    assert_eq!(code, 0, "plan after RestartUnit from the host: {out}");
    let (v4_now, v6_now) = saves(&sb);
    assert_eq!((norm(&v4_now), norm(&v6_now)), (norm(&v4), norm(&v6)));
    // And `systemctl reload pfstate` (ExecReload) inside.
    sb.check(&["iptables", "-w", "-D", "PFSTATE-INPUT", "3"]);
    assert_eq!(plan_code(&sb).0, 2);
    sb.check(&["systemctl", "reload", UNIT]);
    assert_eq!(plan_code(&sb).0, 0);
    assert_eq!(dbus.active_state(UNIT).unwrap(), "active");
    drop(dbus);

    // Remove: rules, files and the unit go; the foreign rules stay.
    let out = pf(&sb, &["remove"]);
    assert!(out.status.success(), "remove: {}", text(&out));
    let (v4, v6) = saves(&sb);
    assert!(
        !v4.contains("PFSTATE") && !v6.contains("PFSTATE"),
        "{v4}{v6}"
    );
    assert_eq!(foreign(&v4), foreign4);
    assert_eq!(foreign(&v6), foreign6);
    assert!(!outside(&sb).is_enabled(UNIT).unwrap());
    for f in [STATE, SYSCTL_CONF, UNIT_FILE, WANTS_LINK] {
        assert!(
            sb.root().join(&f[1..]).symlink_metadata().is_err(),
            "{f} left after remove"
        );
    }

    // Reboot: nothing comes back.
    sb.reboot();
    let (v4, v6) = saves(&sb);
    assert!(
        !v4.contains("PFSTATE") && !v6.contains("PFSTATE"),
        "{v4}{v6}"
    );
    assert_eq!(
        foreign(&v4),
        foreign4,
        "foreign rules after the last reboot"
    );
    assert_eq!(foreign(&v6), foreign6);
    for f in [STATE, SYSCTL_CONF, UNIT_FILE, WANTS_LINK] {
        assert!(
            sb.root().join(&f[1..]).symlink_metadata().is_err(),
            "{f} is back"
        );
    }
    assert_eq!(show(&sb, "LoadState", Some(UNIT)), "not-found");
    assert!(!outside(&sb).is_enabled(UNIT).unwrap());
    assert_eq!(sysctl(&sb, "net.ipv4.tcp_fin_timeout"), "60");
    assert_eq!(sysctl(&sb, "net.ipv6.conf.all.forwarding"), "0");
    assert_eq!(sysctl(&sb, "net.ipv4.conf.eth1.route_localnet"), "0");
    sb.stop();
    assert_host_untouched(&host_before);

    eprintln!(
        "[boot] figures: first boot + foreign units + apply {:.3} s; reboot (halt + boot to \
         'running') {:.3} s; reboot start -> `plan` clean {:.3} s; systemd userspace start -> \
         pfstate.service active {:.3} s (ExecMainStart at {:.3} s, network-pre.target at \
         {:.3} s); RestartUnit from the host {:.3} s; whole test {:.3} s",
        first_boot_and_apply.as_secs_f64(),
        boot_wall.as_secs_f64(),
        boot_to_plan_clean.as_secs_f64(),
        (ours - userspace) as f64 / 1e6,
        (ours_start - userspace) as f64 / 1e6,
        (pre - userspace) as f64 / 1e6,
        restart.as_secs_f64(),
        t_test.elapsed().as_secs_f64()
    );
}

/// The shipped recheck units with the binary path changed by drop-ins (as an admin would for a
/// binary outside /usr/sbin), the timer made to fire every second.
fn install_recheck_timer(sb: &Sandbox) {
    let units = concat!(env!("CARGO_MANIFEST_DIR"), "/units");
    for name in ["pfstate-recheck.service", "pfstate-recheck.timer"] {
        let text = std::fs::read_to_string(format!("{units}/{name}")).unwrap();
        put(sb, &format!("/etc/systemd/system/{name}"), &text);
    }
    put(
        sb,
        "/etc/systemd/system/pfstate-recheck.service.d/test.conf",
        &format!("[Service]\nExecStart=\nExecStart={BIN} apply --boot {STATE}\n"),
    );
    put(
        sb,
        "/etc/systemd/system/pfstate-recheck.timer.d/test.conf",
        "[Timer]\nOnBootSec=\nOnActiveSec=0\nOnUnitActiveSec=1s\nAccuracySec=10ms\n",
    );
    sb.check(&["systemctl", "daemon-reload"]);
    sb.check(&["systemctl", "enable", "--now", "pfstate-recheck.timer"]);
}

#[test]
fn plan_shows_drift_reload_reapplies_late_interface_gets_sysctl() {
    if skip() {
        return;
    }
    let host_before = host_snapshot();
    let t_test = Instant::now();
    let sb = boot_and_apply("drift");

    // The unit file edited by hand: plan shows it as a unified diff of the file.
    sb.check(&[
        "sed",
        "-i",
        "s/^Description=.*/Description=edited by hand/",
        UNIT_FILE,
    ]);
    sb.check(&[
        "sh",
        "-c",
        &format!("echo 'net.ipv4.ip_forward = 0' >> {SYSCTL_CONF}"),
    ]);
    let (code, out) = plan_code(&sb);
    assert_eq!(code, 2, "{out}");
    for want in [
        &format!("--- {UNIT_FILE} (live)"),
        &format!("+++ {UNIT_FILE} (desired)"),
        "-Description=edited by hand",
        "+Description=pfstate: port forwarding and firewall rules of sandbox-gw",
        &format!("--- {SYSCTL_CONF} (live)"),
        "-net.ipv4.ip_forward = 0",
    ] {
        assert!(out.contains(want), "plan lacks {want:?}:\n{out}");
    }
    assert!(!out.contains("rules (live)"), "rules are in sync: {out}");

    // Disabled behind pfstate's back: plan says so.
    sb.check(&["systemctl", "disable", UNIT]);
    let (code, out) = plan_code(&sb);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("unit pfstate.service: disabled -> enabled"),
        "{out}"
    );
    // apply puts both back.
    let fix = pf(&sb, &["apply", YAML_INSIDE]);
    assert!(fix.status.success(), "{}", text(&fix));
    assert_eq!(plan_code(&sb).0, 0);
    assert!(outside(&sb).is_enabled(UNIT).unwrap());
    assert!(
        show(&sb, "ExecReload", Some(UNIT)).contains(BIN),
        "no ExecReload"
    );

    // An interface that appears after boot.
    sb.check(&[
        "ip", "link", "add", "late0", "type", "veth", "peer", "name", "late0-p",
    ]);
    let key = "net.ipv4.conf.late0.route_localnet";
    assert_eq!(sysctl(&sb, key), "0");
    let (code, out) = plan_code(&sb);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("-{key} = 0\n")) && out.contains(&format!("+{key} = 1\n")));

    // 1. udev's path (99-systemd.rules, ACTION=="add", SUBSYSTEM=="net"): the same command.
    // It must not turn route_localnet on (only pfstate does, after the guard rule).
    sb.check(&[
        "/lib/systemd/systemd-sysctl",
        "--prefix=/net/ipv4/conf/late0",
        "--prefix=/net/ipv4/neigh/late0",
        "--prefix=/net/ipv6/conf/late0",
        "--prefix=/net/ipv6/neigh/late0",
    ]);
    assert_eq!(
        sysctl(&sb, key),
        "0",
        "systemd-sysctl turned route_localnet on"
    );
    assert_eq!(plan_code(&sb).0, 2);

    // 2. `systemctl reload pfstate` (ExecReload). The first apply also started the unit (a
    // queued start that finds the host in sync), so reload works before any reboot.
    sb.check(&["systemctl", "is-active", "--quiet", UNIT]);
    sb.check(&["sysctl", "-q", "-w", &format!("{key}=0")]);
    sb.check(&["systemctl", "reload", UNIT]);
    assert_eq!(sysctl(&sb, key), "1", "reload did not set it");

    // 3. Without udev: the shipped recheck timer converges it.
    sb.check(&["sysctl", "-q", "-w", &format!("{key}=0")]);
    let t_timer = Instant::now();
    install_recheck_timer(&sb);
    let timer = wait_for("the recheck timer", Duration::from_secs(15), || {
        sysctl(&sb, key) == "1"
    });
    let t_install = t_timer.elapsed();
    // Once more, now that the timer runs on its own schedule: drift in a rule too.
    sb.check(&["sysctl", "-q", "-w", &format!("{key}=0")]);
    sb.check(&["iptables", "-w", "-t", "nat", "-D", "PFSTATE-OUTPUT", "1"]);
    let t_again = Instant::now();
    wait_for("the recheck timer, again", Duration::from_secs(15), || {
        sysctl(&sb, key) == "1" && plan_code(&sb).0 == 0
    });
    let again = t_again.elapsed();
    assert_eq!(
        show(&sb, "Result", Some("pfstate-recheck.service")),
        "success"
    );
    drop(sb);
    assert_host_untouched(&host_before);
    eprintln!(
        "[boot] late interface: route_localnet set by the recheck timer {:.3} s after installing \
         it ({:.3} s of that waiting), drift (sysctl + deleted rule) repaired {:.3} s after \
         the change; whole test {:.3} s",
        t_install.as_secs_f64(),
        timer.as_secs_f64(),
        again.as_secs_f64(),
        t_test.elapsed().as_secs_f64()
    );
}
