//! The behaviour of `plan`, `apply` and `remove`, written once as scenarios against a
//! [`World`], run against the in-memory fake host (any user, no kernel) and, as root, against
//! a real network namespace: there the final `iptables-save` dumps, sysctls and files must
//! equal the fake's, so the kernel judges the fake.

use std::collections::BTreeMap;

use clap::Parser;
use pfstate::cli::Cli;
use pfstate::cmd::{self, Ctx, output};
use pfstate::host::fake::FakeHost;
use pfstate::lab::{Netns, NetnsOptions};
use pfstate::model::Family;
use pfstate::render::files::sysctl_d::SYSCTL_CONF_PATH;
use pfstate::render::files::unit::{STATE_PATH, UNIT_NAME, UNIT_PATH};

mod worlds;
use worlds::*;

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const MANAGED: [&str; 3] = [STATE_PATH, SYSCTL_CONF_PATH, UNIT_PATH];
/// The interfaces of both worlds (a veth pair in the namespace).
const IFACES: [&str; 2] = ["eth0", "eth1"];

fn sysctl_keys() -> Vec<String> {
    let mut keys = vec!["net/ipv4/ip_forward".to_string()];
    for i in ["all", "default", "lo"].iter().chain(IFACES.iter()) {
        for k in ["forwarding", "route_localnet", "rp_filter"] {
            keys.push(format!("net/ipv4/conf/{i}/{k}"));
        }
        keys.push(format!("net/ipv6/conf/{i}/forwarding"));
    }
    keys
}

use crate::common::{example, fixture};

/// What a scenario can see and do; one implementation per world.
trait World {
    /// Run `pfstate ARGS` (with `--root` of this world); the exit code and output.
    fn pfstate(&self, args: &[&str]) -> (u8, String);
    /// Replace whole tables with an `iptables-save` text (another system's rules).
    fn load(&self, family: Family, save: &str);
    /// Feed an `iptables-restore --noflush` payload (someone else's change: drift); whether
    /// it was accepted.
    fn try_restore(&self, family: Family, payload: &str) -> bool;
    fn restore(&self, family: Family, payload: &str) {
        assert!(self.try_restore(family, payload), "refused: {payload}");
    }
    /// `iptables-save` without comments, counters reset.
    fn dump(&self, family: Family) -> String;
    fn sysctl(&self, key: &str) -> Option<String>;
    /// A managed file, with the binary's path spelled `/usr/sbin/pfstate`.
    fn file(&self, target: &str) -> Option<String>;
    /// A file for `pfstate apply FILE`.
    fn write_input(&self, name: &str, text: &str) -> String;
}

/// Everything the scenarios compare between the worlds.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    dumps: Vec<String>,
    sysctls: BTreeMap<String, Option<String>>,
    files: BTreeMap<&'static str, Option<String>>,
}

fn snapshot(w: &dyn World) -> Snapshot {
    Snapshot {
        dumps: Family::ALL.iter().map(|f| w.dump(*f)).collect(),
        sysctls: sysctl_keys()
            .into_iter()
            .map(|k| (w.sysctl(&k), k))
            .map(|(v, k)| (k, v))
            .collect(),
        files: MANAGED.iter().map(|t| (*t, w.file(t))).collect(),
    }
}

fn normalize(save: &str) -> String {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .map(
            |l| match l.strip_prefix(':').and_then(|c| c.rsplit_once(' ')) {
                Some((head, _counters)) => format!(":{head} [0:0]\n"),
                None => format!("{l}\n"),
            },
        )
        .collect()
}

/// Lines of a dump that are not pfstate's (no owned chain, no pfstate comment).
fn foreign(dump: &str) -> String {
    dump.lines()
        .filter(|l| !l.contains("PFSTATE") && !l.contains("pfstate"))
        .map(|l| format!("{l}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The scenarios. Each asserts the behaviour in its world and returns the final state.

/// Apply twice: the second run changes nothing and writes nothing; plan then reports nothing.
fn idempotence(w: &dyn World) -> Snapshot {
    let file = w.write_input("state.yaml", &example("edge-gateway.yaml"));
    let (code, out) = w.pfstate(&["apply", &file]);
    assert_eq!(code, 0, "{out}");
    let first = snapshot(w);
    let (code, out) = w.pfstate(&["apply", &file]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("in sync"), "{out}");
    assert_eq!(snapshot(w), first);
    let (code, out) = w.pfstate(&["plan", &file]);
    assert_eq!(code, 0, "plan after apply must be empty: {out}");
    first
}

/// Someone deletes pfstate's jump and flushes an owned chain: plan sees it, apply repairs it.
fn drift_repair(w: &dyn World) -> Snapshot {
    let file = w.write_input("state.yaml", &example("edge-gateway.yaml"));
    assert_eq!(w.pfstate(&["apply", &file]).0, 0);
    let converged = snapshot(w);
    let jump = "-A PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING";
    assert!(converged.dumps[0].contains(jump), "{}", converged.dumps[0]);
    let drift = format!(
        "*nat\n-D{}\n:PFSTATE-POSTROUTING - [0:0]\nCOMMIT\n",
        &jump[2..]
    );
    w.restore(Family::V4, &drift);
    assert_ne!(snapshot(w), converged);
    let (code, out) = w.pfstate(&["plan", &file]);
    assert_eq!(code, 2, "plan must report the drift: {out}");
    assert_eq!(w.pfstate(&["apply", &file]).0, 0);
    assert_eq!(snapshot(w), converged);
    converged
}

/// Docker's rules are there first: apply leaves every foreign line as it was; remove takes
/// away exactly what pfstate added.
fn foreign_rules_untouched(w: &dyn World) -> Snapshot {
    w.load(Family::V4, &fixture("docker.rules"));
    let before = snapshot(w);
    let file = w.write_input("state.yaml", &example("edge-gateway.yaml"));
    let (code, out) = w.pfstate(&["apply", &file]);
    assert_eq!(code, 0, "{out}");
    let applied = snapshot(w);
    assert_eq!(foreign(&applied.dumps[0]), foreign(&before.dumps[0]));
    let (code, out) = w.pfstate(&["remove"]);
    assert_eq!(code, 0, "{out}");
    let removed = snapshot(w);
    assert_eq!(removed.dumps, before.dumps);
    assert!(removed.files.values().all(Option::is_none), "{removed:?}");
    applied
}

/// `iptables-restore --noflush` at its edges, one payload after the other: whether each is
/// accepted, and the rules after it. Each COMMIT stands alone; a refused table is unchanged.
fn restore_semantics(w: &dyn World) -> Snapshot {
    let payloads: [(&str, bool); 10] = [
        (
            "*nat\n:A - [0:0]\n:B - [0:0]\n-A A -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:80\n-A PREROUTING -j A\nCOMMIT\n*filter\n:F - [0:0]\n-A FORWARD -j F\n-A F -j ACCEPT\nCOMMIT\n",
            true,
        ),
        // A declared chain is flushed; a built-in chain's policy is set.
        (
            "*filter\n:F - [0:0]\n:INPUT DROP [0:0]\n-A F -j DROP\nCOMMIT\n",
            true,
        ),
        // Deleting a rule that is not there fails the table; the one committed before stays.
        (
            "*filter\n-A F -j RETURN\nCOMMIT\n*nat\n-D PREROUTING -j B\nCOMMIT\n",
            false,
        ),
        (
            "*nat\n:B - [0:0]\n-A B -j RETURN\n-D PREROUTING -j NOPE\nCOMMIT\n",
            false,
        ),
        ("*filter\n-X F\nCOMMIT\n", false),
        ("*nat\n-X B\nCOMMIT\n", true),
        ("*filter\n-I FORWARD 5 -j ACCEPT\nCOMMIT\n", false),
        (
            "*filter\n-I FORWARD 2 -j ACCEPT\n-I FORWARD -j DROP\nCOMMIT\n",
            true,
        ),
        ("*filter\n-A FORWARD -j ACCEPT\n", false),
        ("*filter\n:F - [0:0]\n-D FORWARD -j F\n-X F\nCOMMIT\n", true),
    ];
    for (i, (payload, ok)) in payloads.iter().enumerate() {
        assert_eq!(
            w.try_restore(Family::V4, payload),
            *ok,
            "payload {i}:\n{payload}"
        );
    }
    snapshot(w)
}

#[test]
fn the_fake_restores_like_iptables_restore_noflush() {
    let w = FakeWorld::new();
    let after = restore_semantics(&w);
    let want = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -j DROP\n-A FORWARD -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:A - [0:0]\n-A PREROUTING -j A\n-A A -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n";
    assert_eq!(after.dumps[0], want);
}

/// Each scenario on the fake, as any user.
#[test]
fn apply_twice_writes_nothing_the_second_time() {
    let w = FakeWorld::new();
    idempotence(&w);
    let steps = w.host.faults.steps().len();
    w.pfstate(&[
        "apply",
        &w.dir.path().join("state.yaml").display().to_string(),
    ]);
    assert_eq!(
        w.host.faults.steps().len(),
        steps,
        "{:?}",
        w.host.faults.steps()
    );
    assert!(w.host.services.enabled().contains(UNIT_NAME));
}

#[test]
fn drift_is_planned_and_repaired() {
    drift_repair(&FakeWorld::new());
}

#[test]
fn foreign_rules_stay_and_remove_restores_them() {
    foreign_rules_untouched(&FakeWorld::new());
}

/// Make each write step of a first apply fail in turn (each restore COMMIT, each sysctl, each
/// file, the unit): apply reports a rollback and the host is exactly as before.
#[test]
fn rollback_at_every_step_leaves_the_host_as_before() {
    let fresh = || {
        let w = FakeWorld::new();
        w.load(Family::V4, &fixture("docker.rules"));
        w
    };
    let probe = fresh();
    let file = probe.write_input("state.yaml", &example("edge-gateway.yaml"));
    assert_eq!(probe.pfstate(&["apply", &file]).0, 0);
    let steps = probe.host.faults.steps();
    assert!(steps.len() >= 6, "{steps:?}");
    for (i, step) in steps.iter().enumerate() {
        let w = fresh();
        let before = w.host.state();
        w.host.faults.fail_at(i);
        let file = w.write_input("state.yaml", &example("edge-gateway.yaml"));
        let (code, out) = w.pfstate(&["apply", &file]);
        assert_eq!(code, 1, "step {i} ({step}): {out}");
        assert!(
            out.contains("the previous state was restored"),
            "step {i} ({step}): {out}"
        );
        assert_eq!(
            w.host.state(),
            before,
            "step {i} ({step}) left changes: {out}"
        );
    }
}

// The same scenarios in a real network namespace: the kernel's final state must be the fake's.
root_test!(the_kernel_agrees_with_the_fake, || {
    type Scenario = fn(&dyn World) -> Snapshot;
    let scenarios: [(&str, Scenario); 4] = [
        ("restore_semantics", restore_semantics),
        ("idempotence", idempotence),
        ("drift_repair", drift_repair),
        ("foreign_rules_untouched", foreign_rules_untouched),
    ];
    for (name, scenario) in scenarios {
        let fake = scenario(&FakeWorld::new());
        let kernel = scenario(&KernelWorld::new());
        assert_eq!(
            fake, kernel,
            "scenario {name}: the fake differs from the kernel"
        );
    }
});

/// With the Debian package's unit installed, apply writes no unit copy and enables the
/// package's; a host that applied before the package moves over (copy removed, links re-made),
/// and a failure at any step of that move leaves the host as before, links included.
#[test]
fn the_package_unit_replaces_the_own_copy_and_rollback_restores_it() {
    use pfstate::host::Files;
    use pfstate::plan::packaged_unit::VENDOR_UNIT_PATH;
    let vendor = "[Unit]\nDescription=packaged\n[Install]\nWantedBy=multi-user.target\n";
    let packaged = FakeWorld::new();
    packaged.host.files.write(VENDOR_UNIT_PATH, vendor).unwrap();
    let file = packaged.write_input("state.yaml", &example("edge-gateway.yaml"));
    assert_eq!(packaged.pfstate(&["apply", &file]).0, 0);
    assert_eq!(packaged.file(UNIT_PATH), None);
    assert!(packaged.host.services.enabled().contains(UNIT_NAME));
    assert_eq!(packaged.pfstate(&["plan", &file]).0, 0);

    // Applied before the package existed, then the package was installed.
    let before_package = || {
        let w = FakeWorld::new();
        let file = w.write_input("state.yaml", &example("edge-gateway.yaml"));
        assert_eq!(w.pfstate(&["apply", &file]).0, 0);
        assert!(w.file(UNIT_PATH).is_some());
        w.host.files.write(VENDOR_UNIT_PATH, vendor).unwrap();
        (w, file)
    };
    let (w, file) = before_package();
    let (code, plan) = w.pfstate(&["plan", &file]);
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains(UNIT_PATH), "{plan}");
    let from = w.host.faults.steps().len();
    assert_eq!(w.pfstate(&["apply", &file]).0, 0);
    assert_eq!(w.file(UNIT_PATH), None);
    assert!(w.host.services.enabled().contains(UNIT_NAME));
    let steps = w.host.faults.steps()[from..].to_vec();
    let disable = format!("disable {UNIT_NAME}");
    let enable = format!("enable {UNIT_NAME}");
    let at = |s: &str| steps.iter().position(|x| x == s);
    assert!(
        at(&disable) < at(&enable) && at(&disable).is_some(),
        "{steps:?}"
    );
    assert_eq!(w.pfstate(&["plan", &file]).0, 0);

    for (i, step) in steps.iter().enumerate() {
        let (w, file) = before_package();
        let before = w.host.state();
        w.host.faults.fail_at(w.host.faults.steps().len() + i);
        let (code, out) = w.pfstate(&["apply", &file]);
        assert_eq!(code, 1, "step {i} ({step}): {out}");
        assert_eq!(
            w.host.state(),
            before,
            "step {i} ({step}) left changes: {out}"
        );
    }
}
