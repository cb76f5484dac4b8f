//! `pfstate watch` against the real programs that flush pfstate's rules, inside the systemd
//! sandbox (tests/support/sandbox.sh): firewalld 1.3 (`firewall-cmd --reload`, restart, stop),
//! `nft flush ruleset`, nftables.service, and Docker 20.10 (start, restart).
//!
//! The sandbox is the gateway: a client namespace on its `wan0`, a backend namespace (an echo
//! server) on its `lan0`, and one forward `192.0.2.1:80 -> 10.77.0.11:8080`. `pfstate apply`
//! inside installs and starts pfstate-watch.service. For every event the test records, from
//! an nf_tables event socket opened in the sandbox's network namespace, when pfstate's nat
//! rules were deleted and when they were written again, probes the forward every 50 ms, and
//! counts the watcher's rewrites in its journal. Figures are printed (`[watch] ...`); the
//! assertions are that the rules come back, traffic flows again, and that there is exactly one
//! rewrite per flush. The idle watcher's CPU time over a minute is printed too.
//!
//! Skips only when not root or without systemd; firewalld, nftables and docker.io are
//! installed by scripts/install-deps.sh.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::{self, Sandbox};
use pfstate::lab::netns::{Netns, NetnsOptions};
use pfstate::lab::probe::probe_tcp;
use pfstate::lab::server::Proto;

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const YAML_INSIDE: &str = "/run/pfstate-test/share/host.yaml";
const WATCH: &str = "pfstate-watch.service";
const YAML: &str = "version: 1
host: watch-gw
interfaces: {wan: wan0, lan: lan0}
forwards:
  - {name: web, listen: {port: 80, address: 192.0.2.1}, to: 10.77.0.11:8080, snat: masquerade, via: lan}
filter:
  - {name: admin, chain: input, proto: tcp, dport: 2222, action: accept}
";

mod recorder;

use recorder::{Recorder, outages};

struct Lab {
    sb: Sandbox,
    client: Netns,
    _backend: Netns,
}

fn lab() -> Lab {
    let sb = Sandbox::boot("watch", "");
    let client = Netns::create("wcl", NetnsOptions::default()).unwrap();
    let backend = Netns::create("wbe", NetnsOptions::default()).unwrap();
    let pid = sb.pid.to_string();
    for (ns, peer, inside, ours, theirs) in [
        (&client, "wan0p", "wan0", "192.0.2.100/24", "192.0.2.1/24"),
        (&backend, "lan0p", "lan0", "10.77.0.11/24", "10.77.0.1/24"),
    ] {
        ns.ip(&[
            "link", "add", peer, "type", "veth", "peer", "name", inside, "netns", &pid,
        ])
        .unwrap();
        ns.ip(&["addr", "add", ours, "dev", peer]).unwrap();
        ns.ip(&["link", "set", peer, "up"]).unwrap();
        sb.check(&["ip", "addr", "add", theirs, "dev", inside]);
        sb.check(&["ip", "link", "set", inside, "up"]);
    }
    backend
        .ip(&["route", "add", "default", "via", "10.77.0.1"])
        .unwrap();
    backend.serve("be1", Proto::Tcp, 8080).unwrap();
    Lab {
        sb,
        client,
        _backend: backend,
    }
}

fn forward_works(lab: &Lab) -> bool {
    let dst: SocketAddr = "192.0.2.1:80".parse().unwrap();
    probe_tcp(&lab.client, dst, Duration::from_millis(150)).name() == Some("be1".into())
}

fn sh(sb: &Sandbox, script: &str) -> String {
    sb.check(&["sh", "-c", script])
}

/// The watcher's rewrites so far (its journal lines saying it repaired).
fn rewrites(sb: &Sandbox) -> usize {
    sh(
        sb,
        &format!("journalctl -q -o cat -u {WATCH} | grep -c 'repaired' || true"),
    )
    .trim()
    .parse()
    .unwrap()
}

fn apply(sb: &Sandbox) -> String {
    let out = sb.exec(&[BIN, "apply", YAML_INSIDE]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "apply failed:\n{text}");
    text
}

/// What one event did: flushes seen, each outage, when traffic flowed again, rewrites.
struct Measured {
    outages: Vec<Duration>,
    traffic: Vec<Duration>,
    rewrites: usize,
}

/// Run `script` in the sandbox while recording and probing; then wait until 2 s pass without a
/// deletion of pfstate's rules.
fn measure(lab: &Lab, rec: &Recorder, what: &str, script: &str) -> Measured {
    let before = rewrites(&lab.sb);
    rec.take();
    let t0 = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let cmd = {
        let (dir, script, done) = (lab.sb.dir.clone(), script.to_string(), Arc::clone(&done));
        std::thread::spawn(move || {
            let out = std::process::Command::new(support::SCRIPT)
                .args(["exec"])
                .arg(&dir)
                .args(["sh", "-c", &script])
                .output()
                .unwrap();
            done.store(true, Ordering::SeqCst);
            out
        })
    };
    let mut probes: Vec<(Instant, bool)> = Vec::new();
    let mut marks = Vec::new();
    let deadline = t0 + Duration::from_secs(60);
    loop {
        probes.push((Instant::now(), forward_works(lab)));
        std::thread::sleep(Duration::from_millis(50));
        marks.extend(rec.take());
        let last = marks.last().map_or(t0, |(t, _)| *t);
        let settled = done.load(Ordering::SeqCst) && last.elapsed() > Duration::from_secs(2);
        if settled || Instant::now() > deadline {
            break;
        }
    }
    let out = cmd.join().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = outages(&marks);
    let traffic = spans
        .iter()
        .map(|(gone, _)| {
            let ok = probes.iter().find(|(t, ok)| *ok && t > gone);
            ok.map(|(t, _)| t.duration_since(*gone))
                .unwrap_or_else(|| panic!("{what}: no traffic after the flush at {gone:?}"))
        })
        .collect();
    assert!(forward_works(lab), "{what}: the forward does not work");
    Measured {
        outages: spans.iter().map(|(_, d)| *d).collect(),
        traffic,
        rewrites: rewrites(&lab.sb) - before,
    }
}

fn ms(d: &[Duration]) -> String {
    let v: Vec<String> = d
        .iter()
        .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
        .collect();
    format!("[{}] ms", v.join(", "))
}

fn report(what: &str, m: &Measured) {
    eprintln!(
        "[watch] {what}: {} flush(es) of pfstate's rules; rules back after {}; traffic through the forward again after {}; {} rewrite(s)",
        m.outages.len(),
        ms(&m.outages),
        ms(&m.traffic),
        m.rewrites
    );
}

/// CPU time (ticks) and context switches of a process inside the sandbox, all threads.
fn cpu(sb: &Sandbox, pid: &str) -> (u64, u64) {
    let stat = sh(sb, &format!("cat /proc/{pid}/stat"));
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let status = sh(sb, &format!("cat /proc/{pid}/task/*/status"));
    let switches = status
        .lines()
        .filter(|l| l.contains("ctxt_switches"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    (ticks, switches)
}

sandbox_test!(watcher_repairs_after_firewalld_nftables_and_docker, || {
    for tool in ["/usr/sbin/firewalld", "/usr/sbin/nft", "/usr/sbin/dockerd"] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} missing: run scripts/install-deps.sh"
        );
    }
    let lab = lab();
    let sb = &lab.sb;
    sb.check(&["systemctl", "start", "firewalld"]);
    // Type=dbus: started once it owns its bus name, before it builds its rules.
    sh(sb, "until firewall-cmd -q --state; do sleep 0.05; done");
    std::fs::write(sb.dir.join("share/host.yaml"), YAML).unwrap();
    let applied = apply(sb);
    for want in [
        "firewalld is running or enabled",
        "pfstate-watch.service puts them back within a second",
        "zone `public` does not allow tcp port 2222",
    ] {
        assert!(
            applied.contains(want),
            "apply does not warn {want:?}:\n{applied}"
        );
    }
    sh(
        sb,
        &format!("until systemctl is-active -q {WATCH}; do sleep 0.05; done"),
    );
    sh(
        sb,
        &format!("until journalctl -q -u {WATCH} | grep -q 'watching'; do sleep 0.05; done"),
    );
    assert!(
        forward_works(&lab),
        "the forward does not work through firewalld"
    );
    let rec = Recorder::start(sb);

    sb.check(&["systemctl", "enable", "nftables.service"]);
    for (what, script) in [
        ("firewall-cmd --reload", "firewall-cmd --reload"),
        ("systemctl restart firewalld", "systemctl restart firewalld"),
        ("systemctl stop firewalld", "systemctl stop firewalld"),
        ("nft flush ruleset", "nft flush ruleset"),
        (
            "systemctl restart nftables",
            "systemctl restart nftables.service",
        ),
    ] {
        let m = measure(&lab, &rec, what, script);
        report(what, &m);
        assert!(
            !m.outages.is_empty(),
            "{what}: pfstate's rules were not flushed"
        );
        assert_eq!(m.rewrites, m.outages.len(), "{what}: one rewrite per flush");
    }
    let warned = apply(sb);
    assert!(
        warned.contains(
            "nftables.service is enabled: its start, reload and stop run `nft flush ruleset`"
        ),
        "{warned}"
    );

    // Docker: the start re-hooks pfstate's FORWARD jump into DOCKER-USER (one rewrite); a
    // restart leaves DOCKER-USER alone, so nothing of pfstate's needs a repair.
    let start = measure(
        &lab,
        &rec,
        "systemctl start docker",
        "systemctl start docker",
    );
    report("systemctl start docker", &start);
    let restart = measure(
        &lab,
        &rec,
        "systemctl restart docker",
        "systemctl restart docker",
    );
    report("systemctl restart docker", &restart);
    assert!(
        restart.outages.is_empty(),
        "Docker's restart deleted pfstate's rules"
    );
    let save = sb.check(&["iptables-save", "-t", "filter"]);
    assert!(
        save.contains("-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD"),
        "{save}"
    );
    let plan = sb.exec(&[BIN, "plan", YAML_INSIDE]);
    let plan_err = String::from_utf8_lossy(&plan.stderr);
    assert!(
        plan_err.contains("Docker sets the FORWARD policy to DROP only"),
        "{plan_err}"
    );

    // Idle: a minute with nothing happening.
    let pid = sh(sb, &format!("systemctl show -p MainPID --value {WATCH}"));
    let pid = pid.trim();
    let (t0, s0) = cpu(sb, pid);
    std::thread::sleep(Duration::from_secs(60));
    let (t1, s1) = cpu(sb, pid);
    eprintln!(
        "[watch] idle for 60 s: {} ms of CPU, {} context switches (all threads)",
        (t1 - t0) * 10,
        s1 - s0
    );
    assert!(t1 - t0 <= 5, "the idle watcher used {} ticks", t1 - t0);
    drop(rec);
});
