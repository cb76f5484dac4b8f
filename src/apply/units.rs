//! Enabling, starting, disabling and stopping the companion units around the file writes of
//! an apply (and a remove).

use crate::error::HostError;
use crate::host::ServiceManager;
use crate::render::files::companions::{ALL, WATCH, wanted};
use crate::render::files::unit::STATE_PATH;

/// Before the files are written: disable the units no longer wanted (and stop them, so a
/// watcher does not outlive its unit).
pub fn retire(
    sm: &dyn ServiceManager,
    enabled: &[(&str, Option<bool>)],
    watch: bool,
    legacy: bool,
) -> Result<(), HostError> {
    for (name, now) in enabled {
        if *now == Some(true) && !wanted(name, watch, legacy) {
            sm.disable(name)?;
            sm.stop_no_wait(name)?;
        }
    }
    Ok(())
}

/// After the files are written (and systemd reloaded): enable and start the wanted units;
/// restart a running watcher whose unit file or state file (`changed`: targets written)
/// changed, so it follows a new prefix at once.
pub fn enlist(
    sm: &dyn ServiceManager,
    enabled: &[(&str, Option<bool>)],
    changed: &[&str],
    watch: bool,
    legacy: bool,
) -> Result<(), HostError> {
    for (name, now) in enabled {
        if !wanted(name, watch, legacy) {
            continue;
        }
        let path = ALL.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
        if *now != Some(true) {
            sm.enable(name)?;
            sm.start_no_wait(name)?;
        } else if *name == WATCH
            && (changed.contains(&STATE_PATH) || path.is_some_and(|p| changed.contains(&p)))
        {
            sm.restart_no_wait(name)?;
        }
    }
    Ok(())
}
