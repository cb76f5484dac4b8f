//! What `pfstate --version` says: the package version and the commit the binary was built from
//! (both set at compile time; `build.rs` explains where the commit comes from).

/// The commit, 12 hex digits, or `unknown` (a build from a tarball without .git).
pub const COMMIT: &str = env!("PFSTATE_BUILD_COMMIT");

/// The commit's date as YYYY-MM-DD, else `SOURCE_DATE_EPOCH`'s, else empty.
pub const DATE: &str = env!("PFSTATE_BUILD_DATE");

/// `0.1.0 (commit 0123456789ab, 2026-12-06)`; clap prints it after the program name.
pub const VERSION: &str = if DATE.is_empty() {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("PFSTATE_BUILD_COMMIT"),
        ")"
    )
} else {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("PFSTATE_BUILD_COMMIT"),
        ", ",
        env!("PFSTATE_BUILD_DATE"),
        ")"
    )
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_the_commit() {
        assert!(VERSION.starts_with(concat!(env!("CARGO_PKG_VERSION"), " (commit ")));
        assert!(
            COMMIT == "unknown"
                || (COMMIT.len() >= 7 && COMMIT.chars().all(|c| c.is_ascii_hexdigit())),
            "{COMMIT}"
        );
        assert!(DATE.is_empty() || DATE.len() == 10, "{DATE}");
    }
}
