//! `pfstate try FILE`: the sandbox users run before touching a real gateway. Root only (it
//! builds namespaces); without root each test prints SKIPPED and passes.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");

/// Run `pfstate try FILE`; also returns the child's pid (its namespaces are `pft-<pid>-...`).
fn run_try(file: &Path) -> (Output, u32) {
    run_try_as(file, "text")
}

fn run_try_as(file: &Path, format: &str) -> (Output, u32) {
    let child = Command::new(BIN)
        .args(["--color", "never", "--format", format, "try"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

fn assert_cleaned_up(pid: u32) {
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    let mine = format!("pft-{pid}-");
    assert!(
        !list.lines().any(|l| l.starts_with(&mine)),
        "namespaces left: {list}"
    );
}

root_test!(try_demo_reaches_every_backend, || {
    let before = pfstate::lab::root_state();
    let fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/try-demo.yaml");
    let (out, pid) = run_try(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "192.168.1.10:8080",
        "192.168.1.11:8080",
        "192.168.1.12:443",
        "192.168.1.20:27015",
        "192.168.1.20:27016",
        "client saw 203.0.113.10",
        "LAN client  203.0.113.10:80",
        "gateway     203.0.113.10:80",
        "gateway     127.0.0.1:80",
        " 0 failed",
    ] {
        assert!(stdout.contains(want), "{want:?} missing:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Round-robin over two backends: an even split of the 16 connections.
    assert!(
        stdout.contains("192.168.1.10:8080 ×8, 192.168.1.11:8080 ×8"),
        "{stdout}"
    );
    assert_cleaned_up(pid);
    assert_eq!(
        pfstate::lab::root_state(),
        before,
        "root namespace rules changed"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        fwd
    );
    assert!(
        !Path::new("/etc/pfstate/host.yaml").exists()
            || before.iter().any(|s| s.contains("PFSTATE"))
    );
});

// A file whose hairpin networks miss the LAN, and a forward limited to other sources: try
// reports the failure with a reason, exits 1, and still cleans up.
/// A state whose LAN client is outside the hairpin networks: one of three checks fails.
fn one_failing_check(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "version: 1\n\
         interfaces: {wan: ext0, lan: int0}\n\
         forwards:\n\
         \x20 - name: web\n\
         \x20   listen: {port: 80, address: 198.51.100.7}\n\
         \x20   to: 10.20.30.40:8080\n\
         \x20   hairpin: [10.99.0.0/24]\n\
         \x20 - name: admin\n\
         \x20   listen: {port: 2222, address: 198.51.100.7, from: [192.0.2.0/24]}\n\
         \x20   to: 10.20.30.41:22\n",
    )
    .unwrap();
    file
}

root_test!(try_reports_failures_with_a_reason, || {
    let dir = tempfile::tempdir().unwrap();
    let file = one_failing_check(dir.path());
    let (out, pid) = run_try(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("ext0 198.51.100.7/24"), "{stdout}");
    assert!(stdout.contains("int0 10.20.30.1/24"), "{stdout}");
    // WAN works (the backend routes via the gateway) ...
    let wan = stdout
        .lines()
        .find(|l| l.starts_with("web") && l.contains("WAN client"))
        .unwrap();
    assert!(
        wan.contains(" ok ") && wan.contains("10.20.30.40:8080 ×2"),
        "{wan}"
    );
    // ... the LAN client is not in the hairpin networks ...
    let lan = stdout
        .lines()
        .find(|l| l.starts_with("web") && l.contains("LAN client"))
        .unwrap();
    assert!(lan.contains("FAIL") && lan.contains("hairpin"), "{lan}");
    // ... and the WAN client is outside admin's listen.from: refused, as it should be.
    let admin = stdout.lines().find(|l| l.starts_with("admin")).unwrap();
    assert!(
        admin.contains(" ok ") && admin.contains("refused"),
        "{admin}"
    );
    assert!(stderr.contains("1 of 3 check(s) failed"), "{stderr}");
    assert_cleaned_up(pid);
});

// `--format json`: the probe table as records (docs/json.md), the failure as an error record.
root_test!(try_gives_the_probe_table_as_records, || {
    let dir = tempfile::tempdir().unwrap();
    let (out, pid) = run_try_as(&one_failing_check(dir.path()), "json");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(
        (v["format_version"].as_u64(), v["command"].as_str()),
        (Some(1), Some("try"))
    );
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["failed"].as_u64(),
            v["passed"].as_u64()
        ),
        (Some(false), Some(1), Some(2)),
        "{v}"
    );
    let probes = v["probes"].as_array().unwrap();
    let lan = probes
        .iter()
        .find(|p| p["entry"] == "web" && p["from"] == "LAN client")
        .expect("the LAN row");
    assert_eq!(
        (lan["proto"].as_str(), lan["result"].as_str()),
        (Some("tcp"), Some("fail")),
        "{lan}"
    );
    assert!(
        lan["reached"].as_str().unwrap().contains("hairpin"),
        "{lan}"
    );
    assert_eq!(lan["to"], "198.51.100.7:80");
    assert!(
        v["lab"].as_str().unwrap().contains("ext0 198.51.100.7/24"),
        "{v}"
    );
    assert_eq!(v["errors"][0]["message"], "try: 1 of 3 check(s) failed");
    assert_cleaned_up(pid);
});

#[test]
fn try_needs_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "version: 1\nforwards:\n  - name: x\n    listen: {port: 0}\n    to: 10.0.0.1\n",
    )
    .unwrap();
    let (out, _) = run_try(&file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:4:"), "{stderr}");
}
