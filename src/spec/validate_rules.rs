//! Validation of `sysctl:` entries (filter entries are in `validate_filter.rs`, the rest of the
//! file in `validate.rs`): separate because their checks share nothing with forwards.

use super::span::at;
use super::validate::Validator;
use super::values::sysctl_key_problem;
use super::yaml as spec;
use crate::model::*;

impl Validator {
    pub(crate) fn sysctls(
        &mut self,
        spec: &spec::Spec,
        forwards: &[Forward],
        snats: &[OutboundSnat],
    ) -> Vec<Sysctl> {
        let forwarding = |fam: Family| {
            forwards.iter().any(|f| f.family == fam) || snats.iter().any(|s| s.family == fam)
        };
        let mut out: Vec<Sysctl> = Vec::new();
        for (key, value) in &spec.sysctl.0 {
            if let Some(problem) = sysctl_key_problem(key) {
                self.err(at(key), problem);
                continue;
            }
            if !value.0.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                || value.0.is_empty()
                || value.0.len() > 256
            {
                self.err(
                    at(value),
                    format!(
                        "sysctl value `{}` must be 1 to 256 printable characters on one line",
                        value.0.escape_debug()
                    ),
                );
                continue;
            }
            let k = SysctlKey::parse(key);
            if out.iter().any(|s| s.key == k) {
                self.err(at(key), format!("sysctl `{}` is given twice", key.value));
                continue;
            }
            let implied_on = match k.dotted().as_str() {
                "net.ipv4.ip_forward" | "net.ipv4.conf.all.forwarding" => forwarding(Family::V4),
                "net.ipv6.conf.all.forwarding" => forwarding(Family::V6),
                _ => false,
            };
            if implied_on && value.0.trim() != "1" {
                self.err(at(value), format!("{} must be 1 because forwards or snat entries need forwarding; remove this line or set it to 1", key.value));
                continue;
            }
            out.push(Sysctl {
                key: k,
                value: value.0.trim().to_string(),
            });
        }
        out
    }
}
