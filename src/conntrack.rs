//! Delete conntrack entries of forwards that changed, so existing flows (notably UDP, whose
//! entries outlive any rule change) do not keep their old translation or lack of one.

use std::process::{Command, Stdio};

use std::net::IpAddr;

use crate::model::{Family, Forward, PortRange, Proto};
use crate::validate::parse_port_range;

/// What identifies a forward's connections in the conntrack table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub name: String,
    pub family: Family,
    pub protos: Vec<Proto>,
    pub port: PortRange,
    pub address: Option<IpAddr>,
}

impl Listen {
    pub fn of(f: &Forward) -> Listen {
        Listen {
            name: f.name.clone(),
            family: f.family,
            protos: f.protos.clone(),
            port: f.port,
            address: f.address,
        }
    }

    /// Recover a removed forward's listen from one of its live DNAT dispatch rules
    /// (`-d ADDR/32 -p tcp ... --dport 80 ...`), so its connections can be flushed too.
    pub fn from_rule(name: &str, family: Family, rule: &str) -> Option<Listen> {
        let words: Vec<&str> = rule.split_whitespace().collect();
        let after = |flag: &str| words.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
        let proto = match after("-p")? {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return None,
        };
        let port = parse_port_range(after("--dport")?).ok()?;
        let address = after("-d")
            .and_then(|d| d.split('/').next())
            .and_then(|a| a.parse().ok());
        Some(Listen {
            name: name.to_string(),
            family,
            protos: vec![proto],
            port,
            address,
        })
    }
}

/// Ranges wider than this are not flushed port by port (the conntrack tool takes one port).
const MAX_PORTS_TO_FLUSH: u32 = 1024;

/// Delete the entries whose original destination is this forward's listen port (and address).
/// Returns warnings; a missing `conntrack` tool is a warning, not an error.
pub fn flush(f: &Listen) -> Vec<String> {
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
