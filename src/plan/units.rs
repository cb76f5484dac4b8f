//! The companion units' state on the host (enabled or not) and the plan lines for the ones
//! whose enablement apply would change.

use crate::host::ServiceManager;
use crate::render::files::companions::{ALL, enabled_by_apply, wanted};

/// Whether each unit apply enables is enabled now; `None` when systemd cannot be asked.
pub fn query(sm: Option<&dyn ServiceManager>) -> Vec<(&'static str, Option<bool>)> {
    ALL.iter()
        .filter(|(n, _)| enabled_by_apply(n))
        .map(|(n, _)| (*n, sm.and_then(|sm| sm.is_enabled(n).ok())))
        .collect()
}

/// Plan lines for units whose enablement would change. `installed`: false for `remove`, which
/// wants none of them (whatever `watch` and the backend would pick for an apply).
pub fn plan_lines(
    enabled: &[(&str, Option<bool>)],
    installed: bool,
    watch: bool,
    legacy: bool,
) -> Vec<String> {
    let word = |e: bool| if e { "enabled" } else { "disabled" };
    enabled
        .iter()
        .filter_map(|(name, now)| {
            let want = installed && wanted(name, watch, legacy);
            let now = (*now)?;
            (now != want).then(|| format!("unit {name}: {} -> {}\n", word(now), word(want)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::files::companions::{REAPPLY, RECHECK_TIMER, WATCH};

    #[test]
    fn plan_lines_name_units_whose_enablement_changes() {
        let now = [
            (WATCH, Some(false)),
            (RECHECK_TIMER, Some(true)),
            (REAPPLY, None),
        ];
        assert_eq!(
            plan_lines(&now, true, true, false),
            [
                "unit pfstate-watch.service: disabled -> enabled\n",
                "unit pfstate-recheck.timer: enabled -> disabled\n"
            ]
        );
        // Without the watcher the timer stays and the watcher stays off: nothing to change.
        assert!(plan_lines(&now, true, false, false).is_empty());
        // remove wants none of them: the enabled timer goes.
        assert_eq!(
            plan_lines(&now, false, false, false),
            ["unit pfstate-recheck.timer: enabled -> disabled\n"]
        );
        assert_eq!(
            query(None).len(),
            3,
            "the recheck service is started by its timer"
        );
    }
}
