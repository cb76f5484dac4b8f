//! The real [`Sysctl`]: read-compare-write under /proc/sys.

use std::fs;
use std::io::ErrorKind;

use crate::error::HostError;
use crate::host::Sysctl;

pub struct ProcSys;

impl Sysctl for ProcSys {
    fn get(&self, key: &str) -> Result<Option<String>, HostError> {
        let path = format!("/proc/sys/{key}");
        match fs::read_to_string(&path) {
            Ok(v) => Ok(Some(v.trim().to_string())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HostError::io(path, e)),
        }
    }

    fn set(&self, key: &str, value: &str) -> Result<(), HostError> {
        let path = format!("/proc/sys/{key}");
        fs::write(&path, format!("{value}\n")).map_err(|e| HostError::io(path, e))
    }

    fn interfaces(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir("/proc/sys/net/ipv4/conf") else {
            return Vec::new();
        };
        dir.flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    }
}
