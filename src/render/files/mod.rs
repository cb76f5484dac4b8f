//! The files pfstate owns on a host (SPEC "Files pfstate owns"), rendered from the state: the
//! persisted state, the sysctl.d file ([`sysctl_d`]), the boot unit ([`unit`]) and the units
//! that keep the rules in place after boot ([`companions`]). They are written with rollback by
//! `apply::journal`.

pub mod companions;
pub mod sysctl_d;
pub mod unit;

use crate::error::HostError;
use crate::model::{Model, Sysctl};
use crate::render::Desired;
use sysctl_d::{SYSCTL_CONF_PATH, SysctlEntry};
use unit::{STATE_PATH, UNIT_PATH, UnitParams};

/// A file as pfstate wants it: `None` content means "must not exist".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedFile {
    /// The path on the target system (`/etc/...`), for messages and diffs.
    pub target: &'static str,
    pub content: Option<String>,
}

/// The three files for a desired state. `source` is the YAML text as given (persisted verbatim,
/// so comments survive and the boot unit applies exactly what was reviewed); `binary` is the
/// pfstate the boot unit runs.
pub fn desired_files(
    model: &Model,
    desired: &Desired,
    source: &str,
    binary: &str,
) -> Result<Vec<ManagedFile>, HostError> {
    let sysctl = sysctl_conf(desired)?;
    if let Some(problem) = unit::exec_path_problem(binary) {
        return Err(HostError::Command {
            program: "pfstate".into(),
            message: problem,
        });
    }
    let unit = unit::render_unit(&UnitParams {
        binary: binary.to_string(),
        state_path: STATE_PATH.to_string(),
        host_label: model.host.clone(),
    });
    Ok(vec![
        ManagedFile {
            target: STATE_PATH,
            content: Some(source.to_string()),
        },
        ManagedFile {
            target: SYSCTL_CONF_PATH,
            content: sysctl,
        },
        ManagedFile {
            target: UNIT_PATH,
            content: Some(unit),
        },
    ])
}

/// The sysctl.d file: every sysctl the state needs except `route_localnet`, which must never
/// be on without its guard rule: systemd-sysctl runs before pfstate.service, so the boot unit
/// sets it itself, after the rules (a comment in the file says so).
fn sysctl_conf(desired: &Desired) -> Result<Option<String>, HostError> {
    let (guarded, entries): (Vec<&Sysctl>, Vec<&Sysctl>) = desired
        .sysctls
        .iter()
        .partition(|s| s.key.0.last().is_some_and(|c| c == "route_localnet"));
    if entries.is_empty() && guarded.is_empty() {
        return Ok(None);
    }
    let entries: Vec<SysctlEntry> = entries
        .iter()
        .map(|s| SysctlEntry::new(s.key.0.clone(), s.value.clone()))
        .collect();
    let mut text = sysctl_d::render_sysctl_conf(&entries).map_err(|e| HostError::Command {
        program: "sysctl.d".into(),
        message: e.to_string(),
    })?;
    for s in guarded {
        text.push_str(&format!(
            "# {} = {} is set by pfstate.service after its guard rule, not here\n",
            s.key, s.value
        ));
    }
    Ok(Some(text))
}

/// What `remove` converges to: none of the files.
pub fn no_files() -> Vec<ManagedFile> {
    [STATE_PATH, SYSCTL_CONF_PATH, UNIT_PATH]
        .into_iter()
        .chain(companions::ALL.map(|(_, path)| path))
        .map(|target| ManagedFile {
            target,
            content: None,
        })
        .collect()
}
