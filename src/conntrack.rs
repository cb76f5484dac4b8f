//! Delete conntrack entries of forwards that changed, so existing flows (notably UDP, whose
//! entries outlive any rule change) do not keep their old translation or lack of one.

use std::process::{Command, Stdio};

use crate::model::{Family, Forward};

/// Ranges wider than this are not flushed port by port (the conntrack tool takes one port).
const MAX_PORTS_TO_FLUSH: u32 = 1024;

/// More deletions than this are not run blindly, one `conntrack -D` each: the table is listed
/// once and only the ports that have entries are deleted (a first apply of 10,000 forwards
/// would otherwise start 10,000 processes).
const MAX_BLIND_DELETES: usize = 16;

const NO_TOOL: &str = "conntrack tool not found: existing connections keep their old translation until they end (install the conntrack package)";

/// [`flush_forward`] for several forwards at once.
pub fn flush_forwards(forwards: &[&Forward]) -> Vec<String> {
    let deletes: usize = forwards
        .iter()
        .filter(|f| f.port.width() <= MAX_PORTS_TO_FLUSH)
        .map(|f| f.protos.len() * f.port.width() as usize)
        .sum();
    if deletes <= MAX_BLIND_DELETES {
        let mut warnings = Vec::new();
        for f in forwards {
            for w in flush_forward(f) {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
        return warnings;
    }
    let mut warnings = Vec::new();
    for family in [Family::V4, Family::V6] {
        let of_family: Vec<&&Forward> = forwards.iter().filter(|f| f.family == family).collect();
        if of_family.is_empty() {
            continue;
        }
        let listed = Command::new("conntrack")
            .args(["-L", "-f", family_name(family)])
            .stderr(Stdio::null())
            .output();
        let Ok(listed) = listed else {
            return vec![NO_TOOL.to_string()];
        };
        // (proto, port, original destination) of every entry; usually few, often none.
        let mut entries: Vec<(String, u16, String)> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter_map(entry_of_line)
            .collect();
        entries.sort();
        entries.dedup();
        let mut done: Vec<(String, u16, Option<std::net::IpAddr>)> = Vec::new();
        for f in &of_family {
            for (proto, port, dst) in &entries {
                let hit = f.protos.iter().any(|p| p.name() == proto)
                    && f.port.lo <= *port
                    && *port <= f.port.hi
                    && f.address.is_none_or(|a| dst.parse().ok() == Some(a));
                let key = (proto.clone(), *port, f.address);
                if hit && !done.contains(&key) {
                    delete(family, proto, *port, f.address);
                    done.push(key);
                }
            }
        }
    }
    warnings.dedup();
    warnings
}

/// `tcp 6 431999 ESTABLISHED src=.. dst=.. sport=.. dport=.. ...` -> (proto, original dport,
/// original dst): the first `dst=`/`dport=` belong to the original direction.
fn entry_of_line(line: &str) -> Option<(String, u16, String)> {
    let proto = line.split_whitespace().next()?.to_string();
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(name))
            .map(str::to_string)
    };
    Some((proto, field("dport=")?.parse().ok()?, field("dst=")?))
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

fn delete(family: Family, proto: &str, port: u16, address: Option<std::net::IpAddr>) {
    let mut cmd = Command::new("conntrack");
    cmd.args([
        "-D",
        "-f",
        family_name(family),
        "-p",
        proto,
        "--orig-port-dst",
        &port.to_string(),
    ]);
    if let Some(a) = address {
        cmd.args(["--orig-dst", &a.to_string()]);
    }
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

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
