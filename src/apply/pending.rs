//! The record of an `apply --confirm` waiting for `pfstate confirm`: what pfstate owned before
//! the apply (its chains and jumps, the sysctls it changed, its files and the unit's state), the
//! deadline, and how the revert was armed.
//!
//! It lives in /var/lib/pfstate (not /run): a reboot before the confirmation must not make the
//! unconfirmed state permanent, so the boot apply finds the record and puts the old state back.
//! Only pfstate's own objects are in it: the revert converges them alone, so whatever other
//! programs changed in the meantime (Docker adding a container's rules) stays.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::host::Files;

/// Where the record of a pending confirmation is kept.
pub const PENDING_PATH: &str = "/var/lib/pfstate/confirm-pending.json";
/// What became of the last one (confirmed or reverted), for `pfstate confirm`'s messages.
pub const LAST_PATH: &str = "/var/lib/pfstate/confirm-last.json";

/// The shortest and longest deadline `--confirm` accepts.
pub const MIN_SECONDS: u64 = 1;
pub const MAX_SECONDS: u64 = 24 * 3600;

/// How the revert will run at the deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Revert {
    /// A transient timer and service in the system manager, started over D-Bus.
    SystemdTimer { unit: String },
    /// A detached process (no system bus, or `--root`).
    Process { pid: u32 },
}

impl Revert {
    pub fn name(&self) -> &'static str {
        match self {
            Revert::SystemdTimer { .. } => "systemd-timer",
            Revert::Process { .. } => "process",
        }
    }
}

/// One sysctl pfstate changed, with the value it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldSysctl {
    /// The key below /proc/sys, slash-separated (`net/ipv4/ip_forward`).
    pub path: String,
    pub value: String,
}

/// A file pfstate owns, as it was (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldFile {
    pub target: String,
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Names this transaction in the revert's command line, so a late timer or process of an
    /// earlier one never reverts a later one.
    pub id: String,
    pub applied_unix: u64,
    pub deadline_unix: u64,
    pub seconds: u64,
    /// The chain prefix of the applied state: the apply wrote nothing under another one.
    pub prefix: String,
    /// `iptables-save` text per family (`ipv4`, `ipv6`), reduced to pfstate's own chains and
    /// the jumps into them.
    pub rules: Vec<(String, String)>,
    pub sysctls: Vec<OldSysctl>,
    pub files: Vec<OldFile>,
    /// Whether the boot unit was enabled (`None`: unknown, left as it is).
    pub unit_enabled: Option<bool>,
    pub revert: Option<Revert>,
}

/// What became of a confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Last {
    pub id: String,
    /// `confirmed` or `reverted`.
    pub outcome: String,
    pub at_unix: u64,
    pub deadline_unix: u64,
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh transaction id: time and pid, unique on one host.
pub fn new_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", nanos & 0xffff_ffff_ffff, std::process::id())
}

/// `60`, `60s`, `2m`, `1h`, `1m30s` -> seconds, within [`MIN_SECONDS`, `MAX_SECONDS`].
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "--confirm {text:?}: write a duration such as 60s, 2m or 1m30s (from {MIN_SECONDS} s to 24h)"
        )
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        total = total.saturating_add(number.parse::<u64>().map_err(|_| bad())?);
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&total) {
        return Err(bad());
    }
    Ok(total)
}

/// RFC 3339 in UTC (`2026-12-06T03:14:15Z`) from seconds since the epoch.
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Days to a civil date (proleptic Gregorian), counting eras of 400 years from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn read_json<T: for<'de> Deserialize<'de>>(
    files: &dyn Files,
    target: &str,
) -> Result<Option<T>, Error> {
    let Some(text) = files.read(target)? else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::Usage(format!(
            "{target}: unreadable record of a pending confirmation ({e}); look at it, then delete it"
        ))
    })
}

fn write_json<T: Serialize>(files: &dyn Files, target: &str, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string(value).expect("records serialize");
    files.write(target, &text)?;
    Ok(())
}

impl Pending {
    pub fn load(files: &dyn Files) -> Result<Option<Pending>, Error> {
        read_json(files, PENDING_PATH)
    }

    pub fn save(&self, files: &dyn Files) -> Result<(), Error> {
        write_json(files, PENDING_PATH, self)
    }

    /// Forget the record and note what became of it.
    pub fn finish(&self, files: &dyn Files, outcome: &str) -> Result<(), Error> {
        let last = Last {
            id: self.id.clone(),
            outcome: outcome.to_string(),
            at_unix: now_unix(),
            deadline_unix: self.deadline_unix,
        };
        write_json(files, LAST_PATH, &last)?;
        files.remove(PENDING_PATH)?;
        Ok(())
    }

    /// Seconds left until the deadline (0 once it passed).
    pub fn remaining(&self) -> u64 {
        self.deadline_unix.saturating_sub(now_unix())
    }

    /// The message that refuses a second apply (or a remove) while this one waits.
    pub fn refusal(&self) -> String {
        format!(
            "a change applied with --confirm at {} is waiting for `pfstate confirm` until {} \
             ({} s left); confirm it, or let it be put back, before applying again",
            rfc3339(self.applied_unix),
            rfc3339(self.deadline_unix),
            self.remaining()
        )
    }

    /// The `confirm` object of the JSON contract (docs/json.md).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "deadline": rfc3339(self.deadline_unix),
            "deadline_unix": self.deadline_unix,
            "seconds": self.seconds,
            "revert": self.revert.as_ref().map_or("none", Revert::name),
        })
    }
}

impl Last {
    pub fn load(files: &dyn Files) -> Result<Option<Last>, Error> {
        read_json(files, LAST_PATH)
    }
}

/// In the detached process: wait until the deadline of transaction `id`. Returns `false` when it
/// was confirmed (or replaced) meanwhile, so there is nothing to revert.
pub fn wait_for_deadline(files: &dyn Files, id: &str) -> bool {
    loop {
        match Pending::load(files) {
            Ok(Some(p)) if p.id == id => {
                if now_unix() >= p.deadline_unix {
                    return true;
                }
            }
            _ => return false,
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60"), Ok(60));
        assert_eq!(parse_duration("60s"), Ok(60));
        assert_eq!(parse_duration("2m"), Ok(120));
        assert_eq!(parse_duration("1m30s"), Ok(90));
        assert_eq!(parse_duration("1h"), Ok(3600));
        for bad in [
            "",
            "0",
            "0s",
            "25h",
            "1d",
            "-5s",
            "5 s",
            "m",
            "99999999999999999999s",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains("60s, 2m or 1m30s"), "{bad}: {e}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_526_855), "2026-12-06T03:14:15Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn record_round_trip_and_finish() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = crate::host::fs::RootFiles {
            root: crate::host::fs::Root::under(dir.path()),
        };
        assert_eq!(Pending::load(&root).expect("no record"), None);
        let p = Pending {
            id: new_id(),
            applied_unix: 100,
            deadline_unix: now_unix() + 30,
            seconds: 30,
            prefix: "PFSTATE".into(),
            rules: vec![("ipv4".into(), "*nat\nCOMMIT\n".into())],
            sysctls: vec![OldSysctl {
                path: "net/ipv4/ip_forward".into(),
                value: "0".into(),
            }],
            files: vec![OldFile {
                target: "/etc/pfstate/host.yaml".into(),
                content: None,
            }],
            unit_enabled: Some(false),
            revert: Some(Revert::Process { pid: 42 }),
        };
        p.save(&root).expect("save");
        assert_eq!(Pending::load(&root).expect("load"), Some(p.clone()));
        assert!(p.remaining() <= 30 && p.remaining() >= 29);
        assert!(p.refusal().contains("waiting for `pfstate confirm`"));
        assert_eq!(p.json()["revert"], "process");
        p.finish(&root, "confirmed").expect("finish");
        assert_eq!(Pending::load(&root).expect("gone"), None);
        let last = Last::load(&root).expect("last").expect("some");
        assert_eq!((last.id, last.outcome.as_str()), (p.id, "confirmed"));
    }
}
