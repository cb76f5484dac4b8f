//! Delete conntrack entries of forwards that changed, so existing flows (notably UDP, whose
//! entries outlive any rule change) do not keep their old translation or lack of one.

use std::process::{Command, Stdio};

use crate::model::{Family, Forward};

/// Ranges wider than this are not flushed port by port (the conntrack tool takes one port).
const MAX_PORTS_TO_FLUSH: u32 = 1024;

/// Delete the entries whose original destination is this forward's listen port (and address).
/// Returns warnings; a missing `conntrack` tool is a warning, not an error.
pub fn flush_forward(f: &Forward) -> Vec<String> {
    let mut warnings = Vec::new();
    if f.port.width() > MAX_PORTS_TO_FLUSH {
        warnings.push(format!(
            "forward `{}`: not flushing conntrack entries of {} ports",
            f.name,
            f.port.width()
        ));
        return warnings;
    }
    let family = match f.family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    };
    for proto in &f.protos {
        for port in f.port.lo..=f.port.hi {
            let mut cmd = Command::new("conntrack");
            cmd.args([
                "-D",
                "-f",
                family,
                "-p",
                proto.name(),
                "--orig-port-dst",
                &port.to_string(),
            ]);
            if let Some(a) = f.address {
                cmd.args(["--orig-dst", &a.to_string()]);
            }
            // Exit status 1 with "0 flow entries" just means there was nothing to delete.
            match cmd.stdout(Stdio::null()).stderr(Stdio::null()).status() {
                Ok(_) => {}
                Err(_) => {
                    warnings.push("conntrack tool not found: existing connections keep their old translation until they end (install the conntrack package)".to_string());
                    return warnings;
                }
            }
        }
    }
    warnings
}
