//! `route_localnet` is never on without its guard rule, and goes back to the value pfstate
//! found (issue 11; the CVE-2020-8558 exposure): proven with real packets. A LAN host that
//! routes 127.0.0.1 to the gateway (as an attacker on the LAN can) must never reach a service
//! the gateway serves on 127.0.0.1, whatever pfstate did before: `local` applied, `local`
//! taken off, `remove`, an apply that failed after route_localnet was set, a reboot.
//!
//! Root only (namespaces); without root each test prints SKIPPED and passes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use pfstate::lab::{GatewayOptions, Proto, Topology, probe_tcp, root_state, skip_unless_root};

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const T: Duration = Duration::from_millis(1500);
/// Probes expected to be dropped.
const SHORT: Duration = Duration::from_millis(600);
/// The gateway's service that must stay local (it listens on every address, 127.0.0.1 too).
const LOCAL_PORT: u16 = 7777;
const KEY: &str = "net.ipv4.conf.lan0.route_localnet";
const RECORD: &str = "var/lib/pfstate/sysctl-before";

const LOCAL: &str = "version: 1
interfaces: {wan: wan0, lan: lan0}
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080, local: true, via: lan}
";
const NOT_LOCAL: &str = "version: 1
interfaces: {wan: wan0, lan: lan0}
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}
";

struct Lab {
    topo: Topology,
    root: tempfile::TempDir,
}

impl Lab {
    /// The gateway lab, a service on the gateway's 127.0.0.1, and a LAN host that sends
    /// 127.0.0.1 to the gateway: its own loopback routes deleted, a route via the gateway,
    /// route_localnet on its side (all in the LAN host's own namespace).
    fn new() -> Lab {
        let topo = Topology::gateway(GatewayOptions {
            backend_default_route: true,
            ..Default::default()
        })
        .expect("build lab");
        topo.gw().serve("gw-local", Proto::Tcp, LOCAL_PORT).unwrap();
        let lan = topo.lan();
        for route in ["127.0.0.0/8", "127.0.0.1"] {
            let _ = lan.ip(&[
                "route", "del", "local", route, "dev", "lo", "table", "local",
            ]);
        }
        lan.ip(&["route", "add", "127.0.0.1/32", "via", "10.77.0.1"])
            .unwrap();
        lan.set_sysctls(&[("net.ipv4.conf.all.route_localnet", "1")])
            .unwrap();
        Lab {
            topo,
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn pfstate(&self, args: &[&str]) -> Output {
        let root = self.root.path().to_str().unwrap();
        let mut full = vec!["--root", root];
        full.extend_from_slice(args);
        self.topo.gw().exec_output(BIN, &full).expect("run pfstate")
    }

    fn write(&self, name: &str, yaml: &str) -> String {
        let path = self.root.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.pfstate(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "pfstate {args:?}: {}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.topo.dump()
        );
        stdout
    }

    fn sysctl(&self) -> String {
        self.topo.gw().sysctl(KEY).unwrap().unwrap_or_default()
    }

    fn guard(&self) -> bool {
        let rules = self.topo.gw().exec("iptables-save", &[]).unwrap();
        rules
            .lines()
            .any(|l| l.contains("-d 127.0.0.0/8 -i lan0") && l.ends_with("-j DROP"))
    }

    /// The LAN host does not reach the gateway's 127.0.0.1 service, and the sysctl is on only
    /// with the guard in place.
    #[track_caller]
    fn assert_safe(&self, step: &str) {
        assert!(
            self.sysctl() == "0" || self.guard(),
            "{step}: route_localnet on without the guard\n{}",
            self.topo.dump()
        );
        let to_loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, LOCAL_PORT));
        let r = probe_tcp(self.topo.lan(), to_loopback, SHORT);
        assert!(
            !r.is_ok(),
            "{step}: the LAN reached the gateway's 127.0.0.1 service: {r:?}\n{}",
            self.topo.dump()
        );
    }

    /// The gateway itself reaches the forward through 127.0.0.1 (what `local` is for).
    #[track_caller]
    fn assert_local_works(&self) {
        let r = probe_tcp(
            self.topo.gw(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 80)),
            T,
        );
        assert_eq!(
            r.name().as_deref(),
            Some("be1"),
            "{r:?}\n{}",
            self.topo.dump()
        );
    }
}

/// The harness itself: without the guard, route_localnet=1 does expose the service, so the
/// probes of the other tests can fail.
#[test]
fn without_the_guard_the_lan_reaches_the_gateways_loopback() {
    if skip_unless_root("without_the_guard_the_lan_reaches_the_gateways_loopback") {
        return;
    }
    let before = root_state();
    let lab = Lab::new();
    lab.assert_safe("a fresh gateway");
    lab.topo.gw().set_sysctls(&[(KEY, "1")]).unwrap();
    let r = probe_tcp(
        lab.topo.lan(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, LOCAL_PORT)),
        T,
    );
    assert_eq!(r.name().as_deref(), Some("gw-local"), "{r:?}");
    drop(lab);
    assert_eq!(root_state(), before, "the root namespace changed");
}

#[test]
fn route_localnet_goes_back_when_local_is_taken_off_and_on_remove() {
    if skip_unless_root("route_localnet_goes_back_when_local_is_taken_off_and_on_remove") {
        return;
    }
    let before = root_state();
    let lab = Lab::new();
    let local = lab.write("local.yaml", LOCAL);
    let not_local = lab.write("not-local.yaml", NOT_LOCAL);
    assert_eq!(lab.sysctl(), "0");

    lab.ok(&["apply", &local]);
    assert_eq!(lab.sysctl(), "1");
    lab.assert_local_works();
    lab.assert_safe("local applied");
    let record = std::fs::read_to_string(lab.root.path().join(RECORD)).unwrap();
    assert!(
        record.contains("net/ipv4/conf/lan0/route_localnet = 0\n"),
        "{record}"
    );

    // `local` taken off: the plan shows the sysctl going back, apply puts it back.
    let plan = lab.pfstate(&["plan", &not_local]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{text}");
    assert!(text.contains(&format!("-{KEY} = 1\n")), "{text}");
    assert!(
        text.contains(&format!("+{KEY} = 0 (as pfstate found it)\n")),
        "{text}"
    );
    lab.ok(&["apply", &not_local]);
    assert_eq!(lab.sysctl(), "0");
    assert!(!lab.guard());
    lab.assert_safe("local taken off");
    let again = lab.ok(&["plan", &not_local]);
    assert!(again.contains("in sync"), "{again}");
    let record = std::fs::read_to_string(lab.root.path().join(RECORD)).unwrap_or_default();
    assert!(!record.contains("route_localnet"), "{record}");

    // On again, then `remove`: everything back as found, ip_forward too.
    lab.ok(&["apply", &local]);
    assert_eq!(lab.sysctl(), "1");
    lab.ok(&["remove"]);
    assert_eq!(lab.sysctl(), "0");
    assert_eq!(
        lab.topo
            .gw()
            .sysctl("net.ipv4.ip_forward")
            .unwrap()
            .as_deref(),
        Some("0")
    );
    assert!(!lab.guard());
    assert!(!lab.root.path().join(RECORD).exists());
    lab.assert_safe("after remove");
    drop(lab);
    assert_eq!(root_state(), before, "the root namespace changed");
}

/// An apply that fails after route_localnet was set (enabling the unit fails: the directory
/// of its `[Install]` symlinks is a file) is undone newest first: the sysctl goes back before
/// the guard goes.
#[test]
fn a_failed_apply_puts_route_localnet_back() {
    if skip_unless_root("a_failed_apply_puts_route_localnet_back") {
        return;
    }
    let before = root_state();
    let lab = Lab::new();
    let local = lab.write("local.yaml", LOCAL);
    let wants = lab
        .root
        .path()
        .join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(wants.parent().unwrap()).unwrap();
    std::fs::write(&wants, "in the way\n").unwrap();
    let out = lab.pfstate(&["apply", &local]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing was changed") || stderr.contains("put back"),
        "{stderr}"
    );
    assert_eq!(lab.sysctl(), "0");
    assert!(!lab.guard());
    let rules = lab.topo.gw().exec("iptables-save", &[]).unwrap();
    assert!(!rules.contains("PFSTATE"), "{rules}");
    assert!(!lab.root.path().join(RECORD).exists());
    lab.assert_safe("after a failed apply");

    // The same after a successful apply and a failed change to a state without `local`.
    std::fs::remove_file(&wants).unwrap();
    lab.ok(&["apply", &local]);
    let plain = lab.write("other.yaml", NOT_LOCAL);
    std::fs::remove_dir_all(&wants).unwrap();
    std::fs::write(&wants, "in the way\n").unwrap();
    let out = lab.pfstate(&["apply", &plain]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        lab.sysctl(),
        "1",
        "the earlier state is back, with its guard"
    );
    assert!(lab.guard());
    lab.assert_local_works();
    lab.assert_safe("after a failed change");
    drop(lab);
    assert_eq!(root_state(), before, "the root namespace changed");
}

/// A reboot: the kernel starts with route_localnet=0 and no rules; systemd-sysctl applies the
/// sysctl.d file (which must not turn it on), then the unit's `apply --boot` puts the guard in
/// and only then sets it.
#[test]
fn a_reboot_never_has_route_localnet_without_the_guard() {
    if skip_unless_root("a_reboot_never_has_route_localnet_without_the_guard") {
        return;
    }
    let before = root_state();
    let lab = Lab::new();
    let local = lab.write("local.yaml", LOCAL);
    lab.ok(&["apply", &local]);
    let conf =
        std::fs::read_to_string(lab.root.path().join("etc/sysctl.d/90-pfstate.conf")).unwrap();
    assert!(
        !conf
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("route_localnet")),
        "{conf}"
    );
    // "Reboot": the runtime state is gone, the files stay.
    lab.topo.gw().set_sysctls(&[(KEY, "0")]).unwrap();
    for table in ["nat", "filter"] {
        lab.topo
            .gw()
            .exec("iptables", &["-t", table, "-F"])
            .unwrap();
        lab.topo
            .gw()
            .exec("iptables", &["-t", table, "-X"])
            .unwrap();
    }
    apply_sysctl_d(&lab, &conf);
    lab.assert_safe("after systemd-sysctl, before pfstate.service");
    assert_eq!(lab.sysctl(), "0");
    let state = lab.root.path().join("etc/pfstate/host.yaml");
    lab.ok(&["apply", "--boot", state.to_str().unwrap()]);
    assert_eq!(lab.sysctl(), "1");
    assert!(lab.guard());
    lab.assert_local_works();
    lab.assert_safe("after pfstate.service");
    drop(lab);
    assert_eq!(root_state(), before, "the root namespace changed");
}

/// What systemd-sysctl does with the file, inside the gateway's namespace.
fn apply_sysctl_d(lab: &Lab, conf: &str) {
    let kv: Vec<(String, String)> = conf
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let kv: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    lab.topo.gw().set_sysctls(&kv).unwrap();
    assert!(Path::new("/proc/sys/net/ipv4/ip_forward").exists());
}
