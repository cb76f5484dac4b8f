//! The real [`Netfilter`]: `ip(6)tables-save` and `ip(6)tables-restore --noflush --wait`.
//!
//! pfstate uses the same backend as the rules already on the host: if only the legacy
//! backend holds rules, the `-legacy` tools are used, otherwise the `-nft` ones (or the plain
//! names, which follow the distribution's alternatives). Mixing the two would leave two rule
//! sets that both filter packets but each tool sees only one of them.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::HostError;
use crate::host::Netfilter;
use crate::model::Family;

pub struct Iptables {
    /// "" (the distribution's default), "-nft" or "-legacy".
    variant: &'static str,
}

impl Iptables {
    /// Choose the backend as described in the module docs.
    pub fn detect() -> Iptables {
        let has_rules = |tool: &str| {
            Command::new(tool)
                .stderr(Stdio::null())
                .output()
                .map(|o| {
                    o.status.success()
                        && String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .any(|l| l.starts_with("-A "))
                })
                .unwrap_or(false)
        };
        // Legacy first: on a host without legacy rules that answer is instant, and the
        // (possibly large) nf_tables rule set is not read twice.
        let legacy = has_rules("iptables-legacy-save") || has_rules("ip6tables-legacy-save");
        if legacy && !(has_rules("iptables-nft-save") || has_rules("ip6tables-nft-save")) {
            Iptables { variant: "-legacy" }
        } else {
            Iptables { variant: "" }
        }
    }

    pub fn backend_name(&self) -> &'static str {
        if self.variant == "-legacy" {
            "legacy"
        } else {
            "default (nf_tables)"
        }
    }

    fn tool(&self, family: Family, what: &str) -> String {
        let base = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        format!("{base}{}-{what}", self.variant)
    }

    /// Save with counters (`-c`), used by `status`.
    pub fn save_with_counters(&self, family: Family, table: &str) -> Result<String, HostError> {
        run_save(&self.tool(family, "save"), &["-c", "-t", table])
    }
}

fn run_save(program: &str, args: &[&str]) -> Result<String, HostError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| HostError::Command {
            program: program.to_string(),
            message: format!("cannot run it ({e}); install the iptables package"),
        })?;
    if !out.status.success() {
        return Err(HostError::Command {
            program: program.to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| HostError::Command {
        program: program.to_string(),
        message: "printed text that is not UTF-8".into(),
    })
}

impl Netfilter for Iptables {
    fn save(&self, family: Family, table: &str) -> Result<String, HostError> {
        if table.is_empty() {
            return run_save(&self.tool(family, "save"), &[]);
        }
        run_save(&self.tool(family, "save"), &["-t", table])
    }

    fn restore(&self, family: Family, payload: &str) -> Result<(), HostError> {
        let program = self.tool(family, "restore");
        let mut child = Command::new(&program)
            .args(["--noflush", "--wait"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HostError::Command {
                program: program.clone(),
                message: format!("cannot run it ({e}); install the iptables package"),
            })?;
        let write = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(payload.as_bytes()));
        let out = child
            .wait_with_output()
            .map_err(|e| HostError::io(&program, e))?;
        if let Some(Err(e)) = write
            && out.status.success()
        {
            return Err(HostError::io(&program, e));
        }
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(HostError::Command {
            program,
            message: explain_restore_error(&stderr, payload),
        })
    }
}

/// Quote the payload line a restore error names (`Error occurred at line: N`, or nf_tables'
/// `line N failed`), with a little context, so the message says which rule was refused.
pub fn explain_restore_error(stderr: &str, payload: &str) -> String {
    let line_no = stderr.lines().find_map(|l| {
        if let Some(rest) = l.split("Error occurred at line: ").nth(1) {
            return rest.trim().parse::<usize>().ok();
        }
        let idx = l.find("line ")?;
        let digits: String = l[idx + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<usize>().ok()
    });
    let Some(n) = line_no else {
        return stderr.to_string();
    };
    let lines: Vec<&str> = payload.lines().collect();
    let from = n.saturating_sub(3).max(1);
    let to = (n + 1).min(lines.len());
    let mut msg = format!("{stderr}\npayload around line {n}:");
    for i in from..=to {
        if let Some(l) = lines.get(i - 1) {
            msg.push_str(&format!("\n{}{i:>5}  {l}", if i == n { ">" } else { " " }));
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_errors_quote_the_payload_line() {
        let payload = "*nat\n:A - [0:0]\n-A A -j NOPE\nCOMMIT\n";
        let m = explain_restore_error("iptables-restore: line 3 failed", payload);
        assert!(m.contains(">    3  -A A -j NOPE"), "{m}");
        let m = explain_restore_error(
            "Error occurred at line: 2\nTry `iptables-restore -h'",
            payload,
        );
        assert!(m.contains(">    2  :A - [0:0]"), "{m}");
    }
}
