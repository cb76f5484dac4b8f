//! The watcher against a real fight in a plain network namespace (`--root`, no systemd):
//! another program deletes pfstate's rules over and over and the watcher backs off.

use std::time::{Duration, Instant};

use pfstate::lab::netns::{Netns, NetnsOptions};

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const YAML: &str = "version: 1
forwards:
  - {name: web, listen: {port: 80, address: 192.0.2.1}, to: 10.77.0.11:8080, snat: masquerade}
";

// Another program deleting pfstate's rules over and over (here `iptables -F` every 100 ms, 20
// times) meets a watcher that backs off and says so, instead of 20 rewrites. In a plain
// network namespace with `--root`: no systemd needed.
root_test!(watcher_backs_off_from_a_fight, || {
    let ns = Netns::create("wfight", NetnsOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.yaml");
    std::fs::write(&state, YAML).unwrap();
    let root = dir.path().display().to_string();
    let run = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[BIN, "--root", &root, "apply", state.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log_path = dir.path().join("watch.log");
    let mut watcher = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), BIN, "--root", &root, "watch"])
        .arg(&state)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let t0 = Instant::now();
    while !log().contains("watching") && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..20 {
        run(&["iptables", "-w", "-t", "nat", "-F", "PFSTATE-PREROUTING"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    // The last deletion is repaired after the back-off (at most 2 + 4 s here).
    let back = || {
        let save = run(&["iptables-save", "-t", "nat"]);
        String::from_utf8_lossy(&save.stdout).contains("-A PFSTATE-PREROUTING")
    };
    let t1 = Instant::now();
    while !back() && t1.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let repaired_after = t1.elapsed();
    let _ = watcher.kill();
    let _ = watcher.wait();
    let text = log();
    let repairs = text.matches("repaired").count();
    eprintln!(
        "[watch] fight: 20 deletions 100 ms apart -> {repairs} rewrites; last one {:.1} s after the deletions stopped",
        repaired_after.as_secs_f64()
    );
    assert!(back(), "the rules never came back:\n{text}");
    assert!(
        text.contains("another program keeps removing pfstate's rules (last: a change by iptables"),
        "{text}"
    );
    assert!((5..=9).contains(&repairs), "{repairs} rewrites:\n{text}");
});
