//! Confirm-or-revert on the in-memory fake host (any user, no kernel): the timer `apply
//! --confirm` arms runs `pfstate confirm --revert ID`; firing it puts pfstate's own objects back
//! and leaves a rule another manager added meanwhile; `confirm` stops it; a failure to arm puts
//! the change back at once; and with no service manager the revert is a detached process.

use clap::Parser;
use pfstate::cli::Cli;
use pfstate::cmd::{self, Ctx, json, output};
use pfstate::host::fake::{FakeHost, FakeState};
use pfstate::model::Family;
use serde_json::Value;

const A: &str = "version: 1
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}
";

const B: &str = "version: 1
forwards:
  - {name: api, listen: {port: 8443}, to: 10.77.0.12:443}
filter:
  - {name: oops, chain: input, proto: tcp, action: drop}
";

const DOCKER: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
";

struct World {
    host: FakeHost,
    dir: tempfile::TempDir,
    a: String,
    b: String,
}

impl World {
    fn new() -> World {
        let host = FakeHost::new();
        host.sysctl.insert("net/ipv4/ip_forward", "0");
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(&a, A).unwrap();
        std::fs::write(&b, B).unwrap();
        World {
            host,
            a: a.display().to_string(),
            b: b.display().to_string(),
            dir,
        }
    }

    /// `pfstate --root DIR --format json ARGS`: exit code and the JSON document.
    fn run(&self, args: &[&str]) -> (u8, Value) {
        let root = self.dir.path().display().to_string();
        let mut argv = vec!["pfstate", "--root", &root, "--format", "json"];
        argv.extend_from_slice(args);
        self.run_argv(&argv)
    }

    fn run_argv(&self, argv: &[&str]) -> (u8, Value) {
        let cli = Cli::try_parse_from(argv).expect("arguments");
        let ctx = Ctx::new(&cli);
        let result = cmd::run(&cli, &ctx, &self.host.host());
        (output::exit_code(&result), json::document(&ctx, &result))
    }

    /// Run what the one armed timer would run.
    fn fire(&self) -> (u8, Value) {
        let timers = self.host.services.timers();
        let [(_, argv)] = timers.iter().collect::<Vec<_>>()[..] else {
            panic!("one timer armed: {timers:?}");
        };
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.run_argv(&argv)
    }
}

fn owned(dump: &str) -> Vec<&str> {
    dump.lines().filter(|l| l.contains("PFSTATE")).collect()
}

#[test]
fn the_timer_puts_back_pfstates_objects_and_keeps_dockers() {
    let w = World::new();
    assert_eq!(w.run(&["apply", &w.a]).0, 0);
    let before: FakeState = w.host.state();

    let (code, v) = w.run(&["apply", "--confirm", "90s", &w.b]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["confirm"]["revert"], "systemd-timer", "{v}");
    assert_eq!(v["confirm"]["seconds"], 90);
    let timers = w.host.services.timers();
    let argv = timers.values().next().expect("a timer");
    assert_eq!(argv[3..5], ["confirm".to_string(), "--revert".to_string()]);

    let (code, v) = w.run(&["apply", &w.a]);
    assert_eq!(code, 1, "a second apply is refused: {v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("is waiting for `pfstate confirm`"),
        "{v}"
    );
    let (_, status) = w.run(&["status"]);
    assert_eq!(status["confirm"]["revert"], "systemd-timer", "{status}");

    w.host.netfilter.load(Family::V4, DOCKER);
    let (code, v) = w.fire();
    assert_eq!((code, v["changed"].as_bool()), (0, Some(true)), "{v}");
    let after = w.host.state();
    assert_eq!(owned(&after.dumps[0]), owned(&before.dumps[0]));
    assert_eq!(owned(&after.dumps[1]), owned(&before.dumps[1]));
    assert!(
        after.dumps[0].contains("172.17.0.2:80"),
        "{}",
        after.dumps[0]
    );
    assert_eq!(after.sysctls, before.sysctls);
    let files = |s: &FakeState| {
        s.files
            .iter()
            .filter(|(k, _)| k.starts_with("/etc/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(files(&after), files(&before));
    assert_eq!(after.enabled, before.enabled);

    let (code, v) = w.run(&["confirm"]);
    assert_eq!(code, 1);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("was put back at"),
        "{v}"
    );
}

#[test]
fn confirm_stops_the_timer_and_keeps_the_change() {
    let w = World::new();
    assert_eq!(w.run(&["apply", &w.a]).0, 0);
    assert_eq!(w.run(&["apply", "--confirm", "1m", &w.b]).0, 0);
    let kept = w.host.state();
    let armed = w.host.services.timers();
    let (code, v) = w.run(&["confirm"]);
    assert_eq!((code, v["changed"].as_bool()), (0, Some(true)), "{v}");
    assert!(v["confirmed"]["applied_at"].is_string(), "{v}");
    assert!(w.host.services.timers().is_empty(), "the timer is stopped");
    // A timer that fired anyway (a race with confirm) finds nothing to put back.
    let argv: Vec<&str> = armed
        .values()
        .next()
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect();
    let (code, _) = w.run_argv(&argv);
    assert_eq!(code, 0);
    let now = w.host.state();
    assert_eq!(now.dumps, kept.dumps);
    assert_eq!(w.run(&["apply", &w.b]).0, 0, "applies again");
}

#[test]
fn without_a_timer_the_revert_is_a_detached_process_and_without_either_no_change_stays() {
    let probe = World::new();
    assert_eq!(probe.run(&["apply", &probe.a]).0, 0);
    assert_eq!(probe.run(&["apply", "--confirm", "60s", &probe.b]).0, 0);
    let step = probe
        .host
        .faults
        .steps()
        .iter()
        .position(|s| s.starts_with("start pfstate-confirm-"))
        .expect("the timer is a step");

    let w = World::new();
    assert_eq!(w.run(&["apply", &w.a]).0, 0);
    let before = w.host.state();
    // The timer cannot be started (no systemd): the revert is a detached process.
    w.host.faults.fail_at(step);
    let (code, v) = w.run(&["apply", "--confirm", "60s", &w.b]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["confirm"]["revert"], "process", "{v}");
    let spawned = w.host.facts.spawned.lock().unwrap().clone();
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0].last().map(String::as_str), Some("--wait"));
    assert_ne!(w.host.state().dumps, before.dumps);

    // Neither can be started: the change is put back at once, and the apply fails.
    let mut w = World::new();
    assert_eq!(w.run(&["apply", &w.a]).0, 0);
    let before = w.host.state();
    w.host.facts.spawn_fails = true;
    w.host.faults.fail_at(step);
    let (code, v) = w.run(&["apply", "--confirm", "60s", &w.b]);
    assert_eq!(code, 1, "{v}");
    let messages: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("cannot start a process")),
        "{v}"
    );
    assert!(
        messages.iter().any(|m| m.contains("nothing was changed")),
        "{v}"
    );
    let after = w.host.state();
    for i in 0..2 {
        // Tables the attempt created stay (empty), as in the kernel; pfstate's objects are gone.
        assert_eq!(owned(&after.dumps[i]), owned(&before.dumps[i]));
    }
    assert_eq!(after.sysctls, before.sysctls);
    assert_eq!(after.enabled, before.enabled);
}
