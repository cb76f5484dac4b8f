//! Enabling, starting, disabling and stopping the companion units around the file writes of
//! an apply (and a remove).

use crate::error::HostError;
use crate::host::ServiceManager;
use crate::render::files::companions::{ALL, WATCH, wanted};
use crate::render::files::unit::STATE_PATH;

/// Units whose enablement this run changed, `(unit, enabled now)`, so a failure later in the
/// same apply can put them back ([`undo`]).
pub type Toggled = Vec<(&'static str, bool)>;

/// Before the files are written: disable the units no longer wanted (and stop them, so a
/// watcher does not outlive its unit).
pub fn retire(
    sm: &dyn ServiceManager,
    enabled: &[(&'static str, Option<bool>)],
    watch: bool,
    legacy: bool,
    toggled: &mut Toggled,
) -> Result<(), HostError> {
    for (name, now) in enabled {
        if *now == Some(true) && !wanted(name, watch, legacy) {
            sm.disable(name)?;
            toggled.push((name, false));
            sm.stop_no_wait(name)?;
        }
    }
    Ok(())
}

/// Put back the enablement of the toggled units that this run enabled (`enabled: true`) or
/// disabled (`false`), newest first.
pub fn undo(sm: &dyn ServiceManager, toggled: &Toggled, enabled: bool) -> Result<(), HostError> {
    for (name, on) in toggled.iter().rev().filter(|(_, on)| *on == enabled) {
        if *on {
            sm.disable(name)?;
        } else {
            sm.enable(name)?;
            sm.start_no_wait(name)?;
        }
    }
    Ok(())
}

/// After the files are written (and systemd reloaded): enable and start the wanted units;
/// restart a running watcher whose unit file or state file (`changed`: targets written)
/// changed, so it follows a new prefix at once.
pub fn enlist(
    sm: &dyn ServiceManager,
    enabled: &[(&'static str, Option<bool>)],
    changed: &[&str],
    (watch, legacy): (bool, bool),
    toggled: &mut Toggled,
) -> Result<(), HostError> {
    for (name, now) in enabled {
        if !wanted(name, watch, legacy) {
            continue;
        }
        let path = ALL.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
        if *now != Some(true) {
            sm.enable(name)?;
            toggled.push((name, true));
            sm.start_no_wait(name)?;
        } else if *name == WATCH
            && (changed.contains(&STATE_PATH) || path.is_some_and(|p| changed.contains(&p)))
        {
            sm.restart_no_wait(name)?;
        }
    }
    Ok(())
}
