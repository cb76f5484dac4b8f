//! The units next to `pfstate.service` that keep the rules in place after boot.
//!
//! - `pfstate-watch.service` (`pfstate watch`): repairs within a second, driven by nf_tables
//!   events and firewalld's signals. Installed unless the state says `watch: false`.
//! - `pfstate-recheck.timer` + `pfstate-recheck.service` (a re-apply every minute) and
//!   `pfstate-reapply.service` (a re-apply when Docker, firewalld, libvirt, ufw, nftables,
//!   netfilter-persistent or MicroK8s start or reload): installed where the watcher cannot see
//!   changes, i.e. when the rules live in iptables-legacy (which announces none) or with
//!   `watch: false`. On an iptables-nft host with the watcher they would only repeat its work.
//!
//! Apply writes each wanted unit (rendered with the running binary, like `pfstate.service`),
//! enables it and starts it; a unit no longer wanted is disabled and deleted.

use super::ManagedFile;
use super::unit::{STATE_PATH, quote_exec_arg};

pub const WATCH: &str = "pfstate-watch.service";
pub const RECHECK_SERVICE: &str = "pfstate-recheck.service";
pub const RECHECK_TIMER: &str = "pfstate-recheck.timer";
pub const REAPPLY: &str = "pfstate-reapply.service";

/// Every companion unit: name and path, in the order apply writes and enables them.
pub const ALL: [(&str, &str); 4] = [
    (WATCH, "/etc/systemd/system/pfstate-watch.service"),
    (
        RECHECK_SERVICE,
        "/etc/systemd/system/pfstate-recheck.service",
    ),
    (RECHECK_TIMER, "/etc/systemd/system/pfstate-recheck.timer"),
    (REAPPLY, "/etc/systemd/system/pfstate-reapply.service"),
];

/// The units apply enables (the recheck service is started by its timer, not enabled).
pub fn enabled_by_apply(name: &str) -> bool {
    name != RECHECK_SERVICE
}

/// Which companion units a host gets.
pub fn wanted(name: &str, watch: bool, legacy: bool) -> bool {
    match name {
        WATCH => watch,
        _ => legacy || !watch,
    }
}

fn template(name: &str) -> &'static str {
    match name {
        WATCH => include_str!("../../../templates/pfstate-watch.service.hbs"),
        RECHECK_SERVICE => include_str!("../../../templates/pfstate-recheck.service.hbs"),
        RECHECK_TIMER => include_str!("../../../templates/pfstate-recheck.timer.hbs"),
        _ => include_str!("../../../templates/pfstate-reapply.service.hbs"),
    }
}

/// The text of companion unit `name` running `binary`.
pub fn render(name: &str, binary: &str) -> String {
    let args: &[&str] = if name == WATCH {
        &["watch", STATE_PATH]
    } else {
        &["apply", "--repair", STATE_PATH]
    };
    let exec = std::iter::once(binary)
        .chain(args.iter().copied())
        .map(quote_exec_arg)
        .collect::<Vec<_>>()
        .join(" ");
    template(name).replace("{{exec}}", &exec)
}

/// `(path, content)` of every companion unit for this host: `None` when it must not exist.
pub fn files(binary: &str, watch: bool, legacy: bool) -> Vec<(&'static str, Option<String>)> {
    ALL.iter()
        .map(|(name, path)| {
            let content = wanted(name, watch, legacy).then(|| render(name, binary));
            (*path, content)
        })
        .collect()
}

/// The companion units as files apply converges (`None` content: must not exist).
pub fn managed_files(binary: &str, watch: bool, legacy: bool) -> Vec<ManagedFile> {
    files(binary, watch, legacy)
        .into_iter()
        .map(|(target, content)| ManagedFile { target, content })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    }

    #[test]
    fn the_watch_unit() {
        let t = render(WATCH, "/usr/sbin/pfstate");
        assert_eq!(
            line(&t, "ExecStart"),
            ["/usr/sbin/pfstate watch /etc/pfstate/host.yaml"]
        );
        assert_eq!(line(&t, "Type"), ["simple"]);
        assert_eq!(line(&t, "Restart"), ["on-failure"]);
        assert_eq!(line(&t, "After"), ["pfstate.service dbus.service"]);
        assert_eq!(line(&t, "WantedBy"), ["multi-user.target"]);
        assert!(!t.contains("{{"), "{t}");
    }

    #[test]
    fn reapply_units_run_the_repair_apply_of_this_binary() {
        for name in [RECHECK_SERVICE, REAPPLY] {
            let t = render(name, "/opt/my tools/pfstate");
            assert_eq!(
                line(&t, "ExecStart"),
                [r#""/opt/my tools/pfstate" apply --repair /etc/pfstate/host.yaml"#],
                "{name}"
            );
        }
        let reapply = render(REAPPLY, "/usr/sbin/pfstate");
        assert!(
            line(&reapply, "WantedBy")
                .concat()
                .contains("nftables.service")
        );
        assert!(
            line(&reapply, "PartOf")
                .concat()
                .contains("firewalld.service")
        );
    }

    #[test]
    fn which_units_a_host_gets() {
        let names = |watch, legacy| -> Vec<&str> {
            ALL.iter()
                .filter(|(n, _)| wanted(n, watch, legacy))
                .map(|(n, _)| *n)
                .collect()
        };
        assert_eq!(names(true, false), [WATCH]);
        assert_eq!(names(true, true), ALL.map(|(n, _)| n));
        assert_eq!(
            names(false, false),
            [RECHECK_SERVICE, RECHECK_TIMER, REAPPLY]
        );
        let f = files("/usr/sbin/pfstate", false, false);
        assert_eq!(f.len(), 4);
        assert!(f[0].1.is_none() && f[1].1.is_some());
    }

    /// What a package ships in units/ is the rendering for the packaged binary.
    #[test]
    fn shipped_units_are_current() {
        let shipped = [
            (WATCH, include_str!("../../../units/pfstate-watch.service")),
            (
                RECHECK_SERVICE,
                include_str!("../../../units/pfstate-recheck.service"),
            ),
            (
                RECHECK_TIMER,
                include_str!("../../../units/pfstate-recheck.timer"),
            ),
            (
                REAPPLY,
                include_str!("../../../units/pfstate-reapply.service"),
            ),
        ];
        for (name, text) in shipped {
            assert_eq!(text, render(name, "/usr/sbin/pfstate"), "units/{name}");
        }
    }
}
