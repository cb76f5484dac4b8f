//! The side effects pfstate has on a machine, each behind a small trait.
//!
//! Everything before `apply` is pure; `apply`, `plan` and `status` reach the machine only
//! through these traits; the real implementations live in the files of this folder:
//!
//! - [`iptables`] - `iptables-save` / `iptables-restore` (with [`save_cache`], keyed by the
//!   nf_tables generation that [`nfnetlink`] reads, and [`nft_tables`], the nf_tables table list);
//! - [`sysctl`] - the runtime parameters under /proc/sys;
//! - [`sysctl_before`] - what each sysctl held before pfstate changed it (persisted);
//! - [`systemd`] - the service manager over D-Bus, or offline under `--root`;
//! - [`fs`] - the root directory, atomic file writes, the run lock, reading a managed file;
//! - [`binary`] - the binary the boot unit runs, and whether that is safe;
//! - [`conntrack`] - the `conntrack` tool (list, delete);
//! - [`facts`] - interfaces, addresses and routes, read for the warnings of plan and apply.

pub mod binary;
pub mod conntrack;
pub mod facts;
pub mod fs;
pub mod iptables;
pub mod nfnetlink;
pub mod nft_tables;
pub mod save_cache;
pub mod sysctl;
pub mod sysctl_before;
pub mod systemd;

use crate::error::HostError;
use crate::model::Family;

/// The machine as pfstate reaches it.
pub struct Host<'a> {
    pub netfilter: &'a dyn Netfilter,
    pub sysctl: &'a dyn Sysctl,
    pub memory: &'a dyn SysctlMemory,
}

/// The kernel's packet filter, as `iptables-save` / `iptables-restore` see it.
pub trait Netfilter {
    /// The canonical text of `ip(6)tables-save` for one table (`-t TABLE`).
    fn save(&self, family: Family, table: &str) -> Result<String, HostError>;
    /// Feed a payload to `ip(6)tables-restore --noflush --wait`. The payload may hold several
    /// tables; each `COMMIT` is atomic on its own.
    fn restore(&self, family: Family, payload: &str) -> Result<(), HostError>;
}

/// Runtime kernel parameters under /proc/sys.
pub trait Sysctl {
    /// The current value, or `None` when the key does not exist (an interface not yet present).
    fn get(&self, key: &str) -> Result<Option<String>, HostError>;
    fn set(&self, key: &str, value: &str) -> Result<(), HostError>;
}

/// What each sysctl held before pfstate first changed it (key: path below /proc/sys).
pub trait SysctlMemory {
    fn load(&self) -> Result<sysctl_before::Record, HostError>;
    /// Replace the record; an empty one removes it.
    fn store(&self, record: &sysctl_before::Record) -> Result<(), HostError>;
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
    /// The unit's `ActiveState` (`active`, `inactive`, `failed`, ...); `unknown` by default.
    fn active_state(&self, _unit: &str) -> Result<String, HostError> {
        Ok("unknown".to_string())
    }
}
