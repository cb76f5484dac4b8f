//! The real host: every trait of [`Host`] implemented on this machine (or, for files and the
//! service manager, under `--root DIR`). `main` builds one and passes it to `cmd::run`.

use std::sync::{Arc, Mutex};

use crate::error::HostError;
use crate::host::binary::RunningBinary;
use crate::host::conntrack::ConntrackTool;
use crate::host::facts::IpTool;
use crate::host::fs::{Root, RootFiles};
use crate::host::iptables::LiveNetfilter;
use crate::host::nft_tables::NftList;
use crate::host::sysctl::ProcSys;
use crate::host::systemd::{DbusServiceManager, OfflineServiceManager};
use crate::host::{Host, ServiceManager};

/// The adapters of this machine, owned; [`LiveHost::host`] lends them as a [`Host`].
pub struct LiveHost {
    netfilter: LiveNetfilter,
    services: LiveServices,
    files: RootFiles,
    ip: IpTool,
}

impl LiveHost {
    /// The machine, with files and the service manager under `root`.
    pub fn new(root: &Root) -> LiveHost {
        LiveHost {
            netfilter: LiveNetfilter::new(root.clone()),
            services: LiveServices {
                root: root.clone(),
                dbus: Mutex::new(None),
            },
            files: RootFiles { root: root.clone() },
            ip: IpTool::default(),
        }
    }

    pub fn host(&self) -> Host<'_> {
        Host {
            netfilter: &self.netfilter,
            nft: &NftList,
            sysctl: &ProcSys,
            services: &self.services,
            conntrack: &ConntrackTool,
            files: &self.files,
            addresses: &self.ip,
            facts: &self.ip,
            binary: &RunningBinary,
        }
    }
}

/// systemd over D-Bus, connected on first use (the boot apply never asks it: it runs before
/// dbus.service, and a connect to the socket-activated bus would wait for it); under
/// `--root DIR` the offline manager, which edits the `[Install]` symlinks there.
struct LiveServices {
    root: Root,
    dbus: Mutex<Option<Arc<DbusServiceManager>>>,
}

impl LiveServices {
    /// Run `f` on the manager; a failed connect is tried again by the next call.
    fn with<T>(
        &self,
        f: impl FnOnce(&dyn ServiceManager) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        if let Some(dir) = &self.root.dir {
            return f(&OfflineServiceManager::new(dir.clone()));
        }
        let mut slot = self.dbus.lock().unwrap_or_else(|e| e.into_inner());
        let manager = match &*slot {
            Some(m) => Arc::clone(m),
            None => {
                let m = Arc::new(DbusServiceManager::system()?);
                *slot = Some(Arc::clone(&m));
                m
            }
        };
        drop(slot);
        f(&*manager)
    }
}

impl ServiceManager for LiveServices {
    fn reload(&self) -> Result<(), HostError> {
        self.with(|m| m.reload())
    }
    fn enable(&self, unit: &str) -> Result<(), HostError> {
        self.with(|m| m.enable(unit))
    }
    fn disable(&self, unit: &str) -> Result<(), HostError> {
        self.with(|m| m.disable(unit))
    }
    fn is_enabled(&self, unit: &str) -> Result<bool, HostError> {
        self.with(|m| m.is_enabled(unit))
    }
    fn restart(&self, unit: &str) -> Result<(), HostError> {
        self.with(|m| m.restart(unit))
    }
    fn start_no_wait(&self, unit: &str) -> Result<(), HostError> {
        self.with(|m| m.start_no_wait(unit))
    }
    fn stop_no_wait(&self, unit: &str) -> Result<(), HostError> {
        self.with(|m| m.stop_no_wait(unit))
    }
    fn restart_no_wait(&self, unit: &str) -> Result<(), HostError> {
        self.with(|m| m.restart_no_wait(unit))
    }
    fn active_state(&self, unit: &str) -> Result<String, HostError> {
        self.with(|m| m.active_state(unit))
    }
    fn start_timer(
        &self,
        stem: &str,
        seconds: u64,
        argv: &[String],
        description: &str,
    ) -> Result<String, HostError> {
        self.with(|m| m.start_timer(stem, seconds, argv, description))
    }
    fn stop_timer(&self, timer: &str) -> Result<(), HostError> {
        self.with(|m| m.stop_timer(timer))
    }
}
