//! Single values of filter entries (rate limits, ICMP types, address ranges), parsed into the
//! text `iptables-save` prints for them, so the plan stays a plain text comparison.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{AddrMatch, Family, IcmpMatch, Limit};

/// The kernel's fixed point for rates: periods are counted in 1/10000 s (`XT_LIMIT_SCALE`).
const SCALE: u32 = 10_000;
/// Time units of `--limit`, coarsest first, as `iptables-save` names them.
const UNITS: [(&str, u32); 4] = [
    ("day", SCALE * 86_400),
    ("hour", SCALE * 3_600),
    ("min", SCALE * 60),
    ("sec", SCALE),
];
/// The burst iptables uses when none is given (and then does not print).
const DEFAULT_BURST: u32 = 5;
const MAX_BURST: i64 = 10_000;

/// `10/minute` (any prefix of second, minute, hour, day) and an optional burst.
pub fn parse_limit(rate: &str, burst: Option<i64>) -> Result<Limit, String> {
    let bad = || {
        format!(
            "`{}` is not a rate: write a count per second, minute, hour or day, e.g. `10/minute`",
            rate.escape_debug()
        )
    };
    let (count, unit) = rate.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let full = ["second", "minute", "hour", "day"]
        .iter()
        .position(|u| !unit.is_empty() && u.starts_with(unit.as_str()))
        .ok_or_else(bad)?;
    let per = UNITS[3 - full].1;
    if count == 0 || count > per {
        return Err(format!(
            "`{}` cannot be counted: the kernel takes 1 to 10000 per second",
            rate.escape_debug()
        ));
    }
    let burst = match burst {
        None => None,
        Some(b) if (1..=MAX_BURST).contains(&b) => Some(b as u32).filter(|b| *b != DEFAULT_BURST),
        Some(b) => return Err(format!("burst {b} must be 1 to {MAX_BURST}")),
    };
    Ok(Limit {
        rate: rate_text(per / count),
        burst,
    })
}

/// The kernel keeps only the period between two matches; `iptables-save` prints it in the
/// coarsest unit the next finer one cannot state more exactly (`60/minute` -> `1/sec`).
fn rate_text(period: u32) -> String {
    let finer_is_no_better = |m: u32| period > m || m / period < m % period;
    let i = (1..UNITS.len())
        .find(|&i| finer_is_no_better(UNITS[i].1))
        .map_or(UNITS.len() - 1, |i| i - 1);
    format!("{}/{}", UNITS[i].1 / period, UNITS[i].0)
}

/// An ICMP (type, code); a code of `None` is every code.
type TypeCode = (u8, Option<u8>);

/// ICMP type names with their type and code in IPv4 and in IPv6 (`None`: not in that family).
const ICMP_NAMES: &[(&str, Option<TypeCode>, Option<TypeCode>)] = &[
    ("echo-reply", Some((0, None)), Some((129, None))),
    ("destination-unreachable", Some((3, None)), Some((1, None))),
    ("port-unreachable", Some((3, Some(3))), Some((1, Some(4)))),
    ("fragmentation-needed", Some((3, Some(4))), None),
    ("packet-too-big", None, Some((2, None))),
    ("redirect", Some((5, None)), Some((137, None))),
    ("echo-request", Some((8, None)), Some((128, None))),
    ("router-advertisement", Some((9, None)), Some((134, None))),
    ("router-solicitation", Some((10, None)), Some((133, None))),
    ("time-exceeded", Some((11, None)), Some((3, None))),
    ("parameter-problem", Some((12, None)), Some((4, None))),
    ("neighbour-solicitation", None, Some((135, None))),
    ("neighbour-advertisement", None, Some((136, None))),
];

pub fn icmp_names() -> impl Iterator<Item = &'static str> {
    ICMP_NAMES.iter().map(|(n, _, _)| *n)
}

fn type_text((ty, code): TypeCode) -> String {
    match code {
        Some(c) => format!("{ty}/{c}"),
        None => ty.to_string(),
    }
}

/// A name (`echo-request`, in both families), `any`, or a number `8` / `3/4` (one family
/// only: the numbers differ between ICMP and ICMPv6).
pub fn parse_icmp_type(text: &str, families: &[Family]) -> Result<IcmpMatch, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.replace("neighbor", "neighbour");
    if t == "any" {
        return Ok(IcmpMatch {
            v4: Some("any".into()),
            v6: Some("any".into()),
        });
    }
    if let Some((_, v4, v6)) = ICMP_NAMES.iter().find(|(n, _, _)| *n == t) {
        let m = IcmpMatch {
            v4: v4.map(type_text),
            v6: v6.map(type_text),
        };
        return match missing_family(&m, families) {
            Some(f) => Err(format!(
                "`{t}` is not an {} type; add `family: {}` to this entry",
                icmp_name(f),
                other(f)
            )),
            None => Ok(m),
        };
    }
    let number = parse_type_number(&t).ok_or_else(|| {
        let hint = crate::spec::suggest::closest(&t, icmp_names())
            .map(|c| format!("did you mean `{c}`? "))
            .unwrap_or_default();
        format!(
            "`{}` is not an ICMP type; {hint}write a name such as `echo-request`, `any`, or a \
             number such as `8` or `3/4`",
            text.escape_debug()
        )
    })?;
    match families {
        [Family::V4] => Ok(IcmpMatch {
            v4: Some(number),
            v6: None,
        }),
        [Family::V6] => Ok(IcmpMatch {
            v4: None,
            v6: Some(number),
        }),
        _ => Err(format!(
            "ICMP type numbers differ between IPv4 and IPv6: add `family: ipv4` or \
             `family: ipv6`, or use a name such as `echo-request` (`{t}`)"
        )),
    }
}

fn parse_type_number(t: &str) -> Option<String> {
    let (ty, code) = match t.split_once('/') {
        Some((ty, code)) => (ty, Some(code)),
        None => (t, None),
    };
    let ty: u8 = ty.parse().ok()?;
    let code: Option<u8> = match code {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    Some(type_text((ty, code)))
}

fn missing_family(m: &IcmpMatch, families: &[Family]) -> Option<Family> {
    families.iter().copied().find(|f| match f {
        Family::V4 => m.v4.is_none(),
        Family::V6 => m.v6.is_none(),
    })
}

fn icmp_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ICMP (IPv4)",
        Family::V6 => "ICMPv6",
    }
}

fn other(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv6",
        Family::V6 => "ipv4",
    }
}

/// An address, a network, or an inclusive range `first-last`.
pub fn parse_addr_match(text: &str) -> Result<AddrMatch, String> {
    let t = text.trim();
    if let Some((a, b)) = t.split_once('-') {
        let (a, b) = match (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                return Err(format!(
                    "`{}` is not an address range: write `first-last`, e.g. \
                     `10.0.0.10-10.0.0.20`",
                    t.escape_debug()
                ));
            }
        };
        if Family::of(&a) != Family::of(&b) || a > b {
            return Err(format!(
                "`{}` is not a range: both ends of one family, the low end first",
                t.escape_debug()
            ));
        }
        return Ok(AddrMatch::Range(a, b));
    }
    let net = match t.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => IpNet::from(t.parse::<IpAddr>().map_err(|_| {
            format!(
                "`{}` is not an address, network (CIDR such as 203.0.113.0/24) or range \
                 (`10.0.0.10-10.0.0.20`)",
                t.escape_debug()
            )
        })?),
    };
    if net.trunc() != net {
        return Err(format!(
            "{net} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(AddrMatch::Net(net))
}

#[cfg(test)]
#[path = "filter_values_tests.rs"]
mod tests;
