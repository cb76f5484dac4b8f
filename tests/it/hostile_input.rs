//! Hostile input without root (issue 12): work is bounded on any input, exit codes keep their
//! meaning, and a binary path the boot unit cannot name is refused.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{BIN, pfstate};

#[test]
fn a_usage_error_exits_1_never_2() {
    let r = pfstate(&["validate", "--no-such-flag", "x.yaml"]);
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(r.stderr.contains("--no-such-flag"), "{}", r.show());
    let r = pfstate(&["no-such-command"]);
    assert_eq!(r.code, 1, "{}", r.show());
    assert_eq!(pfstate(&["--help"]).code, 0);
    assert_eq!(pfstate(&["--version"]).code, 0);
}

#[test]
fn a_device_is_read_with_the_file_cap() {
    let r = pfstate(&["validate", "/dev/zero"]);
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(
        r.stderr.contains("/dev/zero: larger than 64 MiB"),
        "{}",
        r.show()
    );
}

#[test]
fn a_pipe_is_read_with_the_file_cap() {
    let mut child = Command::new(BIN)
        .args(["validate", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // An endless writer: pfstate must stop reading at the cap and close the pipe.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'#'; 1 << 20];
        for _ in 0..1024 {
            if stdin.write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    let out = child.wait_with_output().unwrap();
    assert!(writer.join().unwrap(), "pfstate read 1 GiB from a pipe");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-: larger than 64 MiB"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dash_reads_standard_input() {
    let run = |text: &str| {
        let mut child = Command::new(BIN)
            .args(["validate", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = run("version: 1\nforwards:\n  - {name: a, listen: {port: 80}, to: 10.0.0.2}\n");
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "-: ok\n");
    let bad = run("version: 1\nforwards:\n  - {name: a, listen: {port: 0}, to: 10.0.0.2}\n");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("-:3:"));
}

/// 20,000 forwards on one port: one error per forward, the first 100 printed and the rest
/// counted, in bounded memory (the quadratic version printed n² lines and ran out of memory).
#[test]
fn many_forwards_on_one_port_give_the_first_errors_and_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from("version: 1\nforwards:\n");
    for i in 0..20_000 {
        yaml.push_str(&format!(
            "  - {{name: f{i}, listen: {{port: 80}}, to: 10.0.{}.{}}}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    let f = common::write_yaml(dir.path(), "many.yaml", &yaml);
    let r = pfstate(&["validate", &f]);
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        101,
        "{}",
        &r.stderr[..2000.min(r.stderr.len())]
    );
    assert!(
        lines[0].ends_with(
            "many.yaml:4:24: forward `f1` listens on the same port as forward `f0` (line 3); give them different ports, addresses, interfaces or sources"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[99].contains("forward `f100` listens on the same port as forward `f0`"));
    assert!(
        lines[100].ends_with("many.yaml: ... and 19899 more problem(s) not shown"),
        "{}",
        lines[100]
    );
    let peak_kib = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .unwrap()
        .max_rss();
    assert!(peak_kib < 200 * 1024, "peak {peak_kib} KiB");
}

/// systemd expands `$` in ExecStart= and a newline ends the line: a binary there is refused
/// with a clear message instead of a unit systemd rejects at boot.
#[test]
fn a_binary_path_exec_start_cannot_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::write_yaml(
        dir.path(),
        "host.yaml",
        "version: 1\nforwards:\n  - {name: a, listen: {port: 80}, to: 10.0.0.2}\n",
    );
    for name in ["a$b", "a\nb"] {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        // Copied by cp, not by this process: a file it had open for writing could be inherited
        // by a child another test forks meanwhile, and exec would fail with ETXTBSY.
        let bin = sub.join("pfstate");
        let cp = Command::new("cp").arg(BIN).arg(&bin).status().unwrap();
        assert!(cp.success());
        let out = Command::new(&bin)
            .args(["render", &state])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("the boot unit cannot run"), "{err}");
        assert!(err.contains("which ExecStart= cannot express"), "{err}");
    }
}
