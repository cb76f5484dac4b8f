//! The side effects pfstate has on a machine, each behind a small trait.
//!
//! Everything before `apply` is pure; `apply`, `plan` and `status` reach the machine only
//! through these traits; the real implementations live in the files of this folder:
//!
//! - [`iptables`] - `iptables-save` / `iptables-restore` (with [`save_cache`], keyed by the
//!   nf_tables generation that [`nfnetlink`] reads, and [`nft_tables`], the nf_tables table list);
//! - [`sysctl`] - the runtime parameters under /proc/sys;
//! - [`systemd`] - the service manager over D-Bus; [`systemd_offline`] - under `--root`;
//! - [`fs`] - the root directory, atomic file writes, the run lock, reading a managed file;
//! - [`binary`] - the binary the boot unit runs, and whether that is safe;
//! - [`conntrack`] - the `conntrack` tool (list, delete);
//! - [`transient`], [`deadline`] - running the revert of `apply --confirm` at its deadline;
//! - [`nft_events`] - nf_tables ruleset events (what `pfstate watch` waits on);
//! - [`firewalld`] - firewalld's D-Bus announcements (`Reloaded`, start, stop), and
//!   [`firewalld_zone`], its zones' permanent configuration;
//! - [`facts`] - interfaces, addresses and routes, read for the warnings of plan and apply;
//! - [`sysctl_before`] - the record of what each sysctl held before pfstate changed it;
//! - [`prefetch`] - both families' saves read while the file is parsed, and the save cache.

pub mod binary;
pub mod confine;
pub mod conntrack;
pub mod deadline;
pub mod facts;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod firewalld;
pub mod firewalld_zone;
pub mod fs;
pub mod iptables;
pub mod live;
pub mod lock;
pub mod nfnetlink;
pub mod nft_events;
pub mod nft_tables;
pub mod prefetch;
pub mod save_cache;
pub mod sysctl;
pub mod sysctl_before;
pub mod systemd;
pub mod systemd_offline;
pub mod transient;

use std::io;
use std::net::IpAddr;

use crate::error::HostError;
use crate::model::Family;

/// The machine as pfstate reaches it: every read and write of a command goes through one of
/// these. `main` builds the real one ([`live::LiveHost`]); tests build fakes.
#[derive(Clone, Copy)]
pub struct Host<'a> {
    pub netfilter: &'a dyn Netfilter,
    pub nft: &'a dyn NftTables,
    pub sysctl: &'a dyn Sysctl,
    pub services: &'a dyn ServiceManager,
    pub conntrack: &'a dyn Conntrack,
    pub files: &'a dyn Files,
    pub addresses: &'a dyn LocalAddresses,
    pub facts: &'a dyn InterfaceFacts,
    pub binary: &'a dyn Binary,
}

/// The kernel's packet filter, as `iptables-save` / `iptables-restore` see it.
pub trait Netfilter {
    /// The canonical text of `ip(6)tables-save` for one table (`-t TABLE`; `""`: all tables).
    fn save(&self, family: Family, table: &str) -> Result<String, HostError>;
    /// The same with packet and byte counters (`-c`): `[packets:bytes] -A ...` lines.
    fn save_counters(&self, family: Family, table: &str) -> Result<String, HostError>;
    /// Feed a payload to `ip(6)tables-restore --noflush --wait`. The payload may hold several
    /// tables; each `COMMIT` is atomic on its own.
    fn restore(&self, family: Family, payload: &str) -> Result<(), HostError>;
    /// Start reading both families' full saves now, for the next `save(family, "")` of each:
    /// they run while the caller parses and renders. Only while holding the run lock (the
    /// state read must be the state the plan is made against). Nothing by default.
    fn prefetch(&self) {}
    /// The other iptables backend (legacy when this is nf_tables, or the reverse), when its
    /// tools are installed: pfstate's chains an earlier run left there, before the host's
    /// rules moved, still filter packets. `None` by default.
    fn other_backend(&self) -> Option<&dyn Netfilter> {
        None
    }
    /// The backend's name, for messages (`iptables-legacy`, `iptables-nft`).
    fn backend_name(&self) -> String {
        "iptables".into()
    }
    /// Whether the rules live in iptables-legacy, whose changes no nf_tables event announces.
    fn is_legacy(&self) -> bool {
        false
    }
}

impl Host<'_> {
    /// Start the reads every plan makes (both families' saves, interfaces, addresses and
    /// routes), so that they run while the file is parsed and rendered. Only while holding the
    /// run lock: the state read must be the state the plan is made against.
    pub fn prefetch(&self) {
        self.netfilter.prefetch();
        self.facts.prefetch();
    }
}

/// The nf_tables tables of this network namespace (`nft list tables` text), or `None` when
/// they cannot be listed: tables `iptables-save` cannot show still filter packets.
pub trait NftTables {
    fn list(&self) -> Option<String>;
}

/// Interfaces, addresses and routes of this network namespace: read for warnings only, never
/// for rendering (the rules are a function of the file alone).
pub trait InterfaceFacts {
    /// `None` when they cannot be read.
    fn read(&self) -> Option<facts::Facts>;
    /// Start reading the facts and the local addresses now, for the next [`Self::read`] and
    /// [`LocalAddresses::local_addresses`]: they run while the caller parses and renders.
    /// Nothing by default.
    fn prefetch(&self) {}
}

/// The addresses configured on this network namespace's interfaces.
pub trait LocalAddresses {
    fn local_addresses(&self) -> Vec<IpAddr>;
}

/// The connection tracking table. `Err` means the tool is missing or cannot run.
pub trait Conntrack {
    /// The entries of one family, one per line (`conntrack -L`); only DNATed ones with
    /// `dst_nat_only`.
    fn list(&self, family: Family, dst_nat_only: bool) -> std::io::Result<String>;
    /// Delete the entries of one protocol whose original destination is `port` (and `address`).
    fn delete(&self, family: Family, proto: &str, port: u16, to: Option<IpAddr>) -> io::Result<()>;
}

/// The files pfstate owns, by their path on the target system (`/etc/...`).
pub trait Files {
    /// The content, or `None` when the file does not exist.
    fn read(&self, target: &str) -> Result<Option<String>, HostError>;
    /// Replace the content atomically and durably.
    fn write(&self, target: &str, content: &str) -> Result<(), HostError>;
    /// Remove the file; `false` when it did not exist.
    fn remove(&self, target: &str) -> Result<bool, HostError>;
}

/// The pfstate binary the boot unit runs.
pub trait Binary {
    /// Its path, as the unit names it.
    fn unit_binary(&self) -> String;
    /// Why running it as root at every boot is unsafe, if it is.
    fn problem(&self, binary: &str) -> Option<String>;
    /// Start `argv` (this binary) detached, in its own session, without waiting for it: the
    /// revert of `apply --confirm` where no service manager can run it. Returns its pid.
    fn spawn_detached(&self, argv: &[String]) -> Result<u32, HostError>;
}

/// Runtime kernel parameters under /proc/sys.
pub trait Sysctl {
    /// The current value, or `None` when the key does not exist (an interface not yet present).
    fn get(&self, key: &str) -> Result<Option<String>, HostError>;
    fn set(&self, key: &str, value: &str) -> Result<(), HostError>;
    /// The IPv4 interfaces that have sysctls (`/proc/sys/net/ipv4/conf/*`, with `all`,
    /// `default` and `lo`); empty when the directory cannot be read.
    fn interfaces(&self) -> Vec<String>;
}

/// The service manager that makes the state come back at boot.
pub trait ServiceManager {
    /// `systemctl daemon-reload`.
    fn reload(&self) -> Result<(), HostError>;
    /// Create the `[Install]` symlinks of the unit (`systemctl enable`).
    fn enable(&self, unit: &str) -> Result<(), HostError>;
    /// Remove them (`systemctl disable`).
    fn disable(&self, unit: &str) -> Result<(), HostError>;
    /// Whether the unit is enabled (its `[Install]` symlinks exist).
    fn is_enabled(&self, unit: &str) -> Result<bool, HostError>;
    /// `systemctl restart` and wait for the job; a failed start is an error.
    ///
    /// Defaulted (as an error) so existing fakes keep compiling; the real managers implement it.
    fn restart(&self, unit: &str) -> Result<(), HostError> {
        Err(HostError::Systemd(format!(
            "cannot restart {unit}: not supported by this service manager"
        )))
    }
    /// Queue a start of the unit without waiting for it: used right after the first apply so
    /// the oneshot is active (and `systemctl reload` works) before the next boot. Waiting
    /// would deadlock, since the unit's own apply waits for this run's lock.
    fn start_no_wait(&self, _unit: &str) -> Result<(), HostError> {
        Ok(())
    }
    /// Queue a stop of the unit without waiting (a watcher whose unit is being removed).
    fn stop_no_wait(&self, _unit: &str) -> Result<(), HostError> {
        Ok(())
    }
    /// Queue a restart without waiting (a watcher whose unit file changed).
    fn restart_no_wait(&self, _unit: &str) -> Result<(), HostError> {
        Ok(())
    }
    /// The unit's `ActiveState` (`active`, `inactive`, `failed`, ...); `unknown` by default.
    fn active_state(&self, _unit: &str) -> Result<String, HostError> {
        Ok("unknown".to_string())
    }
    /// Run `argv` once, `seconds` from now, from a transient `STEM.timer` of the service
    /// manager (outside any session); returns the timer's name. Not supported by default
    /// (the offline manager): the caller then starts a detached process.
    fn start_timer(
        &self,
        stem: &str,
        _seconds: u64,
        _argv: &[String],
        _description: &str,
    ) -> Result<String, HostError> {
        Err(HostError::Systemd(format!(
            "{stem}.timer: no transient timers without a running systemd"
        )))
    }
    /// Stop a timer [`start_timer`](ServiceManager::start_timer) started; gone is fine.
    fn stop_timer(&self, _timer: &str) -> Result<(), HostError> {
        Ok(())
    }
}
