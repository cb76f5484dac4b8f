//! What each sysctl held before pfstate first changed it, persisted so it can be put back when
//! no entry needs the sysctl any more and on `remove` (issue 11: never leave a host less safe
//! than pfstate found it), also after a reboot in between.
//!
//! One `PATH = VALUE` line per key, the path below /proc/sys (unambiguous for interface names
//! with dots). Written (atomically, through [`crate::host::Files`]) before any sysctl is
//! changed; removed when empty.

use std::collections::BTreeMap;

/// Where the record lives on the target system (`/var`: it is state, not configuration; the
/// boot unit runs after local-fs.target).
pub const SYSCTL_BEFORE_PATH: &str = "/var/lib/pfstate/sysctl-before";

/// Key (path below /proc/sys) -> the value pfstate found.
pub type Record = BTreeMap<String, String>;

const HEADER: &str = "# Managed by pfstate: the value of each sysctl before pfstate first changed it.\n\
# Put back when no entry needs it any more and by `pfstate remove`. Do not edit.\n";

pub fn render(record: &Record) -> String {
    let mut out = String::from(HEADER);
    for (k, v) in record {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

/// Lines that do not parse are skipped: a damaged record loses those keys, it never stops an
/// apply.
pub fn parse(text: &str) -> Record {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .filter(|(k, v)| !k.is_empty() && !k.contains("..") && !v.is_empty())
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips() {
        let mut r = Record::new();
        r.insert("net/ipv4/conf/eth0.100/route_localnet".into(), "0".into());
        r.insert("net/ipv4/ip_forward".into(), "0".into());
        let text = render(&r);
        assert!(text.starts_with("# Managed by pfstate"), "{text}");
        assert_eq!(parse(&text), r);
    }

    #[test]
    fn damaged_lines_are_skipped() {
        let r = parse("# x\nnet/ipv4/ip_forward = 0\ngarbage\n../x = 1\nnet/a = \n");
        assert_eq!(r.len(), 1);
        assert_eq!(r["net/ipv4/ip_forward"], "0");
    }
}
