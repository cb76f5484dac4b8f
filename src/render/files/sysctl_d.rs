//! `/etc/sysctl.d/90-pfstate.conf`: the sysctls the state needs, so they come back at boot.
//!
//! # Key syntax
//!
//! sysctl.d(5): "either `/` or `.` may be used as separators within sysctl variable names. If the
//! first separator is a slash, remaining slashes and dots are left intact. If the first separator
//! is a dot, dots and slashes are interchanged." An interface name may contain dots (VLANs:
//! `eth0.100`), so the dotted form `net.ipv4.conf.eth0.100.forwarding` would be read as
//! `/proc/sys/net/ipv4/conf/eth0/100/forwarding`. That is why the input is a list of path
//! components, not a dotted string, and why a key with a dot inside a component is written with
//! slashes throughout (`net/ipv4/conf/eth0.100/forwarding`). Keys without such dots keep the
//! familiar dotted form.
//!
//! # Interfaces that appear after systemd-sysctl
//!
//! systemd-sysctl.service runs once, early at boot. A per-interface key (`net.ipv4.conf.IFACE.*`)
//! for an interface that does not exist yet (a VLAN, bridge, or a NIC whose driver loads later)
//! is skipped then ("Couldn't write ..., ignoring: No such file or directory", not a failure).
//! What covers it on a normal host is udev: systemd's `99-systemd.rules` has
//! `ACTION=="add", SUBSYSTEM=="net", KERNEL!="lo", RUN+="/lib/systemd/systemd-sysctl
//! --prefix=/net/ipv4/conf/$name --prefix=/net/ipv4/neigh/$name --prefix=/net/ipv6/conf/$name
//! --prefix=/net/ipv6/neigh/$name"`, which re-applies the sysctl.d keys of each new interface when
//! it is added (the prefix is compared on the normalised slash form, so `eth0.100` keys written as
//! below match). Where there is no udev (containers, the test sandbox) nothing re-applies them:
//! pfstate's own boot unit sets the runtime sysctls only for interfaces present when it runs
//! (before network-pre.target), and the recheck timer (`units/pfstate-recheck.timer`) is what
//! eventually converges such hosts.

use std::collections::BTreeMap;
use std::fmt;

/// Where the file lives on the target system.
pub const SYSCTL_CONF_PATH: &str = "/etc/sysctl.d/90-pfstate.conf";

/// One sysctl: the components of its path under /proc/sys, and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SysctlEntry {
    /// e.g. `["net", "ipv4", "conf", "eth0.100", "route_localnet"]`.
    pub path: Vec<String>,
    /// e.g. `"1"`.
    pub value: String,
}

impl SysctlEntry {
    /// Convenience constructor.
    pub fn new<S: Into<String>>(
        path: impl IntoIterator<Item = S>,
        value: impl Into<String>,
    ) -> Self {
        SysctlEntry {
            path: path.into_iter().map(Into::into).collect(),
            value: value.into(),
        }
    }

    /// The key as sysctl.d must read it (see the module docs): dotted, unless a component holds
    /// a dot, then slashes throughout.
    pub fn conf_key(&self) -> String {
        if self.path.iter().any(|c| c.contains('.')) {
            self.path.join("/")
        } else {
            self.path.join(".")
        }
    }

    /// The file under /proc/sys this entry writes (`net/ipv4/conf/eth0.100/forwarding`).
    pub fn proc_path(&self) -> String {
        self.path.join("/")
    }
}

/// An entry that cannot be written to sysctl.d unambiguously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlConfError {
    /// A component is empty or contains `/`, whitespace, `=`, a glob character or a control
    /// character, or the path is empty.
    BadKey(Vec<String>),
    /// A value spanning lines, or empty.
    BadValue { key: String, value: String },
    /// The same key twice with different values.
    Conflict {
        key: String,
        first: String,
        second: String,
    },
}

impl fmt::Display for SysctlConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysctlConfError::BadKey(path) => {
                write!(f, "sysctl key {path:?} cannot be written to sysctl.d")
            }
            SysctlConfError::BadValue { key, value } => {
                write!(
                    f,
                    "sysctl {key}: value {value:?} cannot be written to sysctl.d"
                )
            }
            SysctlConfError::Conflict { key, first, second } => {
                write!(f, "sysctl {key} wanted both as {first:?} and as {second:?}")
            }
        }
    }
}

impl std::error::Error for SysctlConfError {}

fn valid_component(c: &str) -> bool {
    // `-` at the start of the key means "ignore failure" and a glob (`*?[`) matches many keys in
    // sysctl.d; neither may come from an interface name by accident.
    !c.is_empty()
        && !c.chars().any(|ch| {
            ch == '/' || ch == '=' || ch.is_whitespace() || ch.is_control() || "*?[".contains(ch)
        })
}

/// Render the whole sysctl.d file. Entries are sorted by their /proc/sys path so the file is
/// canonical (the same state always renders the same bytes, so `apply` writes nothing when
/// converged); exact duplicates collapse, a key wanted with two values is an error.
/// An empty list renders just the header (the caller may prefer to remove the file then).
pub fn render_sysctl_conf(entries: &[SysctlEntry]) -> Result<String, SysctlConfError> {
    let mut by_path: BTreeMap<String, &SysctlEntry> = BTreeMap::new();
    for e in entries {
        if e.path.is_empty()
            || !e.path.iter().all(|c| valid_component(c))
            || e.path[0].starts_with('-')
        {
            return Err(SysctlConfError::BadKey(e.path.clone()));
        }
        let v = e.value.trim();
        if v.is_empty() || v.contains(['\n', '\r']) {
            return Err(SysctlConfError::BadValue {
                key: e.conf_key(),
                value: e.value.clone(),
            });
        }
        if let Some(prev) = by_path.insert(e.proc_path(), e)
            && prev.value.trim() != v
        {
            return Err(SysctlConfError::Conflict {
                key: e.conf_key(),
                first: prev.value.clone(),
                second: e.value.clone(),
            });
        }
    }
    let mut out = String::from(
        "# Managed by pfstate: written from /etc/pfstate/host.yaml by `pfstate apply`.\n\
         # Local changes are overwritten; `pfstate remove` deletes this file.\n\
         # Keys whose interface name contains a dot use `/` separators (sysctl.d(5)).\n",
    );
    for e in by_path.values() {
        out.push_str(&e.conf_key());
        out.push_str(" = ");
        out.push_str(e.value.trim());
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_stay_dotted() {
        let out =
            render_sysctl_conf(&[SysctlEntry::new(["net", "ipv4", "ip_forward"], "1")]).unwrap();
        assert!(out.starts_with("# Managed by pfstate"), "{out}");
        assert!(out.ends_with("\nnet.ipv4.ip_forward = 1\n"), "{out}");
    }

    #[test]
    fn vlan_interface_uses_slashes() {
        let e = SysctlEntry::new(["net", "ipv4", "conf", "eth0.100", "route_localnet"], "1");
        assert_eq!(e.conf_key(), "net/ipv4/conf/eth0.100/route_localnet");
        assert_eq!(e.proc_path(), "net/ipv4/conf/eth0.100/route_localnet");
        let out = render_sysctl_conf(&[e]).unwrap();
        assert!(
            out.contains("\nnet/ipv4/conf/eth0.100/route_localnet = 1\n"),
            "{out}"
        );
        // The dotted form, which sysctl.d would split at every dot, never appears.
        assert!(!out.contains("net.ipv4.conf.eth0.100"), "{out}");
    }

    #[test]
    fn sorted_deduplicated_canonical() {
        let a = SysctlEntry::new(["net", "ipv6", "conf", "all", "forwarding"], "1");
        let b = SysctlEntry::new(["net", "ipv4", "ip_forward"], "1");
        let one = render_sysctl_conf(&[a.clone(), b.clone(), a.clone()]).unwrap();
        let two = render_sysctl_conf(&[b, a]).unwrap();
        assert_eq!(one, two);
        let body: Vec<_> = one.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "net.ipv4.ip_forward = 1",
                "net.ipv6.conf.all.forwarding = 1"
            ]
        );
    }

    #[test]
    fn conflicts_and_bad_input_are_errors() {
        let err = render_sysctl_conf(&[
            SysctlEntry::new(["net", "ipv4", "ip_forward"], "1"),
            SysctlEntry::new(["net", "ipv4", "ip_forward"], "0"),
        ])
        .unwrap_err();
        assert!(matches!(err, SysctlConfError::Conflict { .. }), "{err}");
        for bad in [
            vec!["net", "ipv4", "conf", "a/b", "x"],
            vec!["net", "", "x"],
            vec!["net", "ipv4", "conf", "eth*", "x"],
            vec!["-net", "x"],
            vec!["net", "a b"],
        ] {
            let err = render_sysctl_conf(&[SysctlEntry::new(bad.clone(), "1")]).unwrap_err();
            assert!(matches!(err, SysctlConfError::BadKey(_)), "{bad:?}: {err}");
        }
        assert!(render_sysctl_conf(&[SysctlEntry::new(Vec::<String>::new(), "1")]).is_err());
        let err = render_sysctl_conf(&[SysctlEntry::new(["net", "x"], "1\n2")]).unwrap_err();
        assert!(matches!(err, SysctlConfError::BadValue { .. }), "{err}");
    }

    #[test]
    fn multi_word_values_kept() {
        let out = render_sysctl_conf(&[SysctlEntry::new(
            ["net", "ipv4", "ip_local_port_range"],
            "32768\t60999",
        )])
        .unwrap();
        assert!(out.contains("net.ipv4.ip_local_port_range = 32768\t60999\n"));
    }
}
