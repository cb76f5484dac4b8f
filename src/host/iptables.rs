//! The real [`Netfilter`]: `ip(6)tables-save` and `ip(6)tables-restore --noflush --wait`.
//!
//! pfstate uses the same backend as the rules already on the host: if only the legacy
//! backend holds rules, the `-legacy` tools are used, otherwise the `-nft` ones (or the plain
//! names, which follow the distribution's alternatives). Mixing the two would leave two rule
//! sets that both filter packets but each tool sees only one of them. The other backend is
//! still read ([`Netfilter::other_backend`]): a copy of pfstate's chains left there when the
//! host's rules moved is removed by the plan (`plan::backends`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use super::prefetch::Prefetched;
use crate::error::HostError;
use crate::host::Netfilter;
use crate::host::fs::Root;
use crate::model::Family;

#[derive(Debug, Clone, Copy)]
pub struct Iptables {
    /// "" (the distribution's default), "-nft" or "-legacy".
    variant: &'static str,
}

impl Iptables {
    /// Choose the backend as described in the module docs.
    pub fn detect() -> Iptables {
        let has_rules = |tool: &str| {
            if tool.contains("-legacy-") && legacy_is_empty(tool) {
                return false;
            }
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
        // (possibly large) nf_tables rule set is not read twice. Both families at once: each
        // check is a process, on the path of every command.
        let either = |a: &str, b: &str| {
            std::thread::scope(|s| {
                let other = s.spawn(|| has_rules(b));
                let first = has_rules(a);
                other.join().unwrap_or(false) || first
            })
        };
        let legacy = either("iptables-legacy-save", "ip6tables-legacy-save");
        if legacy && !either("iptables-nft-save", "ip6tables-nft-save") {
            Iptables { variant: "-legacy" }
        } else {
            Iptables { variant: "" }
        }
    }

    /// Whether the rules live in the legacy (non-nf_tables) backend, which announces no events.
    /// Only the default (nf_tables) tools have a generation id to key the save cache by.
    pub(super) fn has_generation(&self) -> bool {
        self.variant.is_empty()
    }

    pub fn is_legacy(&self) -> bool {
        self.variant == "-legacy"
    }

    /// The other backend, when its tools are installed: `-nft` for `-legacy`; for the
    /// distribution's default, whichever it is not. The alternatives link says which it is
    /// (`xtables-nft-multi`, `xtables-legacy-multi`); only when it does not (a wrapper, another
    /// layout) is `iptables --version` asked, a process on the path of every command.
    pub fn other(&self) -> Option<Iptables> {
        let default_is_nft = || {
            if let Some(nft) = on_path("iptables").as_deref().and_then(backend_of_link) {
                return Some(nft);
            }
            let out = Command::new("iptables").arg("--version").output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            match (text.contains("(nf_tables)"), text.contains("(legacy)")) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            }
        };
        let other = match self.variant {
            "-legacy" => "-nft",
            "-nft" => "-legacy",
            _ if default_is_nft()? => "-legacy",
            _ => "-nft",
        };
        let save = on_path(&format!("iptables{other}-save"));
        save.is_some().then_some(Iptables { variant: other })
    }

    pub(super) fn tool(&self, family: Family, what: &str) -> String {
        let base = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        format!("{base}{}-{what}", self.variant)
    }
}

/// Where `name` is found on PATH.
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether the tool at `path` is the nf_tables one (`Some(true)`) or the legacy one, as the
/// name of the binary its links end at says; `None` when the name does not tell.
fn backend_of_link(path: &std::path::Path) -> Option<bool> {
    let target = std::fs::canonicalize(path).ok()?;
    let name = target.file_name()?.to_str()?;
    match (name.contains("nft"), name.contains("legacy")) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// Whether the legacy backend of a tool's family holds no table in this network namespace, so
/// that its save would print nothing: `ip(6)tables-legacy-save` lists the tables the kernel
/// names in `/proc/net/ip(6)_tables_names` (a file missing without the module), and reading
/// that file costs no process. Root-only; a file that cannot be read says nothing.
fn legacy_is_empty(tool: &str) -> bool {
    let names = if tool.starts_with("ip6") {
        "/proc/net/ip6_tables_names"
    } else {
        "/proc/net/ip_tables_names"
    };
    match std::fs::read_to_string(names) {
        Ok(text) => text.trim().is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// The PIDs of the last restores this process ran. The kernel names the committing PID of each
/// nf_tables transaction; `pfstate watch` uses this to tell its own writes from everyone else's.
static RESTORE_PIDS: std::sync::Mutex<std::collections::VecDeque<u32>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// Recorded right after the spawn, before the payload is written: the restore cannot have
/// committed anything yet.
fn remember_restore(pid: u32) {
    let mut pids = RESTORE_PIDS.lock().unwrap_or_else(|e| e.into_inner());
    pids.push_back(pid);
    if pids.len() > 16 {
        pids.pop_front();
    }
}

/// Whether `pid` is one of the last restores this process ran.
pub fn is_own_restore(pid: u32) -> bool {
    RESTORE_PIDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&pid)
}

pub(super) fn checked_output(
    program: &str,
    out: std::process::Output,
) -> Result<String, HostError> {
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // Said in pfstate's words: what needs root, and what does not.
        let message = if said.contains("Permission denied") || said.contains("you must be root") {
            "reading the kernel's firewall rules needs root (or CAP_NET_ADMIN): run this command \
             with sudo; validate, render and diff work as any user"
                .to_string()
        } else {
            said
        };
        return Err(HostError::Command {
            program: program.to_string(),
            message,
        });
    }
    // Foreign rules may hold comments that are not UTF-8. pfstate never writes a foreign rule
    // back, and its own rules are ASCII, so a lossy read changes nothing it acts on.
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_save(program: &str, args: &[&str]) -> Result<String, HostError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| HostError::Command {
            program: program.to_string(),
            message: format!("cannot run it ({e}); install the iptables package"),
        })?;
    checked_output(program, out)
}

impl Netfilter for Iptables {
    fn backend_name(&self) -> String {
        format!("iptables{}", self.variant)
    }

    fn save(&self, family: Family, table: &str) -> Result<String, HostError> {
        let program = self.tool(family, "save");
        // Only the full save: `-t TABLE` would create that table and print its chains.
        if table.is_empty() && self.is_legacy() && legacy_is_empty(&program) {
            return Ok(String::new());
        }
        if table.is_empty() {
            return run_save(&program, &[]);
        }
        run_save(&self.tool(family, "save"), &["-t", table])
    }

    fn save_counters(&self, family: Family, table: &str) -> Result<String, HostError> {
        run_save(&self.tool(family, "save"), &["-c", "-t", table])
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
        remember_restore(child.id());
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

/// The [`Netfilter`] of a command on this machine: the backend is detected on first use (a
/// command that never reads the rules starts no process), and [`Netfilter::prefetch`] starts
/// the saves early.
pub struct LiveNetfilter {
    root: Root,
    /// The backend in use and the other one (see [`Iptables::other`]).
    tools: OnceLock<(Iptables, Option<Iptables>)>,
    prefetched: Mutex<Option<Prefetched>>,
}

impl LiveNetfilter {
    pub fn new(root: Root) -> LiveNetfilter {
        LiveNetfilter {
            root,
            tools: OnceLock::new(),
            prefetched: Mutex::new(None),
        }
    }

    fn pair(&self) -> &(Iptables, Option<Iptables>) {
        self.tools.get_or_init(|| {
            let main = Iptables::detect();
            (main, main.other())
        })
    }

    fn tools(&self) -> Iptables {
        self.pair().0
    }

    fn prefetched(&self) -> std::sync::MutexGuard<'_, Option<Prefetched>> {
        self.prefetched.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Netfilter for LiveNetfilter {
    fn save(&self, family: Family, table: &str) -> Result<String, HostError> {
        match self.prefetched().as_ref() {
            Some(p) => p.save(family, table),
            None => self.tools().save(family, table),
        }
    }

    fn save_counters(&self, family: Family, table: &str) -> Result<String, HostError> {
        self.tools().save_counters(family, table)
    }

    fn restore(&self, family: Family, payload: &str) -> Result<(), HostError> {
        self.tools().restore(family, payload)
    }

    fn prefetch(&self) {
        let p = self.tools().prefetch(&self.root);
        *self.prefetched() = Some(p);
    }

    fn is_legacy(&self) -> bool {
        self.tools().is_legacy()
    }

    fn other_backend(&self) -> Option<&dyn Netfilter> {
        self.pair().1.as_ref().map(|i| i as &dyn Netfilter)
    }

    fn backend_name(&self) -> String {
        self.tools().backend_name()
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
