//! Confirm-or-revert and several files making one state, against the real kernel in throwaway
//! namespaces with `--root` (the revert is then armed as a detached process; the systemd timer
//! is proven in the sandbox fleet test, tests/ansible_fleet.rs).

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::common::{Host, write_yaml};
use pfstate::lab;
use serde_json::Value;

const A: &str = "version: 1
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}
filter:
  - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}
";

const B: &str = "version: 1
forwards:
  - {name: api, listen: {port: 8443}, to: 10.77.0.12:443}
filter:
  - {name: oops, chain: input, proto: tcp, action: drop}
";

/// What Docker adds when a container starts: its own chain, jump and DNAT.
const DOCKER_LATER: &str = "*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
";

fn owned(save: &str) -> String {
    save.lines()
        .filter(|l| l.contains("PFSTATE"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn json(h: &Host, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let run = h.run(&all);
    let v = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|_| panic!("{}", run.show()));
    (run.code, v)
}

/// Poll `status` until no confirmation is pending (bounded).
fn wait_until_settled(h: &Host, limit: Duration) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let (_, v) = json(h, &["status"]);
        if v["confirm"].is_null() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("still pending after {limit:?}");
}

/// A host with state A applied; the files of A and B; A's owned rules.
struct Applied {
    h: Host,
    _dir: tempfile::TempDir,
    a: String,
    b: String,
    rules_a: String,
}

fn applied_a(role: &str) -> Applied {
    let h = Host::new(role);
    let dir = tempfile::tempdir().unwrap();
    let a = write_yaml(dir.path(), "a.yaml", A);
    let b = write_yaml(dir.path(), "b.yaml", B);
    assert_eq!(h.run(&["apply", &a]).code, 0);
    let rules_a = owned(&h.save("iptables-save"));
    Applied {
        h,
        _dir: dir,
        a,
        b,
        rules_a,
    }
}

#[test]
fn unconfirmed_apply_puts_back_only_pfstates_own_objects() {
    if lab::skip_unless_root("unconfirmed_apply_puts_back_only_pfstates_own_objects") {
        return;
    }
    // `_dir` bound by name: the files must live as long as the test.
    let Applied {
        h,
        _dir,
        a,
        b,
        rules_a,
    } = applied_a("confirm");
    let forwarding_a = h.sysctl("net.ipv4.ip_forward");

    let (code, v) = json(&h, &["apply", "--confirm", "2s", &b]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["confirm"]["seconds"], 2, "{v}");
    assert_eq!(v["confirm"]["revert"], "process", "{v}");
    assert!(owned(&h.save("iptables-save")).contains("pfstate:api"));

    let second = h.run(&["apply", &a]);
    assert_eq!(second.code, 1, "{}", second.show());
    assert!(
        second
            .stderr
            .contains("is waiting for `pfstate confirm` until"),
        "{}",
        second.show()
    );
    let (_, status) = json(&h, &["status"]);
    assert!(
        status["confirm"]["remaining_seconds"].as_u64().unwrap() <= 2,
        "{status}"
    );

    // Docker starts a container meanwhile: not pfstate's, so the revert leaves it.
    h.load("iptables-restore", DOCKER_LATER);
    let took = wait_until_settled(&h, Duration::from_secs(15));
    eprintln!(
        "reverted {:.1} s after the apply returned",
        took.as_secs_f64()
    );
    let after = h.save("iptables-save");
    assert_eq!(owned(&after), rules_a, "pfstate's rules are back");
    assert!(
        after.contains("--to-destination 172.17.0.2:80"),
        "Docker's rule survived\n{after}"
    );
    assert!(
        after.contains("-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"),
        "{after}"
    );
    assert_eq!(
        std::fs::read_to_string(h.file("/etc/pfstate/host.yaml")).unwrap(),
        A
    );
    assert_eq!(h.sysctl("net.ipv4.ip_forward"), forwarding_a);

    let late = h.run(&["confirm"]);
    assert_eq!(late.code, 1, "{}", late.show());
    assert!(
        late.stderr.contains("was not confirmed by its deadline"),
        "{}",
        late.show()
    );
    assert_eq!(h.run(&["apply", &a]).code, 0, "applies again once settled");
}

/// What a dying SSH session does to the processes it started: SIGHUP, then SIGKILL to their
/// process group. The revert process left that group (its own session): it still runs.
#[test]
fn the_revert_outlives_the_session_that_applied() {
    if lab::skip_unless_root("the_revert_outlives_the_session_that_applied") {
        return;
    }
    let Applied {
        h,
        _dir,
        b,
        rules_a,
        ..
    } = applied_a("session");
    let mut session = std::process::Command::new("ip");
    session
        .args(["netns", "exec", h.ns.name(), crate::common::BIN, "--root"])
        .arg(h.root.path())
        .args(["apply", "--confirm", "2s", &b])
        .process_group(0);
    let child = session.spawn().expect("apply");
    let group = child.id().to_string();
    let out = child.wait_with_output().expect("apply ran");
    assert!(out.status.success(), "{out:?}");
    for signal in ["-HUP", "-KILL"] {
        // Fails with "no such process" when the group is empty, as it should be.
        let _ = std::process::Command::new("kill")
            .args([signal, "--", &format!("-{group}")])
            .output();
    }
    assert!(owned(&h.save("iptables-save")).contains("pfstate:api"));
    wait_until_settled(&h, Duration::from_secs(15));
    assert_eq!(owned(&h.save("iptables-save")), rules_a);
}

#[test]
fn confirmed_apply_stays_and_a_reboot_reverts_an_unconfirmed_one() {
    if lab::skip_unless_root("confirmed_apply_stays_and_a_reboot_reverts_an_unconfirmed_one") {
        return;
    }
    // `_dir` bound by name: the files must live as long as the test.
    let Applied {
        h,
        _dir,
        a,
        b,
        rules_a,
    } = applied_a("confirm2");
    assert_eq!(h.run(&["apply", "--confirm", "2s", &b]).code, 0);
    let (code, v) = json(&h, &["confirm"]);
    assert_eq!((code, v["changed"].as_bool()), (0, Some(true)), "{v}");
    assert!(v["confirmed"]["deadline"].is_string(), "{v}");
    let rules_b = owned(&h.save("iptables-save"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        owned(&h.save("iptables-save")),
        rules_b,
        "kept after the deadline"
    );
    let again = h.run(&["confirm"]);
    assert!(
        again.stderr.contains("was confirmed at"),
        "{}",
        again.show()
    );

    // Applied with a deadline, then the machine reboots before anyone confirms: the boot
    // apply finds the record and puts the confirmed state back first.
    assert_eq!(h.run(&["apply", "--confirm", "60s", &a]).code, 0);
    let state = h.file("/etc/pfstate/host.yaml").display().to_string();
    let boot = h.run(&["apply", "--boot", &state]);
    assert_eq!(boot.code, 0, "{}", boot.show());
    assert_eq!(owned(&h.save("iptables-save")), rules_b);
    assert_eq!(std::fs::read_to_string(&state).unwrap(), B);
    let (_, status) = json(&h, &["status"]);
    assert!(status["confirm"].is_null(), "{status}");
    assert_ne!(rules_a, rules_b);
}

#[test]
fn several_files_and_a_directory_make_one_state() {
    if lab::skip_unless_root("several_files_and_a_directory_make_one_state") {
        return;
    }
    let h = Host::new("multi");
    let dir = tempfile::tempdir().unwrap();
    let role = write_yaml(
        dir.path(),
        "10-role.yaml",
        "version: 1\ninterfaces: {lan: lan0}\nfilter:\n  - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}\n",
    );
    let own = write_yaml(
        dir.path(),
        "20-host.yaml",
        "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, via: lan}\n",
    );
    let run = h.run(&["apply", &role, &own]);
    assert_eq!(run.code, 0, "{}", run.show());
    let rules = owned(&h.save("iptables-save"));
    assert!(
        rules.contains("pfstate:web") && rules.contains("pfstate:ssh"),
        "{rules}"
    );
    let persisted = std::fs::read_to_string(h.file("/etc/pfstate/host.yaml")).unwrap();
    assert!(persisted.contains("applied from"), "{persisted}");
    // The directory is the same two files in name order: nothing to do.
    let restores = h.restores();
    let again = h.run(&["apply", &dir.path().display().to_string()]);
    assert_eq!(again.code, 0, "{}", again.show());
    assert_eq!(h.restores(), restores, "{}", again.show());
    // The joined copy is what the boot unit applies: in sync with the kernel.
    let state = h.file("/etc/pfstate/host.yaml").display().to_string();
    assert_eq!(h.run(&["apply", "--boot", &state]).code, 0);
    assert_eq!(h.restores(), restores);

    let dup = write_yaml(
        dir.path(),
        "30-dup.yaml",
        "version: 1\nforwards:\n  - {name: web, listen: {port: 81}, to: 10.77.0.12}\n",
    );
    let clash = h.run(&["plan", &role, &own, &dup]);
    assert_eq!(clash.code, 1, "{}", clash.show());
    assert!(
        clash.stderr.contains(&format!(
            "{dup}:3:12: name `web` is already used at {own}:3"
        )),
        "{}",
        clash.show()
    );
}

#[test]
fn plan_warns_when_a_filter_entry_would_cut_this_ssh_session() {
    if lab::skip_unless_root("plan_warns_when_a_filter_entry_would_cut_this_ssh_session") {
        return;
    }
    let h = Host::new("sshwarn");
    let dir = tempfile::tempdir().unwrap();
    let b = write_yaml(dir.path(), "b.yaml", B);
    let run = h.run_env(
        &["--format", "json", "plan", &b],
        &[("SSH_CONNECTION", "192.0.2.7 50022 192.0.2.1 22")],
    );
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let warnings = v["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| {
            let w = w.as_str().unwrap();
            w.contains("filter entry `oops` would drop the SSH connection this command runs in (192.0.2.7 port 50022")
                && w.contains("new connections to port 22")
        }),
        "{v}"
    );
}
