//! The `conntrack` tool: list the connection tracking table, delete entries by original
//! destination. An `Err` means the tool could not be started (not installed); a run that found
//! nothing to delete is not an error.

use std::io;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::host::Conntrack;
use crate::model::Family;

/// The `conntrack` tool of conntrack-tools.
pub struct ConntrackTool;

impl Conntrack for ConntrackTool {
    fn list(&self, family: Family, dst_nat_only: bool) -> io::Result<String> {
        list(family, dst_nat_only)
    }

    fn delete(&self, family: Family, proto: &str, port: u16, to: Option<IpAddr>) -> io::Result<()> {
        delete(family, proto, port, to)
    }
}

/// `conntrack -L -f FAMILY` (only DNATed flows with `dst_nat_only`): one entry per line.
fn list(family: Family, dst_nat_only: bool) -> io::Result<String> {
    let mut cmd = Command::new("conntrack");
    cmd.args(["-L", "-f", family.name()]);
    if dst_nat_only {
        cmd.arg("--dst-nat");
    }
    let out = cmd.stderr(Stdio::null()).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `conntrack -D`: the entries of one protocol whose original destination is `port` (and
/// `address`, when given).
fn delete(family: Family, proto: &str, port: u16, address: Option<IpAddr>) -> io::Result<()> {
    let mut cmd = Command::new("conntrack");
    cmd.args([
        "-D",
        "-f",
        family.name(),
        "-p",
        proto,
        "--orig-port-dst",
        &port.to_string(),
    ]);
    if let Some(a) = address {
        cmd.args(["--orig-dst", &a.to_string()]);
    }
    // Exit status 1 with "0 flow entries" just means there was nothing to delete.
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    Ok(())
}
