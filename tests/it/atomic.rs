//! `apply` and `remove` are all or nothing under faults (issue 12), on the in-memory fake host:
//! a failure at any step, a failure that persists (read-only or full file system), a rollback
//! step that fails too, and a run killed at any step (every later step fails: the process is
//! gone), after which the next run finds the journal and converges.

use clap::Parser;
use pfstate::apply::txn::JOURNAL_PATH;
use pfstate::cli::Cli;
use pfstate::cmd::{self, Ctx, output};
use pfstate::host::Host;
use pfstate::host::fake::backends::{WithOther, other_backend};
use pfstate::host::fake::{FakeHost, FakeNetfilter, FakeState};
use pfstate::model::Family;

use crate::common::{example, fixture};

/// The README's gateway (both families, sysctls, three files, the unit) ...
fn state_a() -> String {
    example("edge-gateway.yaml")
        + "  - {name: ssh6, chain: input, proto: tcp, dport: 22, source: \"2001:db8::/32\", action: accept}\n"
}

/// ... and a change of it: a port moves, sources change, one entry is added, and the unit's
/// label.
fn state_b() -> String {
    state_a()
        .replace("host: edge-1", "host: edge-2")
        .replace("port: 80, address", "port: 81, address")
        .replace("source: 2001:db8::/32", "source: 2001:db9::/32")
        .replace(
            "name: lan-out, source: 192.168.1.0/24",
            "name: lan-out, source: 192.168.2.0/24",
        )
        + "  - {name: dns, chain: input, proto: udp, dport: 53, action: accept}\n"
}

/// A fake machine with the sysctls the states touch, and a --root for the run lock.
struct Machine {
    host: FakeHost,
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let host = FakeHost::new();
        for k in ["net/ipv4/ip_forward", "net/ipv4/conf/eth1/route_localnet"] {
            host.sysctl.insert(k, "0");
        }
        for i in ["all", "default", "lo", "eth0", "eth1"] {
            host.sysctl
                .insert(&format!("net/ipv4/conf/{i}/forwarding"), "0");
        }
        Machine {
            host,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A machine where `yaml` was applied cleanly.
    fn with(yaml: &str) -> Machine {
        let m = Machine::new();
        let (code, out) = m.run(&["apply"], yaml);
        assert_eq!(code, 0, "{out}");
        m
    }

    /// `pfstate ARGS [FILE]` in this process against the fake; FILE holds `yaml` if given.
    fn run(&self, args: &[&str], yaml: &str) -> (u8, String) {
        self.run_on(&self.host.host(), args, yaml)
    }

    /// The same against `host` (the fake with other parts lent in).
    fn run_on(&self, host: &Host, args: &[&str], yaml: &str) -> (u8, String) {
        let file = self.dir.path().join("state.yaml");
        std::fs::write(&file, yaml).expect("write state");
        let root = self.dir.path().display().to_string();
        let mut argv = vec!["pfstate", "--root", &root];
        argv.extend_from_slice(args);
        let file = file.display().to_string();
        if !yaml.is_empty() {
            argv.push(&file);
        }
        let cli = Cli::try_parse_from(argv).expect("arguments");
        let result = cmd::run(&cli, &Ctx::new(&cli), host);
        let text = match &result {
            Ok(o) => o.notes.join("\n"),
            Err(e) => e.to_string(),
        };
        (output::exit_code(&result), text)
    }

    fn state(&self) -> FakeState {
        self.host.state()
    }

    /// How many write steps the host saw so far.
    fn steps(&self) -> usize {
        self.host.faults.steps().len()
    }
}

/// Each step of `command` on a machine `setup` builds, failed in turn: the command fails, says
/// the previous state was restored, and the machine is exactly as before.
fn every_step_rolls_back(setup: impl Fn() -> Machine, args: &[&str], yaml: &str) {
    let probe = setup();
    let first = probe.steps();
    assert_eq!(probe.run(args, yaml).0, 0);
    let steps = probe.host.faults.steps()[first..].to_vec();
    assert!(steps.len() >= 4, "{steps:?}");
    for (i, step) in steps.iter().enumerate() {
        let m = setup();
        let before = m.state();
        m.host.faults.fail_at(m.steps() + i);
        let (code, out) = m.run(args, yaml);
        assert_eq!(code, 1, "step {i} ({step}): {out}");
        assert!(
            out.contains("the previous state was restored"),
            "{step}: {out}"
        );
        assert_eq!(m.state(), before, "step {i} ({step}) left changes: {out}");
    }
}

#[test]
fn a_change_fails_at_every_step_and_leaves_the_host_as_before() {
    every_step_rolls_back(|| Machine::with(&state_a()), &["apply"], &state_b());
}

/// remove disables the unit last: a failure before (rules, files) leaves it enabled.
#[test]
fn remove_fails_at_every_step_and_leaves_the_host_as_before() {
    every_step_rolls_back(|| Machine::with(&state_a()), &["remove"], "");
    let m = Machine::with(&state_a());
    let (code, out) = m.run(&["remove"], "");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ipv4 rules, ipv6 rules, /etc/pfstate/host.yaml, /etc/sysctl.d/90-pfstate.conf, /etc/systemd/system/pfstate.service, /etc/systemd/system/pfstate-watch.service, unit pfstate.service disabled, unit pfstate-watch.service disabled"),
        "{out}"
    );
    assert!(m.state().enabled.is_empty());
}

/// A read-only or full /etc/pfstate: every write there fails, the rollback's too; the rules and
/// sysctls already changed are put back all the same.
#[test]
fn a_file_system_that_refuses_writes_leaves_rules_and_sysctls_as_before() {
    for part in [
        "write /etc/pfstate",
        "write /etc/systemd",
        "write /etc/sysctl.d",
    ] {
        let m = Machine::with(&state_a());
        let yaml = state_b().replace("local: true ", "local: false");
        let before = m.state();
        m.host.faults.fail_matching(part);
        let (code, out) = m.run(&["apply"], &yaml);
        assert_eq!(code, 1, "{part}: {out}");
        assert_eq!(m.state(), before, "{part}: {out}");
    }
}

/// The unit file fails, and putting the IPv4 rules back fails too: everything else is put
/// back, the message names exactly the IPv4 rules, the journal stays, and the next run (once
/// the fault is gone) converges.
#[test]
fn a_failed_rollback_step_does_not_stop_the_others() {
    let m = Machine::with(&state_a());
    let before = m.state();
    let from = m.steps();
    m.host.faults.fail_matching_from("write /etc/systemd", from);
    // Step `from` is the journal, `from + 1` the IPv4 restore: only the rollback's fails.
    m.host.faults.fail_matching_from("restore ipv4", from + 2);
    let (code, out) = m.run(&["apply"], &state_b());
    assert_eq!(code, 1, "{out}");
    let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("  - ")).collect();
    assert_eq!(failed.len(), 1, "{out}");
    assert!(failed[0].starts_with("  - ipv4 rules: "), "{out}");
    assert!(out.contains("everything else was put back"), "{out}");
    let after = m.state();
    assert_ne!(
        after.dumps[0], before.dumps[0],
        "IPv4 could not be put back"
    );
    assert_eq!(after.dumps[1], before.dumps[1]);
    assert_eq!(after.sysctls, before.sysctls);
    assert_eq!(after.enabled, before.enabled);
    let mut files = after.files.clone();
    assert!(files.remove(JOURNAL_PATH).is_some(), "the journal stays");
    assert_eq!(files, before.files);

    m.host.faults.clear();
    let (code, out) = m.run(&["apply"], &state_b());
    assert_eq!(code, 0, "{out}");
    assert_eq!(m.state(), Machine::with(&state_b()).state());
}

/// A run killed at any step (nothing after it runs: every later step fails) leaves the
/// journal; the next apply finds it, puts the host back, and converges to exactly the state a
/// clean apply gives; the next remove removes everything.
#[test]
fn a_run_killed_at_any_step_is_finished_by_the_next() {
    let clean = Machine::with(&state_b()).state();
    let probe = Machine::with(&state_a());
    let first = probe.steps();
    assert_eq!(probe.run(&["apply"], &state_b()).0, 0);
    let total = probe.steps() - first;
    for k in 0..total {
        let m = Machine::with(&state_a());
        m.host.faults.fail_matching_from("", m.steps() + k);
        assert_eq!(m.run(&["apply"], &state_b()).0, 1);
        m.host.faults.clear();
        let (code, out) = m.run(&["apply"], &state_b());
        assert_eq!(code, 0, "killed at step {k}: {out}");
        assert_eq!(m.state(), clean, "killed at step {k}: {out}");

        let m = Machine::with(&state_a());
        m.host.faults.fail_matching_from("", m.steps() + k);
        assert_eq!(m.run(&["apply"], &state_b()).0, 1);
        m.host.faults.clear();
        let (code, out) = m.run(&["remove"], "");
        assert_eq!(code, 0, "killed at step {k}: {out}");
        let s = m.state();
        assert!(s.files.is_empty() && s.enabled.is_empty(), "{s:?}");
        for f in Family::ALL {
            assert!(
                !s.dumps[f as usize].contains("PFSTATE"),
                "{}",
                s.dumps[f as usize]
            );
        }
    }
}

/// A family that cannot be read may hold pfstate's chains: remove fails and changes nothing.
#[test]
fn remove_fails_when_a_family_cannot_be_read() {
    let m = Machine::with(&state_a());
    let before = m.state();
    m.host.netfilter.fail_saves(Family::V6);
    let (code, out) = m.run(&["remove"], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot read the ipv6 rules"), "{out}");
    assert_eq!(m.state(), before);
}

/// The boot unit runs before dbus.service: finishing an interrupted first apply at boot puts
/// the rules and files back but never asks systemd (a call would wait for the bus).
#[test]
fn the_boot_run_finishes_a_transaction_without_asking_systemd() {
    let probe = Machine::new();
    assert_eq!(probe.run(&["apply"], &state_a()).0, 0);
    let steps = probe.host.faults.steps();
    let enable = steps
        .iter()
        .position(|s| s.starts_with("enable "))
        .expect("enable step");
    let m = Machine::new();
    let before = m.state();
    m.host.faults.fail_matching_from("", enable + 1);
    assert_eq!(m.run(&["apply"], &state_a()).0, 1);
    m.host.faults.clear();
    let from = m.steps();
    let (code, out) = m.run(&["apply", "--boot"], &state_a());
    assert_eq!(code, 0, "{out}");
    let later = &m.host.faults.steps()[from..];
    assert!(
        !later
            .iter()
            .any(|s| s.contains("enable") || s.contains("daemon-reload")),
        "{later:?}"
    );
    // The managed files are as before; the boot run records the sysctls it changes (what it
    // found, to put back later) like any apply.
    let mut files = m.state().files;
    let record = files
        .remove("/var/lib/pfstate/sysctl-before")
        .unwrap_or_default();
    assert!(record.contains("net/ipv4/ip_forward = 0\n"), "{record}");
    assert_eq!(files, before.files, "{later:?}");
    assert!(
        m.state().dumps[0].contains("PFSTATE"),
        "the boot run applied the state"
    );
}

/// The rules of a clean apply of `yaml`, as `iptables-save` of both families.
fn applied_dumps(yaml: &str) -> [String; 2] {
    Machine::with(yaml).state().dumps
}

/// A copy of pfstate's chains in the other backend (the host's rules moved): apply writes the
/// backend in use and removes that copy in one transaction; a failure at any step, the copy's
/// removal included, leaves both backends, sysctls and files as before.
#[test]
fn the_copy_in_the_other_backend_goes_in_the_same_transaction() {
    let copy = applied_dumps(&state_a());
    let setup = || {
        // The host's rules (Docker's, both families) now live in the backend in use.
        let m = Machine::new();
        m.host.netfilter.load(Family::V4, &fixture("docker.rules"));
        m.host
            .netfilter
            .load(Family::V6, &fixture("ipv6-foreign.rules"));
        let other = other_backend(&m.host);
        for f in Family::ALL {
            other.load(f, &copy[f as usize]);
        }
        (m, other)
    };
    let both_states = |m: &Machine, other: &FakeNetfilter| {
        (m.state(), Family::ALL.map(|f| other.dump(f, "", false)))
    };
    let run = |m: &Machine, other: &FakeNetfilter| {
        let both = WithOther {
            main: &m.host.netfilter,
            other,
        };
        let host = Host {
            netfilter: &both,
            ..m.host.host()
        };
        m.run_on(&host, &["apply"], &state_a())
    };
    let (probe, other) = setup();
    let first = probe.steps();
    let (code, out) = run(&probe, &other);
    assert_eq!(code, 0, "{out}");
    let (after, other_after) = both_states(&probe, &other);
    assert!(out.contains("applied: 2 rule set(s)"), "{out}");
    for d in &after.dumps {
        assert!(
            d.contains("-A PFSTATE-CANARY") || d.contains(":PFSTATE-CANARY"),
            "{d}"
        );
    }
    for d in &other_after {
        assert!(!d.contains("PFSTATE"), "{d}");
    }
    let steps = probe.host.faults.steps()[first..].to_vec();
    assert!(
        steps.iter().filter(|s| s.starts_with("restore")).count() >= 4,
        "{steps:?}"
    );
    for (i, step) in steps.iter().enumerate() {
        let (m, other) = setup();
        let before = both_states(&m, &other);
        m.host.faults.fail_at(m.steps() + i);
        let (code, out) = run(&m, &other);
        assert_eq!(code, 1, "step {i} ({step}): {out}");
        assert_eq!(both_states(&m, &other), before, "step {i} ({step}): {out}");
    }
}
