//! The gateway lab the traffic tests share, and what a probe must show.

use super::*;

/// A lab plus a temporary `--root` for pfstate's files, and the root namespace's state taken
/// before anything was built (checked again by [`Lab::done`]).
pub(super) struct Lab {
    pub(super) topo: Option<Topology>,
    pub(super) root: tempfile::TempDir,
    pub(super) before: Vec<String>,
}

impl Lab {
    pub(super) fn new(opts: GatewayOptions) -> Lab {
        let before = root_state();
        let topo = Topology::gateway(opts).expect("build lab");
        Lab {
            topo: Some(topo),
            root: tempfile::tempdir().unwrap(),
            before,
        }
    }

    /// Switch (tutorial) layout; `default_route`: backends route via the gateway.
    pub(super) fn switch(default_route: bool) -> Lab {
        Lab::new(GatewayOptions {
            backend_default_route: default_route,
            ..Default::default()
        })
    }

    /// The LAN bridge inside the gateway, named `lan0` so the same files apply, with
    /// `bridge-nf-call-iptables=1` as on Docker hosts. `None` (test skipped, said on stderr)
    /// when br_netfilter is not loaded on this machine: the lab never loads modules.
    pub(super) fn bridged(test: &str, default_route: bool) -> Option<Lab> {
        let before = root_state();
        let topo = match Topology::gateway(GatewayOptions {
            backend_default_route: default_route,
            lan_mode: LanMode::Bridge,
            lan_if: Some("lan0".into()),
            bridge_nf_call: Some(true),
            ..Default::default()
        }) {
            Ok(t) => t,
            Err(e) if e.to_string().contains("br_netfilter") => {
                eprintln!("SKIPPED {test}: {e}");
                return None;
            }
            Err(e) => panic!("build lab: {e}"),
        };
        Some(Lab {
            topo: Some(topo),
            root: tempfile::tempdir().unwrap(),
            before,
        })
    }

    pub(super) fn t(&self) -> &Topology {
        self.topo.as_ref().unwrap()
    }
    pub(super) fn gw(&self) -> &Netns {
        self.t().gw()
    }
    pub(super) fn client(&self) -> &Netns {
        self.t().client()
    }
    pub(super) fn lan(&self) -> &Netns {
        self.t().lan()
    }
    pub(super) fn be(&self, i: usize) -> &Netns {
        &self.t().backends()[i - 1]
    }

    /// `pfstate --root <tmp> ARGS...` inside the gateway.
    pub(super) fn pfstate(&self, args: &[&str]) -> Output {
        let root = self.root.path().to_str().unwrap();
        let mut full = vec!["--root", root];
        full.extend_from_slice(args);
        self.gw().exec_output(BIN, &full).expect("run pfstate")
    }

    /// Apply a file in the gateway; panics (with the lab dumped) unless it succeeds.
    pub(super) fn apply(&self, file: &Path) -> String {
        let out = self.pfstate(&["apply", file.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "pfstate apply {} failed: {}\n{}\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr),
            stdout,
            self.t().dump()
        );
        stdout
    }

    /// Apply YAML text (a variant of an example) written to the temp dir.
    pub(super) fn apply_text(&self, name: &str, yaml: &str) -> String {
        let path = self.root.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        self.apply(&path)
    }

    /// A second apply of the same file changes nothing: the rendered rules are in the exact
    /// form the kernel prints back.
    pub(super) fn assert_in_sync(&self, file: &Path) {
        let again = self.apply(file);
        assert!(again.contains("in sync"), "{}: {again}", file.display());
    }

    pub(super) fn sysctl(&self, key: &str) -> String {
        self.gw().sysctl(key).unwrap().unwrap_or_default()
    }

    pub(super) fn iptables(&self, args: &[&str]) {
        self.gw().exec("iptables", args).expect("iptables in gw");
    }

    /// Tear the lab down and check the root namespace is as it was.
    pub(super) fn done(mut self) {
        drop(self.topo.take());
        assert_eq!(root_state(), self.before, "the root namespace changed");
    }
}

/// Assert a probe reached `name` and that the server saw `peer` as the source address.
#[track_caller]
pub(super) fn assert_reached(lab: &Lab, r: &ProbeResult, name: &str, peer: IpAddr, what: &str) {
    let Some(reply) = r.reply() else {
        panic!(
            "{what}: expected {name}@{peer}, got {r:?}\n{}",
            lab.t().dump()
        );
    };
    assert_eq!(
        (reply.name.as_str(), reply.peer.ip()),
        (name, peer),
        "{what}\n{}",
        lab.t().dump()
    );
}

#[track_caller]
pub(super) fn assert_blocked(r: &ProbeResult, want: &ProbeResult, what: &str) {
    assert_eq!(r, want, "{what}");
}
