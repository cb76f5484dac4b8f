//! The boot unit a package installs (`/usr/lib/systemd/system/pfstate.service`).
//!
//! When it is there, `apply` enables it and does not write its own copy to /etc/systemd/system:
//! a copy there would shadow the package's unit, so a package upgrade that fixes the unit would
//! never take effect, and purging the package would leave a unit running a binary that is gone.
//! The package's unit runs `/usr/sbin/pfstate apply --boot /etc/pfstate/host.yaml`, exactly
//! what apply would generate for the packaged binary (checked by `render::files::unit`).

use crate::error::HostError;
use crate::host::{Binary, Files};
use crate::render::files::ManagedFile;
use crate::render::files::unit::UNIT_PATH;

/// Where Debian packages put system units (`/lib/systemd/system` is the same directory on a
/// merged-/usr system, and the package installs under /usr/lib).
pub const VENDOR_UNIT_PATH: &str = "/usr/lib/systemd/system/pfstate.service";

/// The binary the package's unit runs.
pub const PACKAGED_BINARY: &str = "/usr/sbin/pfstate";

/// Whether the package's unit is installed on the target system.
pub fn installed(files: &dyn Files) -> Result<bool, HostError> {
    Ok(files.read(VENDOR_UNIT_PATH)?.is_some())
}

/// With the package's unit installed, pfstate's own copy in /etc must not exist (it would
/// shadow the package's); otherwise the files stay as rendered.
pub fn defer_to_package(
    host_files: &dyn Files,
    files: &mut [ManagedFile],
) -> Result<(), HostError> {
    if installed(host_files)? {
        for f in files.iter_mut().filter(|f| f.target == UNIT_PATH) {
            f.content = None;
        }
    }
    Ok(())
}

/// Why the boot unit might not run what this apply ran, if so: the package's unit runs the
/// packaged binary, which may be another version than this one (rendering rules differently);
/// without the package, apply's own unit runs this binary, which must be safe to run at boot.
/// `offline` (`--root`): the running binary says nothing about the target system's.
pub fn boot_binary_problem(
    files: &dyn Files,
    binary: &dyn Binary,
    offline: bool,
) -> Result<Option<String>, HostError> {
    let running = binary.unit_binary();
    if !installed(files)? {
        return Ok(binary.problem(&running));
    }
    Ok((!offline && running != PACKAGED_BINARY).then(|| {
        format!(
            "the package's boot unit runs {PACKAGED_BINARY}, not this binary ({running}); apply with {PACKAGED_BINARY} so the boot applies what was reviewed"
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;
    use crate::render::files::unit::STATE_PATH;

    fn files() -> Vec<ManagedFile> {
        vec![
            ManagedFile {
                target: UNIT_PATH,
                content: Some("[Unit]\n".into()),
            },
            ManagedFile {
                target: STATE_PATH,
                content: Some("version: 1\n".into()),
            },
        ]
    }

    #[test]
    fn own_unit_copy_goes_when_the_package_unit_is_there() {
        let fake = FakeHost::new();
        let host = fake.host();
        let mut without = files();
        defer_to_package(host.files, &mut without).unwrap();
        assert_eq!(without, files());
        host.files.write(VENDOR_UNIT_PATH, "[Unit]\n").unwrap();
        let mut with = files();
        defer_to_package(host.files, &mut with).unwrap();
        assert_eq!(with[0].content, None);
        assert_eq!(with[1], files()[1]);
    }

    /// A binary from `cargo install`, which the fake's checks would call unsafe.
    struct CargoInstalled;
    impl Binary for CargoInstalled {
        fn unit_binary(&self) -> String {
            "/root/.cargo/bin/pfstate".into()
        }
        fn problem(&self, binary: &str) -> Option<String> {
            Some(format!("{binary} is under a home directory"))
        }
        fn spawn_detached(&self, argv: &[String]) -> Result<u32, HostError> {
            Err(HostError::Systemd(format!("not in this test: {argv:?}")))
        }
    }

    #[test]
    fn the_binary_the_boot_will_run_is_checked() {
        let fake = FakeHost::new();
        let host = fake.host();
        let own = boot_binary_problem(host.files, &CargoInstalled, false).unwrap();
        assert!(
            own.is_some_and(|p| p.contains("home directory")),
            "own unit"
        );
        host.files.write(VENDOR_UNIT_PATH, "[Unit]\n").unwrap();
        let other = boot_binary_problem(host.files, &CargoInstalled, false).unwrap();
        assert!(
            other.is_some_and(|p| p.contains("/root/.cargo/bin/pfstate")),
            "package unit, other binary"
        );
        assert_eq!(
            boot_binary_problem(host.files, &CargoInstalled, true).unwrap(),
            None
        );
        let packaged = boot_binary_problem(host.files, host.binary, false).unwrap();
        assert_eq!(packaged, None, "package unit, packaged binary");
    }
}
