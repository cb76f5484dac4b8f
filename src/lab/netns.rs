//! The namespace handle: create a uniquely named netns, pin its sysctls, run commands and
//! closures inside it, delete it on drop.
//!
//! Sysctls are pinned because a new netns copies IPv4 `conf/all` and `conf/default` from the
//! root namespace (`net.core.devconf_inherit_init_net=0`): without pinning, a Docker host
//! (ip_forward=1) or a laptop (rp_filter=2) would give different test results.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::error::NetlabError;
use super::server::{Proto, Server};
use super::setns::enter;

/// Every namespace name this module creates starts with this, then `<pid>-<counter>-`.
pub const PREFIX: &str = "pft-";

/// Per-process counter that makes namespace names unique within a run.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How a new namespace's sysctls are pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetnsOptions {
    /// `net.ipv4.conf.{all,default}.rp_filter`: 0 off, 1 strict, 2 loose.
    pub rp_filter: u8,
    /// IPv6 on (`disable_ipv6=0`, forwarding 0) or off (`disable_ipv6=1` everywhere).
    pub ipv6: bool,
    /// Try `net.netfilter.nf_conntrack_acct=1` so conntrack shows packet/byte counts. Best
    /// effort: the key exists only while nf_conntrack is loaded.
    pub conntrack_acct: bool,
}

impl Default for NetnsOptions {
    fn default() -> Self {
        NetnsOptions {
            rp_filter: 1,
            ipv6: false,
            conntrack_acct: true,
        }
    }
}

/// A network namespace this process created; deleted (servers stopped first) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    role: String,
    servers: Mutex<Vec<Server>>,
}

impl Netns {
    /// Create `pft-<pid>-<counter>-<role>`, bring `lo` up and pin the sysctls of `opts`.
    ///
    /// `role` is a short label (`gw`, `be1`, ...) of lowercase letters, digits and `-`.
    pub fn create(role: &str, opts: NetnsOptions) -> Result<Netns, NetlabError> {
        if role.is_empty()
            || role.len() > 24
            || !role
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(NetlabError::Invalid(format!(
                "netns role {role:?}: use 1-24 of [a-z0-9-]"
            )));
        }
        if opts.rp_filter > 2 {
            return Err(NetlabError::Invalid(format!(
                "rp_filter {} (0, 1 or 2)",
                opts.rp_filter
            )));
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        // From here on, Drop removes the namespace if anything below fails.
        let ns = Netns {
            name,
            role: role.to_string(),
            servers: Mutex::new(Vec::new()),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.pin_sysctls(opts)?;
        Ok(ns)
    }

    /// The namespace's name, for `ip netns exec NAME ...` / `ip -n NAME ...`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The short role it was created with (`gw`, `be1`, ...).
    pub fn role(&self) -> &str {
        &self.role
    }

    /// `/run/netns/NAME`, the bind mount that keeps the namespace alive.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    fn pin_sysctls(&self, opts: NetnsOptions) -> Result<(), NetlabError> {
        let rp = opts.rp_filter.to_string();
        let v6off = if opts.ipv6 { "0" } else { "1" };
        let mut keys: Vec<(String, &str)> = vec![("net.ipv4.ip_forward".into(), "0")];
        for c in ["all", "default", "lo"] {
            keys.push((format!("net.ipv4.conf.{c}.rp_filter"), &rp));
            keys.push((format!("net.ipv4.conf.{c}.route_localnet"), "0"));
            keys.push((format!("net.ipv4.conf.{c}.accept_local"), "0"));
            keys.push((format!("net.ipv6.conf.{c}.disable_ipv6"), v6off));
        }
        if opts.ipv6 {
            keys.push(("net.ipv6.conf.all.forwarding".into(), "0"));
        }
        let refs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.set_sysctls(&refs)?;
        if opts.conntrack_acct {
            // Best effort: absent unless nf_conntrack is loaded; never load modules for it.
            let _ = self.set_sysctls(&[("net.netfilter.nf_conntrack_acct", "1")]);
        }
        Ok(())
    }

    /// Write sysctls inside this namespace (keys in dotted or slash form).
    ///
    /// Written from a thread that entered the namespace, so the root namespace cannot be hit.
    pub fn set_sysctls(&self, kv: &[(&str, &str)]) -> Result<(), NetlabError> {
        self.run_in(|| {
            for (k, v) in kv {
                let path = sysctl_path(k);
                std::fs::write(&path, v)
                    .map_err(|e| NetlabError::io(format!("{} ({k}={v})", path.display()), e))?;
            }
            Ok(())
        })?
    }

    /// Read one sysctl inside this namespace; `None` when the key does not exist.
    pub fn sysctl(&self, key: &str) -> Result<Option<String>, NetlabError> {
        let path = sysctl_path(key);
        self.run_in(move || match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NetlabError::io(path.display().to_string(), e)),
        })?
    }

    /// `ip -n NAME ARGS...`; stdout on success.
    pub fn ip(&self, args: &[&str]) -> Result<String, NetlabError> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Run `cmd args...` inside the namespace (`ip netns exec NAME cmd args...`).
    /// Ok(stdout) when it exits 0, otherwise an error carrying its status and stderr.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Result<String, NetlabError> {
        let out = self.exec_output(cmd, args)?;
        check(&format!("{cmd} {}", args.join(" ")), out)
    }

    /// Like [`exec`](Self::exec) but returns the raw output whatever the exit status, for
    /// commands whose failure is an answer (`iptables -C`, `pfstate plan`, ...).
    pub fn exec_output(&self, cmd: &str, args: &[&str]) -> Result<Output, NetlabError> {
        Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args)
            .output()
            .map_err(|e| NetlabError::io(format!("ip netns exec {} {cmd}", self.name), e))
    }

    /// Run `f` on a fresh thread that has entered this namespace (`setns(CLONE_NEWNET)`).
    ///
    /// A fresh thread because setns changes the calling thread for good; the thread ends with
    /// `f`, so no other code ever runs in the namespace by accident. A panic in `f` is
    /// propagated.
    pub fn run_in<F, T>(&self, f: F) -> Result<T, NetlabError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let fd = self.open()?;
        let name = self.name.as_str();
        std::thread::scope(|s| {
            let h = s.spawn(move || {
                enter(&fd, name)?;
                Ok(f())
            });
            match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Open `/run/netns/NAME` (for [`enter`] on threads that outlive a call).
    pub(crate) fn open(&self) -> Result<OwnedFd, NetlabError> {
        let path = self.path();
        File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| NetlabError::io(path.display().to_string(), e))
    }

    /// Start an echo server for `proto` on `port` (all addresses), answering as `name`.
    /// It is listening when this returns and stops when the namespace is dropped.
    pub fn serve(&self, name: &str, proto: Proto, port: u16) -> Result<(), NetlabError> {
        let server = Server::start(self.open()?, self.name().to_string(), name, proto, port)?;
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(server);
        Ok(())
    }

    /// Stop every server started with [`serve`](Self::serve) (all signalled first, then joined,
    /// so stopping n servers costs one poll interval, not n).
    pub fn stop_servers(&self) {
        let servers: Vec<Server> =
            std::mem::take(&mut *self.servers.lock().unwrap_or_else(|p| p.into_inner()));
        for s in &servers {
            s.signal_stop();
        }
        for s in servers {
            s.join();
        }
    }

    /// Tell this namespace's servers to stop without waiting for them; a lab signals all its
    /// namespaces first so tearing it down costs one poll interval in total.
    pub fn signal_servers(&self) {
        for s in self
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            s.signal_stop();
        }
    }

    /// Delete namespaces `pft-<pid>-...` whose process no longer exists (left by a run that
    /// was killed before its destructors ran). Returns the names removed. Never touches a
    /// namespace without the prefix or one whose process is alive.
    pub fn sweep_stale() -> Result<Vec<String>, NetlabError> {
        let list = run("ip", &["netns", "list"])?;
        let mut removed = Vec::new();
        for line in list.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid == std::process::id() || PathBuf::from(format!("/proc/{pid}")).exists() {
                continue;
            }
            run("ip", &["netns", "del", name])?;
            removed.push(name.to_string());
        }
        Ok(removed)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.stop_servers();
        // Guard: only ever delete a namespace this module named.
        if !self.name.starts_with(PREFIX) {
            return;
        }
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("netlab: could not delete netns {}: {e}", self.name);
        }
    }
}

fn sysctl_path(key: &str) -> PathBuf {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    PathBuf::from("/proc/sys").join(rel.trim_start_matches('/'))
}

/// Run a program (never through a shell); Ok(stdout) on exit 0.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, NetlabError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetlabError::io(program.to_string(), e))?;
    check(&format!("{program} {}", args.join(" ")), out)
}

fn check(command: &str, out: Output) -> Result<String, NetlabError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetlabError::Command {
            command: command.to_string(),
            message: format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ),
        })
    }
}
