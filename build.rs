//! Build facts for `pfstate --version` and the man page date: the git commit the binary is built
//! from, and that commit's date.
//!
//! Where the commit comes from, first match wins:
//! 1. `PFSTATE_BUILD_COMMIT` (and `PFSTATE_BUILD_DATE`, YYYY-MM-DD) from the environment, for
//!    distribution builds from a tarball whose builder knows the commit;
//! 2. `git`, only when the crate's own directory is the top of a git work tree (a tarball
//!    unpacked inside some other repository must not report that repository's commit);
//! 3. `.cargo_vcs_info.json`, which `cargo package` writes into every crate on crates.io, so
//!    `cargo install pfstate` names the published commit;
//! 4. otherwise "unknown": a tarball without .git still builds.
//!
//! The date is the commit's (reproducible), else `SOURCE_DATE_EPOCH`, else empty.

use std::path::Path;
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = Path::new(&dir);
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=.cargo_vcs_info.json");
    for var in [
        "PFSTATE_BUILD_COMMIT",
        "PFSTATE_BUILD_DATE",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let (commit, date) = from_env()
        .or_else(|| from_git(dir))
        .or_else(|| from_vcs_info(dir))
        .unwrap_or_else(|| ("unknown".to_string(), None));
    let date = date.or_else(source_date).unwrap_or_default();
    println!("cargo::rustc-env=PFSTATE_BUILD_COMMIT={commit}");
    println!("cargo::rustc-env=PFSTATE_BUILD_DATE={date}");
}

fn from_env() -> Option<(String, Option<String>)> {
    let commit = std::env::var("PFSTATE_BUILD_COMMIT").ok()?;
    let commit = commit.trim();
    if commit.is_empty() {
        return None;
    }
    let date = std::env::var("PFSTATE_BUILD_DATE").ok();
    Some((commit.chars().take(40).collect(), date))
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn from_git(dir: &Path) -> Option<(String, Option<String>)> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    if !same(Path::new(&top), dir) {
        return None;
    }
    // Re-run when HEAD moves: HEAD itself (checkout), the branch ref (commit), packed refs.
    for name in ["HEAD", "packed-refs"] {
        if let Some(p) = git(dir, &["rev-parse", "--git-path", name]) {
            println!("cargo::rerun-if-changed={}", dir.join(p).display());
        }
    }
    if let Some(r) = git(dir, &["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(dir, &["rev-parse", "--git-path", &r])
    {
        println!("cargo::rerun-if-changed={}", dir.join(p).display());
    }
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    let date = git(
        dir,
        &["log", "-1", "--format=%cd", "--date=format:%Y-%m-%d"],
    );
    Some((commit, date))
}

/// `{"git": {"sha1": "<40 hex>", ...}, ...}`: read the sha1 without a JSON parser (build
/// dependencies would slow every build for one field).
fn from_vcs_info(dir: &Path) -> Option<(String, Option<String>)> {
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let rest = &text[text.find("\"sha1\"")? + 6..];
    let start = rest.find('"')? + 1;
    let sha: String = rest[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (sha.len() >= 12).then(|| (sha[..12].to_string(), None))
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org) as YYYY-MM-DD in UTC, by date(1): pfstate
/// builds on Linux only, and the conversion is not worth a copy of a calendar algorithm.
fn source_date() -> Option<String> {
    let secs: i64 = std::env::var("SOURCE_DATE_EPOCH")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%F"])
        .output()
        .ok()?;
    let date = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && date.len() == 10).then_some(date)
}
