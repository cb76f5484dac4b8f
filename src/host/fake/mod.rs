//! An in-memory machine implementing every trait of [`Host`], for tests that run as any user.
//!
//! Every write (each `COMMIT` of a restore, each sysctl set, each file write or removal, each
//! service-manager call that changes something) is a numbered step of one shared [`Faults`]
//! log, and a test can make any one step fail: that is how rollback is tested at every point.
//! [`FakeHost::state`] is everything a command may change, for "as before" comparisons.
//! `tests/it/engine.rs` runs the same scenarios against this fake and a real network
//! namespace, so the kernel judges the fake.

pub mod backends;
mod netfilter;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::error::HostError;
use crate::host::facts::Facts;
use crate::host::{
    Binary, Conntrack, Files, Host, InterfaceFacts, LocalAddresses, NftTables, ServiceManager,
    Sysctl,
};
use crate::model::Family;

pub use netfilter::FakeNetfilter;

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The log of write steps shared by the fakes of one host, and the step to fail.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<FaultLog>>);

#[derive(Debug, Default)]
struct FaultLog {
    steps: Vec<String>,
    fail_at: Option<usize>,
    /// Steps whose name contains one of these fail every time (a read-only or full file
    /// system, a broken tool), from the given step index on.
    fail_matching: Vec<(String, usize)>,
    fail_from: Option<usize>,
}

impl Faults {
    /// Record a write step; fails it when it is the one chosen by [`Faults::fail_at`].
    pub fn step(&self, name: String) -> Result<(), HostError> {
        let mut log = locked(&self.0);
        let n = log.steps.len();
        log.steps.push(name.clone());
        let persistent = log
            .fail_matching
            .iter()
            .any(|(part, from)| n >= *from && name.contains(part.as_str()));
        let cut = log.fail_from.is_some_and(|f| n >= f);
        if log.fail_at == Some(n) || persistent || cut {
            return Err(HostError::Command {
                program: "fake host".into(),
                message: format!("injected failure at step {n} ({name})"),
            });
        }
        Ok(())
    }

    /// Make the step with this index (0-based, counted over the host's life) fail.
    pub fn fail_at(&self, n: usize) {
        locked(&self.0).fail_at = Some(n);
    }

    /// From now on, make every step whose name contains `part` fail, rollback steps too
    /// (`write /etc/pfstate`: a read-only /etc/pfstate; `restore ipv6`: a broken tool).
    pub fn fail_matching(&self, part: &str) {
        let mut log = locked(&self.0);
        let from = log.steps.len();
        log.fail_matching.push((part.to_string(), from));
    }

    /// Like [`Faults::fail_matching`], from step `from` (0-based) on.
    pub fn fail_matching_from(&self, part: &str, from: usize) {
        locked(&self.0).fail_matching.push((part.to_string(), from));
    }

    /// No more injected failures (the host came back after a crash, the disk was freed).
    pub fn clear(&self) {
        let mut log = locked(&self.0);
        log.fail_at = None;
        log.fail_matching.clear();
    }

    /// Make every step from this index on fail: the host stays as the steps before it left
    /// it (with [`Faults::fail_at`], also the steps of a rollback), so a test can look at every
    /// intermediate state a command goes through.
    pub fn fail_from(&self, n: usize) {
        locked(&self.0).fail_from = Some(n);
    }

    /// Every write step so far, in order.
    pub fn steps(&self) -> Vec<String> {
        locked(&self.0).steps.clone()
    }
}

/// /proc/sys as a map from key (`net/ipv4/ip_forward`) to value.
#[derive(Debug, Default)]
pub struct FakeSysctl {
    values: Mutex<BTreeMap<String, String>>,
    faults: Faults,
}

impl FakeSysctl {
    /// Make a key exist (writes to a missing key fail, as under /proc/sys).
    pub fn insert(&self, key: &str, value: &str) {
        locked(&self.values).insert(key.to_string(), value.to_string());
    }
    pub fn values(&self) -> BTreeMap<String, String> {
        locked(&self.values).clone()
    }
}

impl Sysctl for FakeSysctl {
    fn get(&self, key: &str) -> Result<Option<String>, HostError> {
        Ok(locked(&self.values).get(key).cloned())
    }
    /// As the kernel does, a change of `net.ipv4.ip_forward` also sets every IPv4
    /// `conf/*/forwarding` (all, default and each interface) to the new value.
    fn set(&self, key: &str, value: &str) -> Result<(), HostError> {
        self.faults.step(format!("sysctl {key}"))?;
        let mut values = locked(&self.values);
        let Some(old) = values.insert(key.to_string(), value.to_string()) else {
            values.remove(key);
            let e = std::io::Error::from(std::io::ErrorKind::NotFound);
            return Err(HostError::io(format!("/proc/sys/{key}"), e));
        };
        if key == "net/ipv4/ip_forward" && old.trim() != value.trim() {
            for (k, v) in values.iter_mut() {
                if k.starts_with("net/ipv4/conf/") && k.ends_with("/forwarding") {
                    *v = value.to_string();
                }
            }
        }
        Ok(())
    }
    fn interfaces(&self) -> Vec<String> {
        let values = locked(&self.values);
        let names: BTreeSet<&str> = values
            .keys()
            .filter_map(|k| k.strip_prefix("net/ipv4/conf/")?.split('/').next())
            .collect();
        names.into_iter().map(str::to_string).collect()
    }
}

/// The managed files, by target path.
#[derive(Debug, Default)]
pub struct FakeFiles {
    files: Mutex<BTreeMap<String, String>>,
    faults: Faults,
}

impl FakeFiles {
    pub fn all(&self) -> BTreeMap<String, String> {
        locked(&self.files).clone()
    }
}

impl Files for FakeFiles {
    fn read(&self, target: &str) -> Result<Option<String>, HostError> {
        Ok(locked(&self.files).get(target).cloned())
    }
    fn write(&self, target: &str, content: &str) -> Result<(), HostError> {
        self.faults.step(format!("write {target}"))?;
        locked(&self.files).insert(target.to_string(), content.to_string());
        Ok(())
    }
    fn remove(&self, target: &str) -> Result<bool, HostError> {
        self.faults.step(format!("remove {target}"))?;
        Ok(locked(&self.files).remove(target).is_some())
    }
}

/// Enabled units, daemon reloads, and transient timers (name -> the command they run).
#[derive(Debug, Default)]
pub struct FakeServices {
    enabled: Mutex<BTreeSet<String>>,
    timers: Mutex<BTreeMap<String, Vec<String>>>,
    faults: Faults,
}

impl FakeServices {
    pub fn enabled(&self) -> BTreeSet<String> {
        locked(&self.enabled).clone()
    }
    /// The timers started and not stopped; a test "fires" one by running its command.
    pub fn timers(&self) -> BTreeMap<String, Vec<String>> {
        locked(&self.timers).clone()
    }
}

impl ServiceManager for FakeServices {
    fn reload(&self) -> Result<(), HostError> {
        self.faults.step("daemon-reload".into())
    }
    fn enable(&self, unit: &str) -> Result<(), HostError> {
        self.faults.step(format!("enable {unit}"))?;
        locked(&self.enabled).insert(unit.to_string());
        Ok(())
    }
    fn disable(&self, unit: &str) -> Result<(), HostError> {
        self.faults.step(format!("disable {unit}"))?;
        locked(&self.enabled).remove(unit);
        Ok(())
    }
    fn is_enabled(&self, unit: &str) -> Result<bool, HostError> {
        Ok(locked(&self.enabled).contains(unit))
    }
    fn start_no_wait(&self, unit: &str) -> Result<(), HostError> {
        self.faults.step(format!("start {unit}"))
    }
    fn start_timer(
        &self,
        stem: &str,
        _seconds: u64,
        argv: &[String],
        _description: &str,
    ) -> Result<String, HostError> {
        let timer = format!("{stem}.timer");
        self.faults.step(format!("start {timer}"))?;
        locked(&self.timers).insert(timer.clone(), argv.to_vec());
        Ok(timer)
    }
    fn stop_timer(&self, timer: &str) -> Result<(), HostError> {
        locked(&self.timers).remove(timer);
        Ok(())
    }
}

/// A conntrack delete asked for: family, protocol, port, address.
pub type Deleted = (Family, String, u16, Option<IpAddr>);

/// Conntrack entries (`conntrack -L` lines) per family; `None`: the tool is missing.
#[derive(Debug, Default)]
pub struct FakeConntrack {
    pub entries: Mutex<Option<Vec<(Family, String)>>>,
    /// Every delete asked for: (family, proto, port, address).
    pub deleted: Mutex<Vec<Deleted>>,
}

impl Conntrack for FakeConntrack {
    fn list(&self, family: Family, _dst_nat_only: bool) -> std::io::Result<String> {
        let entries = locked(&self.entries);
        let entries = entries.as_ref().ok_or(std::io::ErrorKind::NotFound)?;
        let lines = entries.iter().filter(|(f, _)| *f == family);
        Ok(lines.map(|(_, l)| format!("{l}\n")).collect())
    }
    fn delete(&self, family: Family, proto: &str, port: u16, to: Option<IpAddr>) -> io::Result<()> {
        if locked(&self.entries).is_none() {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        locked(&self.deleted).push((family, proto.to_string(), port, to));
        Ok(())
    }
}

/// Facts about the machine: addresses, nf_tables tables, routes, the binary.
#[derive(Debug, Default)]
pub struct FakeFacts {
    pub addresses: Vec<IpAddr>,
    pub nft_tables: Option<String>,
    /// Interfaces, addresses and routes (`None`: they cannot be read).
    pub interfaces: Option<Facts>,
    /// Detached processes started ([`Binary::spawn_detached`]), by their command.
    pub spawned: Mutex<Vec<Vec<String>>>,
    /// Make [`Binary::spawn_detached`] fail.
    pub spawn_fails: bool,
}

impl LocalAddresses for FakeFacts {
    fn local_addresses(&self) -> Vec<IpAddr> {
        self.addresses.clone()
    }
}

impl NftTables for FakeFacts {
    fn list(&self) -> Option<String> {
        self.nft_tables.clone()
    }
}

impl InterfaceFacts for FakeFacts {
    fn read(&self) -> Option<Facts> {
        self.interfaces.clone()
    }
}

impl Binary for FakeFacts {
    fn unit_binary(&self) -> String {
        "/usr/sbin/pfstate".into()
    }
    fn problem(&self, _binary: &str) -> Option<String> {
        None
    }
    fn spawn_detached(&self, argv: &[String]) -> Result<u32, HostError> {
        if self.spawn_fails {
            return Err(HostError::Command {
                program: argv.first().cloned().unwrap_or_default(),
                message: "injected failure: cannot start a process".into(),
            });
        }
        let mut spawned = locked(&self.spawned);
        spawned.push(argv.to_vec());
        Ok(spawned.len() as u32)
    }
}

/// Everything a command may change on the fake host, comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeState {
    /// `iptables-save` of IPv4 and IPv6.
    pub dumps: [String; 2],
    pub sysctls: BTreeMap<String, String>,
    pub files: BTreeMap<String, String>,
    pub enabled: BTreeSet<String>,
}

/// A whole fake machine; [`FakeHost::host`] lends it as a [`Host`].
#[derive(Debug)]
pub struct FakeHost {
    pub faults: Faults,
    pub netfilter: FakeNetfilter,
    pub sysctl: FakeSysctl,
    pub files: FakeFiles,
    pub services: FakeServices,
    pub conntrack: FakeConntrack,
    pub facts: FakeFacts,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost::new()
    }
}

impl FakeHost {
    /// An empty machine whose fakes share one fault log.
    pub fn new() -> FakeHost {
        let faults = Faults::default();
        FakeHost {
            netfilter: FakeNetfilter::new(faults.clone()),
            sysctl: FakeSysctl {
                values: Mutex::default(),
                faults: faults.clone(),
            },
            files: FakeFiles {
                files: Mutex::default(),
                faults: faults.clone(),
            },
            services: FakeServices {
                enabled: Mutex::default(),
                timers: Mutex::default(),
                faults: faults.clone(),
            },
            conntrack: FakeConntrack::default(),
            facts: FakeFacts::default(),
            faults,
        }
    }

    pub fn host(&self) -> Host<'_> {
        Host {
            netfilter: &self.netfilter,
            nft: &self.facts,
            sysctl: &self.sysctl,
            services: &self.services,
            conntrack: &self.conntrack,
            files: &self.files,
            addresses: &self.facts,
            facts: &self.facts,
            binary: &self.facts,
        }
    }

    pub fn state(&self) -> FakeState {
        FakeState {
            dumps: Family::ALL.map(|f| self.netfilter.dump(f, "", false)),
            sysctls: self.sysctl.values(),
            files: self.files.all(),
            enabled: self.services.enabled(),
        }
    }
}
