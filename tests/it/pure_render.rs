//! Rendering is a pure function of the file (issue 11): `render`, `diff` and the desired side
//! of `plan` print the same bytes for every example in a boot-like namespace (links down, no
//! addresses, no routes, none of the file's interfaces), in a namespace configured with the
//! file's interface names on other networks (bridges, a default route, routes to the backends
//! through the "wrong" interface), on this machine, and as an unprivileged user.
//!
//! Root only for the namespaces; without root each test prints SKIPPED and passes.

use crate::common::examples;
use std::process::Command;

use pfstate::lab::{Netns, NetnsOptions, root_state, skip_unless_root};

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");

/// How a command is run: in which namespace (`None`: this machine), as which user.
struct Where<'a> {
    label: &'a str,
    ns: Option<&'a Netns>,
    nobody: bool,
}

impl Where<'_> {
    /// stdout of `pfstate ARGS`, which must exit 0 or 2 (diff, plan with changes).
    fn pfstate(&self, args: &[&str]) -> String {
        let mut argv: Vec<&str> = Vec::new();
        if let Some(ns) = self.ns {
            argv.extend(["ip", "netns", "exec", ns.name()]);
        }
        if self.nobody {
            argv.extend([
                "setpriv",
                "--reuid",
                "nobody",
                "--regid",
                "nogroup",
                "--clear-groups",
            ]);
        }
        argv.push(BIN);
        argv.extend_from_slice(args);
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "{}: {argv:?}: {}",
            self.label,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Links down, no addresses, no routes: the machine before the network is configured.
fn boot_like() -> Netns {
    let ns = Netns::create("boot", NetnsOptions::default()).unwrap();
    ns.ip(&["link", "set", "lo", "down"]).unwrap();
    assert_eq!(ns.ip(&["-4", "route", "show"]).unwrap().trim(), "");
    ns
}

/// The interface names the examples use, up, as bridges and veths on networks the files
/// do not state, with a default route and the backends' networks routed through `wan0`.
fn configured() -> Netns {
    let ns = Netns::create("conf", NetnsOptions::default()).unwrap();
    let run = |args: &[&str]| {
        ns.ip(args).unwrap();
    };
    for (name, kind, net) in [
        ("wan0", "veth", "198.18.0.1/24"),
        ("lan0", "bridge", "172.31.0.1/16"),
        ("eth0", "veth", "198.18.1.1/24"),
        ("eth1", "bridge", "172.30.0.1/16"),
    ] {
        // veth pairs inside the namespace (no module to load, unlike dummy).
        let peer = format!("{name}-p");
        match kind {
            "veth" => run(&["link", "add", name, "type", "veth", "peer", "name", &peer]),
            _ => run(&["link", "add", name, "type", kind]),
        }
        run(&["addr", "add", net, "dev", name]);
        run(&["link", "set", name, "up"]);
        if kind == "veth" {
            run(&["link", "set", &peer, "up"]);
        }
    }
    run(&[
        "route",
        "add",
        "default",
        "via",
        "198.18.0.254",
        "dev",
        "wan0",
    ]);
    run(&[
        "route",
        "add",
        "10.77.0.0/24",
        "via",
        "198.18.1.254",
        "dev",
        "eth0",
    ]);
    run(&[
        "route",
        "add",
        "192.168.1.0/24",
        "via",
        "198.18.0.253",
        "dev",
        "wan0",
    ]);
    ns
}

#[test]
fn render_and_diff_are_the_same_everywhere_and_for_everyone() {
    if skip_unless_root("render_and_diff_are_the_same_everywhere_and_for_everyone") {
        return;
    }
    let before = root_state();
    let (boot, conf) = (boot_like(), configured());
    let places = [
        Where {
            label: "boot-like namespace",
            ns: Some(&boot),
            nobody: false,
        },
        Where {
            label: "configured namespace",
            ns: Some(&conf),
            nobody: false,
        },
        Where {
            label: "this machine",
            ns: None,
            nobody: false,
        },
        Where {
            label: "nobody, boot-like namespace",
            ns: Some(&boot),
            nobody: true,
        },
        Where {
            label: "nobody, configured namespace",
            ns: Some(&conf),
            nobody: true,
        },
    ];
    let files = examples();
    for (i, file) in files.iter().enumerate() {
        let f = file.to_str().unwrap();
        let next = files[(i + 1) % files.len()].to_str().unwrap();
        let want_render = places[0].pfstate(&["render", f]);
        let want_diff = places[0].pfstate(&["diff", f, next]);
        assert!(want_render.contains("COMMIT"), "{want_render}");
        for w in &places[1..] {
            assert_eq!(
                w.pfstate(&["render", f]),
                want_render,
                "render {f}: {}",
                w.label
            );
            assert_eq!(
                w.pfstate(&["diff", f, next]),
                want_diff,
                "diff {f} {next}: {}",
                w.label
            );
        }
    }
    drop((boot, conf));
    assert_eq!(root_state(), before, "the root namespace changed");
}

/// The rules `plan` wants (its diff against an empty firewall) are the same in both
/// namespaces; only the live side (sysctls, warnings about missing interfaces) differs.
#[test]
fn the_desired_side_of_plan_is_the_same_at_boot_and_configured() {
    if skip_unless_root("the_desired_side_of_plan_is_the_same_at_boot_and_configured") {
        return;
    }
    let before = root_state();
    let (boot, conf) = (boot_like(), configured());
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    for file in examples() {
        let f = file.to_str().unwrap();
        let rules = |ns: &Netns, label: &str| {
            let w = Where {
                label,
                ns: Some(ns),
                nobody: false,
            };
            let plan = w.pfstate(&["--root", r, "plan", f]);
            let end = plan.find("--- sysctl (live)").unwrap_or(plan.len());
            plan[..end].to_string()
        };
        let at_boot = rules(&boot, "boot-like");
        assert!(at_boot.contains("rules (desired)"), "{f}: {at_boot}");
        assert_eq!(rules(&conf, "configured"), at_boot, "plan {f}");
    }
    drop((boot, conf));
    assert_eq!(root_state(), before, "the root namespace changed");
}
