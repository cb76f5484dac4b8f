//! Running pfstate in the booted sandbox, and reading what it left.

use super::*;

pub(super) fn foreign_unit(name: &str, order: &str, cmds: &[&str]) -> String {
    let exec: String = cmds.iter().map(|c| format!("ExecStart={c}\n")).collect();
    format!(
        "[Unit]\nDescription=test: foreign rules ({name})\nDefaultDependencies=no\n{order}\n\
         [Service]\nType=oneshot\nRemainAfterExit=yes\n{exec}\n[Install]\nWantedBy=multi-user.target\n"
    )
}

pub(super) fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Write a file inside the sandbox (lands in its /etc overlay, never in the host's /etc).
pub(super) fn put(sb: &Sandbox, path: &str, content: &str) {
    let dir = Path::new(path).parent().unwrap().display().to_string();
    let out = sb.exec_with(
        &["sh", "-c", &format!("mkdir -p '{dir}' && cat > '{path}'")],
        &[],
        Some(content.as_bytes()),
    );
    assert!(out.status.success(), "writing {path}: {}", text(&out));
}

/// pfstate inside the sandbox (the binary under test, bound read-only at the same path).
pub(super) fn pf(sb: &Sandbox, args: &[&str]) -> Output {
    let mut argv = vec![BIN];
    argv.extend_from_slice(args);
    sb.exec_with(&argv, &[("NO_COLOR", "1")], None)
}

pub(super) fn plan_code(sb: &Sandbox) -> (i32, String) {
    let out = pf(sb, &["plan", STATE]);
    (out.status.code().unwrap_or(-1), text(&out))
}

pub(super) fn sysctl(sb: &Sandbox, key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    sb.check(&["cat", &path]).trim().to_string()
}

pub(super) fn show(sb: &Sandbox, prop: &str, unit: Option<&str>) -> String {
    let mut argv = vec!["systemctl", "show", "-p", prop, "--value"];
    argv.extend(unit);
    sb.check(&argv).trim().to_string()
}

pub(super) fn mono(sb: &Sandbox, prop: &str, unit: Option<&str>) -> u64 {
    let v = show(sb, prop, unit);
    v.parse()
        .unwrap_or_else(|_| panic!("{prop} of {unit:?}: {v:?}"))
}

/// Foreign lines of a save: no pfstate chain or jump, no comments, no counters.
/// A table left with nothing but built-in chains at policy ACCEPT counts as absent (the kernel
/// keeps a table once anything loaded it).
pub(super) fn foreign(save: &str) -> String {
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
pub(super) fn norm(save: &str) -> String {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.find(" [") {
            Some(i) if l.starts_with(':') => format!("{}\n", &l[..i]),
            _ => format!("{l}\n"),
        })
        .collect()
}

pub(super) fn saves(sb: &Sandbox) -> (String, String) {
    (sb.check(&["iptables-save"]), sb.check(&["ip6tables-save"]))
}

/// From the host: the sandbox's systemd over its bus socket.
pub(super) fn outside(sb: &Sandbox) -> DbusServiceManager {
    DbusServiceManager::at_address(&sb.bus())
        .unwrap_or_else(|e| panic!("connect to {}: {e}", sb.bus()))
        .with_job_timeout(Duration::from_secs(30))
}

pub(super) fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

/// What the host has that a sandbox must never change.
pub(super) fn host_snapshot() -> String {
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

pub(super) fn assert_host_untouched(before: &str) {
    assert_eq!(host_snapshot(), before, "the host changed");
    for p in [UNIT_FILE, SYSCTL_CONF, "/etc/pfstate"] {
        assert!(!Path::new(p).exists(), "the host got {p}");
    }
}

/// Boot, load foreign rules through two foreign units (one before pfstate, one after), apply.
pub(super) fn boot_and_apply(name: &str) -> Sandbox {
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
