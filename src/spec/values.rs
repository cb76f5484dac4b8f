//! Parsers and checks of single values (ports, backends, sysctl keys), shared by validation,
//! the conntrack flush and tests.

use std::net::IpAddr;

use crate::model::{PortRange, SysctlKey};

/// Top-level directories of /proc/sys. Anything else is not a kernel parameter.
const SYSCTL_ROOTS: &[&str] = &[
    "abi", "crypto", "debug", "dev", "fs", "kernel", "net", "sunrpc", "user", "vm",
];

/// Why a sysctl key cannot be used, or `None`. Keys end up as paths below /proc/sys and as
/// lines of a sysctl.d file, so they must not climb out (`..`) or break a line.
pub fn sysctl_key_problem(key: &str) -> Option<String> {
    let k = SysctlKey::parse(key);
    let well_formed = !k.0.is_empty()
        && k.0.len() <= 8
        && key.len() <= 200
        && k.0.iter().all(|c| {
            c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.@+".contains(ch))
        });
    if !well_formed {
        return Some(format!(
            "`{}` is not a sysctl key (such as net.ipv4.ip_forward)",
            key.escape_debug()
        ));
    }
    if !SYSCTL_ROOTS.contains(&k.0[0].as_str()) || k.0.len() < 2 {
        return Some(format!(
            "`{}` is outside the kernel's sysctl tree (keys start with one of {})",
            key.escape_debug(),
            SYSCTL_ROOTS.join(", ")
        ));
    }
    if k.0[0] != "net" {
        return Some(format!(
            "`{}` is outside net.: pfstate keeps a host's networking state, and a key elsewhere (kernel., vm., fs., ...) changes how the whole machine behaves, which a firewall file must not do; set it in a sysctl.d file of your own",
            key.escape_debug()
        ));
    }
    if let Some(wild) = k.0.iter().find(|c| c.contains('+')) {
        return Some(format!(
            "`{}` names the interface wildcard `{wild}`; a sysctl is set on one interface: write its name, such as eth1",
            key.escape_debug()
        ));
    }
    if k.0.last().is_some_and(|c| c == "route_localnet") {
        return Some(format!(
            "`{}`: pfstate sets route_localnet itself, only on the interface of a `local: true` forward (its `via:`) and only together with the guard rule that keeps the LAN away from 127.0.0.1 (CVE-2020-8558); remove this line and write `local: true` and `via:` on the forward",
            key.escape_debug()
        ));
    }
    None
}

/// A port number out of range or not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPort;

pub(crate) fn parse_port_number(n: i64) -> Result<u16, BadPort> {
    u16::try_from(n).ok().filter(|p| *p != 0).ok_or(BadPort)
}

fn parse_port_text(t: &str) -> Result<u16, BadPort> {
    let t = t.trim();
    if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadPort);
    }
    parse_port_number(t.parse::<i64>().map_err(|_| BadPort)?)
}

/// `80`, `8000-8010` (also `8000:8010`, as iptables writes it).
pub fn parse_port_range(t: &str) -> Result<PortRange, BadPort> {
    match t.split_once(['-', ':']) {
        Some((lo, hi)) => {
            let (lo, hi) = (parse_port_text(lo)?, parse_port_text(hi)?);
            if lo > hi {
                return Err(BadPort);
            }
            Ok(PortRange { lo, hi })
        }
        None => parse_port_text(t).map(PortRange::single),
    }
}

/// `10.0.0.2`, `10.0.0.2:8080`, `10.0.0.2:9000-9010`, `[2001:db8::2]:8080`, `2001:db8::2`.
pub fn parse_backend(text: &str) -> Result<(IpAddr, Option<PortRange>), String> {
    let text = text.trim();
    let (addr, port) = if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address in brackets needs the closing ]")?;
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or("write [IPv6]:PORT")?)),
        }
    } else if text.matches(':').count() > 1 {
        (text, None) // a bare IPv6 address
    } else {
        match text.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        }
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{}` is not an IP address", addr.escape_debug()))?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a backend"));
    }
    if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        return Err(format!("{ip} cannot be a backend"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            parse_port_range(p)
                .map_err(|_| format!("`{}` is not a port or range (1-65535)", p.escape_debug()))?,
        ),
    };
    Ok((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse() {
        assert_eq!(
            parse_backend("10.0.0.2").unwrap(),
            ("10.0.0.2".parse().unwrap(), None)
        );
        assert_eq!(
            parse_backend("10.0.0.2:80").unwrap().1,
            Some(PortRange::single(80))
        );
        assert_eq!(
            parse_backend("10.0.0.2:9000-9010").unwrap().1,
            Some(PortRange { lo: 9000, hi: 9010 })
        );
        assert_eq!(
            parse_backend("[2001:db8::2]:8080").unwrap().0,
            "2001:db8::2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(parse_backend("2001:db8::2").unwrap().1, None);
        for bad in [
            "10.0.0.256",
            "10.0.0.2:0",
            "10.0.0.2:70000",
            "[::1",
            "0.0.0.0",
            "x:80",
            "10.0.0.2:90-80",
            "10.0.0.2:-1",
        ] {
            assert!(parse_backend(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn sysctl_keys() {
        assert_eq!(sysctl_key_problem("net.ipv4.ip_forward"), None);
        assert_eq!(sysctl_key_problem("net/ipv4/conf/eth0.100/rp_filter"), None);
        for bad in [
            "foo.bar",
            "kernel.core_pattern",
            "vm.swappiness",
            "net.ipv4.conf.eth+.rp_filter",
            "net.ipv4.conf.eth1.route_localnet",
            "net.ipv4.conf.all.route_localnet",
            "net",
            "net.ipv4.ip_forward\nkernel.x",
            "net/../../etc",
            "net.ipv4 = 1",
            "",
        ] {
            assert!(sysctl_key_problem(bad).is_some(), "{bad:?} accepted");
        }
    }
}
