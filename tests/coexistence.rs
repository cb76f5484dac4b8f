//! Coexistence with Docker, libvirt, MicroK8s (kube-proxy + Calico), ufw and all of them at once.
//!
//! Each test loads a realistic `iptables-save` dump (tests/fixtures, see its README) into a
//! throwaway network namespace, runs the real binary there with `--root` on a temp dir, and
//! asserts after every step that every rule, chain and policy not owned by pfstate is exactly
//! where it was (order included, every table, both families). Foreign managers' reactions to
//! events are replayed with tests/fixtures/simulate-event.sh; plan must report drift exactly
//! when pfstate's own state was disturbed, apply must repair it without touching anything
//! foreign, and the foreign manager must have nothing to fight back about afterwards.
//!
//! Needs root and the Debian packages iptables, iproute2, ipset, nfacct (and nftables for the
//! blind-spot test). Without root every test prints why and passes without running.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

// ---------------------------------------------------------------------------------------------
// Namespaces

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A network namespace `pfc-<pid>-<n>`, deleted on drop (also when the test panics).
struct Ns {
    name: String,
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn must(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

impl Ns {
    fn new() -> Ns {
        let name = format!(
            "pfc-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        must(Command::new("ip").args(["netns", "add", &name]));
        let ns = Ns { name };
        // A LAN interface for `via:` and route_localnet, and loopback up.
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&[
            "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
        ]);
        ns.ip(&["link", "set", "lan0p", "up"]);
        ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "lan0"]);
        ns.ip(&["-6", "addr", "add", "fd00:99::1/64", "dev", "lan0", "nodad"]);
        ns.ip(&["link", "set", "lan0", "up"]);
        ns
    }

    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    fn ip(&self, args: &[&str]) -> String {
        must(self.exec(&["ip"]).args(args))
    }

    fn sh(&self, args: &[&str]) -> String {
        must(&mut self.exec(args))
    }

    /// `iptables-save` (or `ip6tables-save`) of this namespace.
    fn save(&self, v6: bool) -> String {
        self.sh(&[if v6 {
            "ip6tables-save"
        } else {
            "iptables-save"
        }])
    }

    fn saves(&self) -> [String; 2] {
        [self.save(false), self.save(true)]
    }

    /// ipset + nfacct + iptables-restore, through the fixture's own loader.
    fn load(&self, fixture: &str) {
        must(
            Command::new(format!("{FIXTURES}/load-fixture.sh"))
                .args([&self.name, &format!("{FIXTURES}/{fixture}")]),
        );
        let six = run(self
            .exec(&["ip6tables-restore"])
            .stdin(std::fs::File::open(format!("{FIXTURES}/ipv6-foreign.rules")).unwrap()));
        assert!(six.status.success(), "{}", text(&six.stderr));
    }

    fn event(&self, event: &str, arg: Option<&Path>) {
        let mut c = Command::new(format!("{FIXTURES}/simulate-event.sh"));
        c.args([&self.name, event]);
        if let Some(a) = arg {
            c.arg(a);
        }
        must(&mut c);
    }

    fn ipt(&self, args: &[&str]) {
        self.sh(&[&["iptables", "-w"][..], args].concat());
    }

    fn sysctl(&self, key: &str) -> String {
        self.sh(&["sysctl", "-n", key]).trim().to_string()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("SKIPPED: coexistence tests need root to create network namespaces");
    true
}

// ---------------------------------------------------------------------------------------------
// pfstate

struct Pf<'a> {
    ns: &'a Ns,
    root: PathBuf,
}

struct Res {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Res {
    fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Pf<'_> {
    fn run(&self, args: &[&str]) -> Res {
        let root = self.root.display().to_string();
        let out = run(self
            .ns
            .exec(&[BIN, "--color", "never", "--root", &root])
            .args(args));
        Res {
            code: out.status.code().unwrap_or(-1),
            stdout: text(&out.stdout),
            stderr: text(&out.stderr),
        }
    }
    fn ok(&self, args: &[&str]) -> Res {
        let r = self.run(args);
        assert_eq!(r.code, 0, "pfstate {args:?}\n{}", r.show());
        r
    }
    fn plan(&self, file: &Path) -> Res {
        self.run(&["plan", file.to_str().unwrap()])
    }
    fn apply(&self, file: &Path) -> Res {
        self.ok(&["apply", file.to_str().unwrap()])
    }
    fn assert_in_sync(&self, file: &Path, why: &str) {
        let p = self.plan(file);
        assert_eq!(p.code, 0, "{why}: plan should be clean\n{}", p.show());
    }
    fn assert_drift(&self, file: &Path, why: &str) -> Res {
        let p = self.plan(file);
        assert_eq!(p.code, 2, "{why}: plan should report drift\n{}", p.show());
        let s = self.run(&["status"]);
        assert!(
            s.stdout.lines().any(|l| l.starts_with("drift:")),
            "{why}: status should say drift\n{}",
            s.show()
        );
        p
    }
}

// ---------------------------------------------------------------------------------------------
// check-untouched, ported: the foreign part of a save, canonical.

const BUILTINS: &[(&str, &[&str])] = &[
    ("raw", &["PREROUTING", "OUTPUT"]),
    (
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("security", &["INPUT", "FORWARD", "OUTPUT"]),
];

/// Everything not in a chain `P-*` of one of `prefixes` and not a jump/goto to one: built-in
/// policies (absent = ACCEPT), user chain declarations, the rules of each chain in order.
/// Counters, comments and table/chain print order are ignored (as check-untouched.sh does).
fn foreign(save: &str, prefixes: &[&str]) -> String {
    let owned = |c: &str| prefixes.iter().any(|p| c.starts_with(&format!("{p}-")));
    let saved = pfstate::ruleset::dump::parse(save);
    let mut out = String::new();
    for (table, builtins) in BUILTINS {
        out.push_str(&format!("*{table}\n"));
        let t = saved.table(table).cloned().unwrap_or_default();
        for b in *builtins {
            let pol = t.chain(b).map_or("ACCEPT", |c| c.policy.as_str());
            out.push_str(&format!(":{b} {pol}\n"));
        }
        let mut users: Vec<&String> = t
            .chains
            .keys()
            .filter(|c| !builtins.contains(&c.as_str()) && !owned(c))
            .collect();
        users.sort();
        for u in &users {
            out.push_str(&format!(":{u} -\n"));
        }
        for (name, chain) in &t.chains {
            if owned(name) {
                continue;
            }
            for r in &chain.rules {
                if pfstate::ruleset::dump::target(r).is_some_and(owned) {
                    continue;
                }
                out.push_str(r);
                out.push('\n');
            }
        }
    }
    out
}

/// pfstate's own part of a save (prefix PFSTATE): its chains with their rules and its jumps
/// with the chain they hang from. Positions relative to foreign rules are not part of it.
fn own(save: &str) -> String {
    let saved = pfstate::ruleset::dump::parse(save);
    let mut out = String::new();
    for (table, t) in &saved.tables {
        for (name, chain) in &t.chains {
            if name.starts_with("PFSTATE-") {
                out.push_str(&format!("{table} :{name}\n"));
            }
            for r in &chain.rules {
                if name.starts_with("PFSTATE-")
                    || pfstate::ruleset::dump::target(r).is_some_and(|t| t.starts_with("PFSTATE-"))
                {
                    out.push_str(&format!("{table} {r}\n"));
                }
            }
        }
    }
    out
}

/// The save without counters and `#` lines: what "changes nothing" is compared on.
fn plain(save: &str) -> String {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) => &l[..i],
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn assert_untouched(ns: &Ns, before: &[String; 2], prefixes: &[&str], step: &str) {
    let now = ns.saves();
    for (i, fam) in ["IPv4", "IPv6"].iter().enumerate() {
        let a = foreign(&before[i], prefixes);
        let b = foreign(&now[i], prefixes);
        if a != b {
            panic!(
                "{step}: foreign {fam} rules changed:\n{}",
                pfstate::plan::view::unified(&a, &b, "before", "now")
            );
        }
    }
}

fn assert_same(a: &[String; 2], b: &[String; 2], step: &str) {
    for i in 0..2 {
        let (x, y) = (plain(&a[i]), plain(&b[i]));
        if x != y {
            panic!(
                "{step}: the ruleset changed:\n{}",
                pfstate::plan::view::unified(&x, &y, "before", "after")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// States

const STATE: &str = "version: 1
prefix: PREFIX
interfaces: {lan: lan0}
forwards:
  - {name: web, listen: {port: 8080}, to: 10.99.0.2:80, via: lan, local: true}
  - {name: game, proto: udp, listen: {port: 27015}, to: 10.99.0.3, via: lan}
  - {name: np, listen: {port: 31080}, to: 10.99.0.4:80, via: lan}
  - {name: v6, listen: {port: 8443}, to: \"[fd00:99::2]:443\", via: lan}
snat:
  - {name: lan-out, source: 10.99.0.0/24, out_interface: eth9}
filter:
  - {name: ssh, chain: input, proto: tcp, dport: 22, source: 10.0.0.0/8, action: accept}
";

fn state(prefix: &str) -> String {
    STATE.replace("PREFIX", prefix)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

// ---------------------------------------------------------------------------------------------
// Structure of the placement

fn chain_rules(save: &str, table: &str, chain: &str) -> Vec<String> {
    pfstate::ruleset::dump::parse(save)
        .table(table)
        .and_then(|t| t.chain(chain))
        .map(|c| c.rules.clone())
        .unwrap_or_default()
}

fn is_cali(r: &str) -> bool {
    r.contains("--comment \"cali:")
}

/// Every jump where docs/coexistence.md says it goes.
fn assert_placement(save: &str, fixture: &str) {
    let jump = |c: &str, to: &str| format!("-A {c} -m comment --comment pfstate -j PFSTATE-{to}");
    let docker = chain_rules(save, "filter", "DOCKER-USER");
    let has_docker = save.contains(":DOCKER-USER");
    // Leading-block hooks: directly after the leading `cali:` block.
    for (table, chain, to) in [
        ("nat", "PREROUTING", "PREROUTING"),
        ("nat", "OUTPUT", "OUTPUT"),
        ("filter", "INPUT", "INPUT"),
    ] {
        let rules = chain_rules(save, table, chain);
        let lead = rules.iter().take_while(|r| is_cali(r)).count();
        assert_eq!(
            rules.get(lead),
            Some(&jump(chain, to)),
            "{fixture}: {table} {chain}: {rules:#?}"
        );
        assert_eq!(rules.iter().filter(|r| r.contains("PFSTATE-")).count(), 1);
    }
    // nat POSTROUTING: before Calico's trailing rule, else last.
    let post = chain_rules(save, "nat", "POSTROUTING");
    let trail = post.iter().rev().take_while(|r| is_cali(r)).count();
    assert_eq!(
        post[post.len() - trail - 1],
        jump("POSTROUTING", "POSTROUTING"),
        "{fixture}: nat POSTROUTING: {post:#?}"
    );
    // filter FORWARD: first rule of DOCKER-USER when Docker is there, so Docker's FORWARD
    // policy DROP (and DOCKER-FORWARD) come after the forwards' accepts.
    let fwd = chain_rules(save, "filter", "FORWARD");
    if has_docker {
        assert_eq!(
            docker.first(),
            Some(&jump("DOCKER-USER", "FORWARD")),
            "{fixture}"
        );
        assert!(
            !fwd.iter().any(|r| r.contains("PFSTATE-")),
            "{fixture}: {fwd:#?}"
        );
        let user = fwd
            .iter()
            .position(|r| r.ends_with("-j DOCKER-USER"))
            .unwrap();
        let dfwd = fwd
            .iter()
            .position(|r| r.ends_with("-j DOCKER-FORWARD"))
            .unwrap();
        assert!(user < dfwd, "{fixture}: DOCKER-USER below DOCKER-FORWARD");
        assert!(
            fwd[..user].iter().all(|r| !r.ends_with("-j DROP")),
            "{fixture}: a DROP above DOCKER-USER"
        );
        if fixture == "docker.rules" {
            // (all-in-one: libvirt enabled forwarding first, so Docker left the policy ACCEPT)
            assert!(save.contains(":FORWARD DROP"), "{fixture}: Docker's policy");
        }
        // The forwards' accepts are in the chain DOCKER-USER jumps to first.
        let accepts = chain_rules(save, "filter", "PFSTATE-FORWARD");
        for name in ["web", "game", "np"] {
            assert!(
                accepts
                    .iter()
                    .any(|r| r.contains(&format!("pfstate:{name}")) && r.ends_with("-j ACCEPT")),
                "{fixture}: no accept for {name}: {accepts:#?}"
            );
        }
    } else {
        let lead = fwd.iter().take_while(|r| is_cali(r)).count();
        assert_eq!(
            fwd.get(lead),
            Some(&jump("FORWARD", "FORWARD")),
            "{fixture}: {fwd:#?}"
        );
    }
    // Canaries in both tables.
    for table in ["nat", "filter"] {
        let t = pfstate::ruleset::dump::parse(save);
        assert!(
            t.table(table).unwrap().chain("PFSTATE-CANARY").is_some(),
            "{fixture}: no canary in {table}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario per fixture

/// Which events each fixture's foreign managers produce.
fn events(fixture: &str) -> &'static [&'static str] {
    match fixture {
        "docker.rules" => &["docker-restart"],
        "libvirt.rules" => &["libvirt-restart"],
        "microk8s.rules" => &["felix-refresh", "kube-proxy-resync", "kubelet-canary-loss"],
        "ufw.rules" => &[],
        "all-in-one.rules" => &[
            "docker-restart",
            "felix-refresh",
            "kube-proxy-resync",
            "libvirt-restart",
            "kubelet-canary-loss",
            "docker-restart+felix-refresh",
        ],
        _ => unreachable!(),
    }
}

fn calico(fixture: &str) -> bool {
    matches!(fixture, "microk8s.rules" | "all-in-one.rules")
}

/// Felix's next refresh must find nothing to move: pfstate is where Felix wants it.
fn assert_felix_content(ns: &Ns, fixture: &str, step: &str) {
    if !calico(fixture) {
        return;
    }
    let before = ns.saves();
    ns.event("felix-refresh", None);
    assert_same(&before, &ns.saves(), &format!("{step}: Felix fought back"));
}

fn scenario(fixture: &str) {
    if skip() {
        return;
    }
    let t0 = std::time::Instant::now();
    let ns = Ns::new();
    ns.load(fixture);
    let dir = tempfile::tempdir().unwrap();
    let pf = Pf {
        ns: &ns,
        root: dir.path().join("root"),
    };
    let a = write(dir.path(), "a.yaml", &state("PFSTATE"));
    let base = ns.saves();

    // apply
    let p = pf.plan(&a);
    assert_eq!(p.code, 2, "{}", p.show());
    if fixture == "docker.rules" || fixture == "all-in-one.rules" {
        assert!(
            p.stderr.contains("forward `web` (tcp port 8080) is also claimed by a Docker published port in nat chain DOCKER"),
            "{}",
            p.show()
        );
    }
    if calico(fixture) {
        assert!(
            p.stderr
                .contains("forward `np` (tcp port 31080) is also claimed by a Kubernetes NodePort"),
            "{}",
            p.show()
        );
    }
    let r = pf.apply(&a);
    if fixture == "docker.rules" {
        assert!(r.stderr.contains("Docker published port"), "{}", r.show());
    }
    assert_untouched(&ns, &base, &["PFSTATE"], "apply");
    // The shared oracle agrees: check-untouched.sh against the fixture file itself, both families.
    must(
        Command::new(format!("{FIXTURES}/check-untouched.sh"))
            .args([ns.name.as_str(), &format!("{FIXTURES}/{fixture}")]),
    );
    must(
        Command::new(format!("{FIXTURES}/check-untouched.sh"))
            .args([ns.name.as_str(), &format!("{FIXTURES}/ipv6-foreign.rules")])
            .env("IPT_SAVE", "ip6tables-save"),
    );
    let applied = ns.saves();
    assert_placement(&applied[0], fixture);
    assert!(
        applied[1].contains("-j PFSTATE-PREROUTING"),
        "{}",
        applied[1]
    );
    assert_eq!(ns.sysctl("net.ipv4.ip_forward"), "1");
    assert_felix_content(&ns, fixture, "apply");

    // re-apply: in sync, nothing written
    let r = pf.apply(&a);
    assert!(r.stdout.contains("in sync"), "{}", r.show());
    assert_same(&applied, &ns.saves(), "re-apply");
    pf.assert_in_sync(&a, "after re-apply");

    // Foreign events, each followed by the check: plan reports drift exactly when the event
    // disturbed pfstate's own chains or jumps; apply repairs it touching nothing foreign; and
    // the foreign manager (Felix) finds nothing to move afterwards.
    let snapshot = write(dir.path(), "rules.v4", &ns.save(false));
    let fixture_file = Path::new(FIXTURES).join(fixture);
    let mut disturbing = Vec::new();
    for ev in events(fixture).iter().chain(&[
        "persistent-reload-snapshot",
        "firewalld-reload",
        "persistent-reload-fixture",
    ]) {
        let before = ns.saves();
        match *ev {
            "persistent-reload-snapshot" => ns.event("persistent-reload", Some(&snapshot)),
            "persistent-reload-fixture" => ns.event("persistent-reload", Some(&fixture_file)),
            "kubelet-canary-loss" => {
                // kubelet's KUBE-FIREWALL jump lost; kube-proxy/kubelet prepend it again at
                // position 1, then Felix puts cali-INPUT back on top.
                ns.ipt(&["-D", "INPUT", "-j", "KUBE-FIREWALL"]);
                ns.event("kube-proxy-resync", None);
                ns.event("felix-refresh", None);
            }
            "docker-restart+felix-refresh" => {
                // The regression of the notes: FORWARD becomes cali-FORWARD, DOCKER-USER,
                // DOCKER-FORWARD, ...; a FORWARD-level jump would now sit below DOCKER-FORWARD.
                ns.event("docker-restart", None);
                ns.event("felix-refresh", None);
                let fwd = chain_rules(&ns.save(false), "filter", "FORWARD");
                assert!(fwd[0].ends_with("-j cali-FORWARD"), "{fwd:#?}");
                assert!(fwd[1].ends_with("-j DOCKER-USER"), "{fwd:#?}");
            }
            e => ns.event(e, None),
        }
        let after = ns.saves();
        if own(&before[0]) == own(&after[0]) && own(&before[1]) == own(&after[1]) {
            pf.assert_in_sync(&a, &format!("after {ev} (pfstate undisturbed)"));
            let r = pf.apply(&a);
            assert!(r.stdout.contains("in sync"), "{ev}: {}", r.show());
            assert_same(&after, &ns.saves(), &format!("apply after {ev}"));
        } else {
            disturbing.push(*ev);
            pf.assert_drift(&a, &format!("after {ev} (pfstate disturbed)"));
            pf.apply(&a);
            assert_untouched(&ns, &after, &["PFSTATE"], &format!("repair after {ev}"));
            pf.assert_in_sync(&a, &format!("after repairing {ev}"));
            if *ev != "firewalld-reload" {
                // (after a flush DOCKER-USER is gone, so the FORWARD hook differs on purpose)
                let now = ns.saves();
                assert_eq!(own(&applied[0]), own(&now[0]), "{ev}: repaired IPv4 state");
                assert_eq!(own(&applied[1]), own(&now[1]), "{ev}: repaired IPv6 state");
            }
        }
        if calico(fixture) {
            // Felix's next refresh (it may reorder its rules against Docker's), then pfstate
            // is still in sync, and a further refresh finds nothing of pfstate's to move.
            ns.event("felix-refresh", None);
            pf.assert_in_sync(&a, &format!("{ev}, then felix-refresh"));
            assert_felix_content(&ns, fixture, ev);
        }
    }
    assert_eq!(
        disturbing,
        ["firewalld-reload", "persistent-reload-fixture"],
        "{fixture}: events that disturb pfstate"
    );
    assert_placement(&ns.save(false), fixture);
    let base = ns.saves();

    // change a forward
    let b = write(
        dir.path(),
        "b.yaml",
        &state("PFSTATE").replace("to: 10.99.0.3, via", "to: 10.99.0.5, via"),
    );
    pf.apply(&b);
    assert_untouched(&ns, &base, &["PFSTATE"], "change");
    let changed = ns.saves();
    assert!(changed[0].contains("--to-destination 10.99.0.5"));
    assert!(!changed[0].contains("--to-destination 10.99.0.3"));
    assert_placement(&changed[0], fixture);
    let r = pf.apply(&b);
    assert!(r.stdout.contains("in sync"), "{}", r.show());
    assert_same(&changed, &ns.saves(), "re-apply after change");
    assert_felix_content(&ns, fixture, "change");

    // remove: exactly the foreign rules are left
    pf.ok(&["remove"]);
    let after = ns.saves();
    assert_untouched(&ns, &base, &["PFSTATE"], "remove");
    for s in &after {
        assert!(!s.contains("PFSTATE"), "left behind:\n{s}");
    }
    assert_eq!(foreign(&after[0], &[]), foreign(&base[0], &["PFSTATE"]));
    eprintln!("{fixture}: {:.1?}", t0.elapsed());
}

#[test]
fn docker() {
    scenario("docker.rules");
}

#[test]
fn libvirt() {
    scenario("libvirt.rules");
}

#[test]
fn microk8s() {
    scenario("microk8s.rules");
}

#[test]
fn ufw() {
    scenario("ufw.rules");
}

#[test]
fn all_in_one() {
    scenario("all-in-one.rules");
}

// ---------------------------------------------------------------------------------------------
// Drift of pfstate's own state, repaired exactly

/// Disturb, see plan report it (each +/- line of its diff about `about`), repair, and find the
/// whole ruleset exactly as before the disturbance.
fn drift_case(pf: &Pf, file: &Path, what: &str, about: &str, disturb: impl FnOnce()) {
    let ns = pf.ns;
    let before = ns.saves();
    disturb();
    let disturbed = ns.saves();
    let p = pf.assert_drift(file, what);
    if what.starts_with("jump above") || what.starts_with("jump below") {
        assert!(
            p.stdout.contains("# misplaced: rule "),
            "{what}: {}",
            p.show()
        );
    }
    for l in p.stdout.lines() {
        let changed = (l.starts_with('+') || l.starts_with('-'))
            && !l.starts_with("+++")
            && !l.starts_with("---");
        if changed {
            assert!(
                l.contains(about),
                "{what}: unrelated change `{l}`\n{}",
                p.show()
            );
        }
    }
    pf.apply(file);
    assert_same(&before, &ns.saves(), &format!("repair of {what}"));
    assert_untouched(ns, &disturbed, &["PFSTATE"], what);
    pf.assert_in_sync(file, what);
}

#[test]
fn drift_is_detected_and_repaired_exactly() {
    if skip() {
        return;
    }
    let ns = Ns::new();
    ns.load("all-in-one.rules");
    let dir = tempfile::tempdir().unwrap();
    let pf = Pf {
        ns: &ns,
        root: dir.path().join("root"),
    };
    let a = write(dir.path(), "a.yaml", &state("PFSTATE"));
    pf.apply(&a);
    let jpre = "PREROUTING -m comment --comment pfstate -j PFSTATE-PREROUTING";

    drift_case(&pf, &a, "missing jump", "PFSTATE-PREROUTING", || {
        ns.ipt(&[
            "-t",
            "nat",
            "-D",
            "PREROUTING",
            "-m",
            "comment",
            "--comment",
            "pfstate",
            "-j",
            "PFSTATE-PREROUTING",
        ]);
    });
    drift_case(
        &pf,
        &a,
        "jump above the calico block",
        "PFSTATE-PREROUTING",
        || {
            ns.ipt(&[
                "-t",
                "nat",
                "-D",
                "PREROUTING",
                "-m",
                "comment",
                "--comment",
                "pfstate",
                "-j",
                "PFSTATE-PREROUTING",
            ]);
            ns.ipt(&[
                "-t",
                "nat",
                "-I",
                "PREROUTING",
                "1",
                "-m",
                "comment",
                "--comment",
                "pfstate",
                "-j",
                "PFSTATE-PREROUTING",
            ]);
        },
    );
    assert!(ns.save(false).contains(&format!("-A {jpre}")));
    drift_case(
        &pf,
        &a,
        "jump below calico's trailing rule",
        "PFSTATE-POSTROUTING",
        || {
            ns.ipt(&[
                "-t",
                "nat",
                "-D",
                "POSTROUTING",
                "-m",
                "comment",
                "--comment",
                "pfstate",
                "-j",
                "PFSTATE-POSTROUTING",
            ]);
            ns.ipt(&[
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-m",
                "comment",
                "--comment",
                "pfstate",
                "-j",
                "PFSTATE-POSTROUTING",
            ]);
        },
    );
    drift_case(
        &pf,
        &a,
        "jump in FORWARD while DOCKER-USER exists",
        "PFSTATE-FORWARD",
        || {
            ns.ipt(&[
                "-D",
                "DOCKER-USER",
                "-m",
                "comment",
                "--comment",
                "pfstate",
                "-j",
                "PFSTATE-FORWARD",
            ]);
            ns.ipt(&[
                "-I",
                "FORWARD",
                "1",
                "-m",
                "comment",
                "--comment",
                "pfstate",
                "-j",
                "PFSTATE-FORWARD",
            ]);
        },
    );
    drift_case(&pf, &a, "duplicate jump", "PFSTATE-INPUT", || {
        ns.ipt(&[
            "-A",
            "INPUT",
            "-m",
            "comment",
            "--comment",
            "pfstate",
            "-j",
            "PFSTATE-INPUT",
        ]);
    });
    drift_case(&pf, &a, "deleted owned rule", "PFSTATE-FORWARD", || {
        ns.ipt(&["-D", "PFSTATE-FORWARD", "1"]);
    });
    drift_case(&pf, &a, "edited owned rule", "PFSTATE-PREROUTING", || {
        let rules = chain_rules(&ns.save(false), "nat", "PFSTATE-PREROUTING");
        let edited = rules[0].replace("--dport 8080", "--dport 9999");
        let args: Vec<String> = edited
            .split_whitespace()
            .skip(2)
            .map(|s| s.trim_matches('"').to_string())
            .collect();
        let mut cmd = vec!["-t", "nat", "-R", "PFSTATE-PREROUTING", "1"];
        cmd.extend(args.iter().map(String::as_str));
        ns.ipt(&cmd);
    });
    drift_case(
        &pf,
        &a,
        "extra rule in an owned chain",
        "PFSTATE-INPUT",
        || {
            ns.ipt(&["-A", "PFSTATE-INPUT", "-j", "DROP"]);
        },
    );
    drift_case(&pf, &a, "canary gone", "PFSTATE-CANARY", || {
        ns.ipt(&["-X", "PFSTATE-CANARY"]);
    });
    drift_case(&pf, &a, "runtime sysctl", "ip_forward", || {
        ns.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    });
    assert_eq!(ns.sysctl("net.ipv4.ip_forward"), "1");
    drift_case(&pf, &a, "per-interface sysctl", "route_localnet", || {
        ns.sh(&["sysctl", "-qw", "net.ipv4.conf.lan0.route_localnet=0"]);
    });
}

/// A state with nothing in the filter table still keeps a filter canary, so a flush of the
/// filter table alone is seen; a flush of its nat rules is seen as well.
#[test]
fn canary_reveals_a_flushed_table() {
    if skip() {
        return;
    }
    let ns = Ns::new();
    ns.load("ufw.rules");
    let dir = tempfile::tempdir().unwrap();
    let pf = Pf {
        ns: &ns,
        root: dir.path().join("root"),
    };
    let a = write(
        dir.path(),
        "a.yaml",
        "version: 1\nforwards:\n  - {name: web, listen: {port: 8080}, to: 10.99.0.2:80, via: lan0, accept: false}\n",
    );
    pf.apply(&a);
    let s = ns.save(false);
    assert!(!s.contains("PFSTATE-FORWARD"), "{s}");
    assert!(chain_rules(&s, "filter", "PFSTATE-CANARY").is_empty());
    assert!(s.contains(":PFSTATE-CANARY"));
    let before = ns.saves();
    // ufw with MANAGE_BUILTINS=yes: `iptables -F; iptables -X` of the filter table.
    ns.ipt(&["-F"]);
    ns.ipt(&["-X"]);
    let flushed = ns.saves();
    let p = pf.assert_drift(&a, "filter table flushed");
    assert!(p.stdout.contains("+:PFSTATE-CANARY"), "{}", p.show());
    pf.apply(&a);
    assert_untouched(&ns, &flushed, &["PFSTATE"], "canary repair");
    let now = ns.saves();
    assert!(now[0].contains(":PFSTATE-CANARY"));
    assert_eq!(
        chain_rules(&now[0], "nat", "PFSTATE-PREROUTING"),
        chain_rules(&before[0], "nat", "PFSTATE-PREROUTING")
    );
}

// ---------------------------------------------------------------------------------------------
// Two states, two prefixes

#[test]
fn two_prefixes_manage_only_their_own_chains() {
    if skip() {
        return;
    }
    let ns = Ns::new();
    ns.load("docker.rules");
    let base = ns.saves();
    let dir = tempfile::tempdir().unwrap();
    let edge = Pf {
        ns: &ns,
        root: dir.path().join("edge"),
    };
    let main = Pf {
        ns: &ns,
        root: dir.path().join("main"),
    };
    let a = write(
        dir.path(),
        "edge.yaml",
        &state("EDGE")
            .replace("8080", "8081")
            .replace("27015", "27016"),
    );
    let b = write(dir.path(), "main.yaml", &state("PFSTATE"));
    edge.apply(&a);
    main.apply(&b);
    assert_untouched(&ns, &base, &["EDGE", "PFSTATE"], "two applies");
    edge.assert_in_sync(&a, "EDGE after PFSTATE applied");
    main.assert_in_sync(&b, "PFSTATE after both");
    let s = ns.save(false);
    for p in ["EDGE", "PFSTATE"] {
        assert!(s.contains(&format!("-j {p}-PREROUTING")), "{s}");
        assert!(s.contains(&format!(":{p}-CANARY")), "{s}");
    }
    // Re-applying either changes nothing, and each one's view of the other's rules is foreign.
    let both = ns.saves();
    edge.apply(&a);
    main.apply(&b);
    assert_same(&both, &ns.saves(), "re-apply of both");
    assert_untouched(&ns, &both, &["EDGE"], "PFSTATE re-apply leaves EDGE alone");

    edge.ok(&["remove"]);
    let s = ns.save(false);
    assert!(!s.contains("EDGE-"), "{s}");
    main.assert_in_sync(&b, "PFSTATE after EDGE removed");
    assert_untouched(
        &ns,
        &both,
        &["EDGE"],
        "EDGE remove leaves PFSTATE and foreign alone",
    );
    // Both states set route_localnet on lan0 (with a guard each); the one removed first left
    // it for the other, whose remove turns it off with the last guard.
    let rl = || ns.sysctl("net.ipv4.conf.lan0.route_localnet");
    assert_eq!(rl(), "1");
    main.ok(&["remove"]);
    assert_eq!(foreign(&ns.save(false), &[]), foreign(&base[0], &[]));
    assert_eq!(rl(), "0");
}

// ---------------------------------------------------------------------------------------------
// nftables blind spots

#[test]
fn native_nftables_tables_are_reported() {
    if skip() {
        return;
    }
    let have_nft = Command::new("nft").arg("--version").output().is_ok();
    if !have_nft {
        eprintln!("SKIPPED native_nftables_tables_are_reported: nft not installed");
        return;
    }
    let ns = Ns::new();
    ns.load("libvirt.rules");
    ns.sh(&["nft", "add", "table", "inet", "firewalld"]);
    ns.sh(&["nft", "add", "table", "ip", "docker-bridges"]);
    let dir = tempfile::tempdir().unwrap();
    let pf = Pf {
        ns: &ns,
        root: dir.path().join("root"),
    };
    let a = write(dir.path(), "a.yaml", &state("PFSTATE"));
    let p = pf.plan(&a);
    assert!(
        p.stderr
            .contains("nftables table `inet firewalld` (firewalld)"),
        "{}",
        p.show()
    );
    assert!(
        p.stderr
            .contains("nftables table `ip docker-bridges` (Docker"),
        "{}",
        p.show()
    );
    assert!(!p.stderr.contains("table `ip filter`"), "{}", p.show());
    let r = pf.apply(&a);
    assert!(r.stderr.contains("inet firewalld"), "{}", r.show());
}

// ---------------------------------------------------------------------------------------------
// Shipped units that re-check periodically and after the other managers' (re)starts

#[test]
fn recheck_units_run_apply_every_minute_and_after_foreign_restarts() {
    let units = concat!(env!("CARGO_MANIFEST_DIR"), "/units");
    let read = |n: &str| std::fs::read_to_string(format!("{units}/{n}")).unwrap();
    let apply = "ExecStart=/usr/sbin/pfstate apply --boot /etc/pfstate/host.yaml";
    let timer = read("pfstate-recheck.timer");
    assert!(timer.contains("OnUnitActiveSec=60\n"), "{timer}");
    assert!(timer.contains("Unit=pfstate-recheck.service"), "{timer}");
    assert!(read("pfstate-recheck.service").contains(apply));
    let reapply = read("pfstate-reapply.service");
    assert!(reapply.contains(apply), "{reapply}");
    for svc in [
        "docker.service",
        "libvirtd.service",
        "virtnetworkd.service",
        "firewalld.service",
        "netfilter-persistent.service",
    ] {
        for key in ["After=", "PartOf=", "WantedBy="] {
            assert!(
                reapply
                    .lines()
                    .any(|l| l.starts_with(key) && l.contains(svc)),
                "{key} lacks {svc}"
            );
        }
    }
    // systemd's own check, with the binary path pointed at something that exists here.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed: unit syntax not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for n in [
        "pfstate-recheck.timer",
        "pfstate-recheck.service",
        "pfstate-reapply.service",
        "pfstate.service",
    ] {
        std::fs::write(
            dir.path().join(n),
            read(n).replace("/usr/sbin/pfstate", "/bin/true"),
        )
        .unwrap();
        names.push(format!("./{n}"));
    }
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&names)
        .current_dir(dir.path()));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        text(&out.stderr)
    );
}

/// The ported check-untouched logic catches what it must (needs no root).
#[test]
fn untouched_check_catches_foreign_changes() {
    let base = std::fs::read_to_string(format!("{FIXTURES}/docker.rules")).unwrap();
    let f = |s: &str| foreign(s, &["PFSTATE"]);
    // pfstate's own chain and jumps are ignored, wherever they are.
    let ours = base
        .replacen(
            ":DOCKER-USER - [0:0]\n",
            ":DOCKER-USER - [0:0]\n:PFSTATE-FORWARD - [0:0]\n-A DOCKER-USER -m comment --comment pfstate -j PFSTATE-FORWARD\n-A PFSTATE-FORWARD -j ACCEPT\n",
            1,
        );
    assert_ne!(ours, base);
    assert_eq!(f(&ours), f(&base));
    // A deleted foreign rule, a re-ordered chain, a changed policy are caught.
    let deleted = base.replace("-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP\n", "");
    assert_ne!(f(&deleted), f(&base));
    let reordered = base.replace(
        "-A FORWARD -j DOCKER-USER\n-A FORWARD -j DOCKER-FORWARD\n",
        "-A FORWARD -j DOCKER-FORWARD\n-A FORWARD -j DOCKER-USER\n",
    );
    assert_ne!(reordered, base);
    assert_ne!(f(&reordered), f(&base));
    let policy = base.replace(":FORWARD DROP", ":FORWARD ACCEPT");
    assert_ne!(policy, base);
    assert_ne!(f(&policy), f(&base));
    // Another prefix's chains are foreign to PFSTATE.
    let edge = base.replacen(
        ":DOCKER-USER - [0:0]\n",
        ":DOCKER-USER - [0:0]\n:EDGE-X - [0:0]\n",
        1,
    );
    assert_ne!(f(&edge), f(&base));
}

/// A foreign rule whose comment mentions a pfstate chain is still foreign.
#[test]
fn a_comment_naming_a_pfstate_chain_does_not_make_a_rule_pfstates() {
    if skip() {
        return;
    }
    let ns = Ns::new();
    ns.load("docker.rules");
    ns.ipt(&[
        "-I",
        "INPUT",
        "1",
        "-m",
        "comment",
        "--comment",
        "was -j PFSTATE-INPUT",
        "-j",
        "ACCEPT",
    ]);
    let base = ns.saves();
    let dir = tempfile::tempdir().unwrap();
    let pf = Pf {
        ns: &ns,
        root: dir.path().join("root"),
    };
    let a = write(dir.path(), "a.yaml", &state("PFSTATE"));
    pf.apply(&a);
    assert_untouched(&ns, &base, &["PFSTATE"], "apply");
    pf.assert_in_sync(&a, "after apply");
    pf.ok(&["remove"]);
    assert_same(&base, &ns.saves(), "remove");
}
