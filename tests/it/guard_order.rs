//! `route_localnet` is never on without its guard rule, in any intermediate state of a command
//! (issue 11), proven on the in-memory fake host: each command is cut after every one of its
//! write steps (every later step fails, so the host stays as those steps left it), and, for a
//! failure at every step, after every step of the rollback too. Runs as any user.
//! `tests/local_guard.rs` proves the same end states with real packets.

use clap::Parser;
use pfstate::cli::Cli;
use pfstate::cmd::{self, Ctx};
use pfstate::host::fake::{FakeHost, FakeState};

const IFACES: [&str; 3] = ["eth0", "eth1", "lo"];

const LOCAL: &str = "version: 1
interfaces: {wan: eth0, lan: eth1}
forwards:
  - {name: web, listen: {port: 80}, to: 10.0.1.2:8080, local: true, via: lan}
  - {name: db, listen: {port: 5432, address: 192.0.2.1}, to: 10.0.1.3, local: true, via: lan}
";
const NOT_LOCAL: &str = "version: 1
interfaces: {wan: eth0, lan: eth1}
forwards:
  - {name: web, listen: {port: 80}, to: 10.0.1.2:8080}
";
/// The same forwards, their backends now behind eth0.
const LOCAL_ETH0: &str = "version: 1
interfaces: {wan: eth0, lan: eth1}
forwards:
  - {name: web, listen: {port: 80}, to: 10.0.1.2:8080, local: true, via: wan}
";

struct World {
    host: FakeHost,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let host = FakeHost::new();
        host.sysctl.insert("net/ipv4/ip_forward", "0");
        for i in ["all", "default"].iter().chain(IFACES.iter()) {
            for k in ["forwarding", "route_localnet"] {
                host.sysctl.insert(&format!("net/ipv4/conf/{i}/{k}"), "0");
            }
        }
        World {
            host,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `pfstate ARGS` (a state file given by its text); exit code and output.
    fn run(&self, args: &[&str], state: Option<&str>) -> (u8, String) {
        let root = self.dir.path().display().to_string();
        let file = self.dir.path().join("state.yaml");
        let mut argv = vec!["pfstate", "--root", &root];
        argv.extend_from_slice(args);
        let path = file.display().to_string();
        if let Some(text) = state {
            std::fs::write(&file, text).unwrap();
            argv.push(&path);
        }
        let cli = Cli::try_parse_from(argv).unwrap();
        let ctx = Ctx::new(&cli);
        let result = cmd::run(&cli, &ctx, &self.host.host());
        let text = match &result {
            Ok(o) => format!("{}{}", o.diff, o.notes.join("\n")),
            Err(e) => e.to_string(),
        };
        (cmd::output::exit_code(&result), text)
    }
}

/// Every interface whose route_localnet is 1 has the guard, and the guard is hooked.
fn unguarded(state: &FakeState) -> Vec<String> {
    let v4 = &state.dumps[0];
    let hooked = v4
        .lines()
        .any(|l| l.starts_with("-A INPUT ") && l.ends_with("-j PFSTATE-INPUT"));
    state
        .sysctls
        .iter()
        .filter(|(k, v)| k.ends_with("/route_localnet") && v.trim() == "1")
        .filter_map(|(k, _)| {
            let iface = k.split('/').nth(3)?;
            let guard = v4.lines().any(|l| {
                l.starts_with("-A PFSTATE-INPUT ")
                    && l.contains(&format!("-d 127.0.0.0/8 -i {iface} "))
                    && l.ends_with("-j DROP")
            });
            (!(hooked && guard)).then(|| iface.to_string())
        })
        .collect()
}

/// Run `setup` then the command, cut after every step (and after every rollback step of a
/// failure at every step); the invariant must hold in each state reached. Returns how many
/// states were checked.
fn check_every_state(setup: &[&str], args: &[&str], state: Option<&str>) -> usize {
    let prepared = || {
        let w = World::new();
        for s in setup {
            let (code, out) = w.run(&["apply"], Some(s));
            assert_eq!(code, 0, "setup: {out}");
            assert!(unguarded(&w.host.state()).is_empty());
        }
        let base = w.host.faults.steps().len();
        (w, base)
    };
    let (probe, base) = prepared();
    let (code, out) = probe.run(args, state);
    assert_eq!(code, 0, "{args:?}: {out}");
    let n = probe.host.faults.steps().len() - base;
    assert!(n > 0, "{args:?} wrote nothing");
    let mut checked = 0;
    for fail in 0..=n {
        for cut in fail + 1.. {
            let (w, base) = prepared();
            if fail < n {
                w.host.faults.fail_at(base + fail);
            }
            w.host.faults.fail_from(base + cut);
            let (_, out) = w.run(args, state);
            let state_now = w.host.state();
            checked += 1;
            assert_eq!(
                unguarded(&state_now),
                Vec::<String>::new(),
                "{args:?}: failure at step {fail}, cut at step {cut}: route_localnet on without its guard\nsteps: {:?}\n{out}",
                &w.host.faults.steps()[base..]
            );
            // Past the end of what the command does: no later state to look at.
            if w.host.faults.steps().len() - base <= cut {
                break;
            }
        }
    }
    eprintln!("{args:?}: {n} write steps, {checked} intermediate states checked");
    checked
}

#[test]
fn applying_local_turns_route_localnet_on_only_after_the_guard() {
    let checked = check_every_state(&[], &["apply"], Some(LOCAL));
    assert!(checked > 10, "{checked}");
}

#[test]
fn taking_local_off_turns_route_localnet_off_before_the_guard_goes() {
    check_every_state(&[LOCAL], &["apply"], Some(NOT_LOCAL));
}

#[test]
fn moving_local_to_another_interface_keeps_both_guarded() {
    check_every_state(&[LOCAL], &["apply"], Some(LOCAL_ETH0));
}

#[test]
fn remove_turns_route_localnet_off_before_the_guard_goes() {
    check_every_state(&[LOCAL], &["remove"], None);
}

#[test]
fn boot_apply_of_the_persisted_state_is_guarded_too() {
    // After a reboot the kernel has no rules and route_localnet is 0: the unit applies the
    // persisted state (files and unit are left alone).
    check_every_state(&[], &["apply", "--boot"], Some(LOCAL));
}

/// Each of the end states puts route_localnet back to what pfstate found.
#[test]
fn route_localnet_ends_as_found() {
    let w = World::new();
    w.host
        .sysctl
        .insert("net/ipv4/conf/eth0/route_localnet", "1");
    let rl = |w: &World, i: &str| {
        w.host.sysctl.values()[&format!("net/ipv4/conf/{i}/route_localnet")].clone()
    };
    assert_eq!(w.run(&["apply"], Some(LOCAL)).0, 0);
    assert_eq!(rl(&w, "eth1"), "1");
    assert_eq!(w.run(&["apply"], Some(LOCAL_ETH0)).0, 0);
    assert_eq!((rl(&w, "eth1"), rl(&w, "eth0")), ("0".into(), "1".into()));
    let (code, out) = w.run(&["apply"], Some(NOT_LOCAL));
    assert_eq!(code, 0, "{out}");
    // eth0 was 1 before pfstate came, but pfstate never leaves it on where it takes its own
    // guard away (it cannot tell that from a value another state set and lost the record of).
    assert_eq!((rl(&w, "eth1"), rl(&w, "eth0")), ("0".into(), "0".into()));
    assert_eq!(w.run(&["apply"], Some(LOCAL)).0, 0);
    assert_eq!(w.run(&["remove"], None).0, 0);
    assert_eq!(rl(&w, "eth1"), "0");
    assert_eq!(w.host.sysctl.values()["net/ipv4/ip_forward"], "0");
    let (code, out) = w.run(&["plan"], Some(NOT_LOCAL));
    assert_eq!(code, 2, "{out}");
}

/// The revert of an `apply --confirm` that was never confirmed (what its timer runs) takes
/// the guard away only after route_localnet is off again, at every step.
#[test]
fn an_unconfirmed_apply_is_reverted_guard_last() {
    let prepared = || {
        let w = World::new();
        let (code, out) = w.run(&["apply", "--confirm", "90s"], Some(LOCAL));
        assert_eq!(code, 0, "{out}");
        let timers = w.host.services.timers();
        let argv = timers.values().next().expect("a timer is armed").clone();
        let base = w.host.faults.steps().len();
        (w, argv, base)
    };
    let (probe, argv, base) = prepared();
    let rl = |w: &World| w.host.sysctl.values()["net/ipv4/conf/eth1/route_localnet"].clone();
    assert_eq!(rl(&probe), "1");
    let fire = |w: &World, argv: &[String]| {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let cli = Cli::try_parse_from(argv).unwrap();
        let ctx = Ctx::new(&cli);
        let _ = cmd::run(&cli, &ctx, &w.host.host());
    };
    fire(&probe, &argv);
    assert_eq!(rl(&probe), "0", "reverted");
    let n = probe.host.faults.steps().len() - base;
    for cut in 1..=n {
        let (w, argv, base) = prepared();
        w.host.faults.fail_from(base + cut);
        fire(&w, &argv);
        assert_eq!(
            unguarded(&w.host.state()),
            Vec::<String>::new(),
            "revert cut after step {cut}: {:?}",
            &w.host.faults.steps()[base..]
        );
    }
}
