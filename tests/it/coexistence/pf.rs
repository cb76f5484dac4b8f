//! pfstate run against one namespace and one --root.

use super::*;

pub(super) struct Pf<'a> {
    pub(super) ns: &'a Ns,
    pub(super) root: PathBuf,
}

pub(super) struct Res {
    pub(super) code: i32,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Res {
    pub(super) fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Pf<'_> {
    pub(super) fn run(&self, args: &[&str]) -> Res {
        let root = self.root.display().to_string();
        let out = run(self
            .ns
            .exec(&[BIN, "--color", "never", "--root", &root])
            .args(args));
        Res {
            code: out.status.code().unwrap_or(-1),
            stdout: text(&out.stdout),
            stderr: text(&out.stderr),
        }
    }
    pub(super) fn ok(&self, args: &[&str]) -> Res {
        let r = self.run(args);
        assert_eq!(r.code, 0, "pfstate {args:?}\n{}", r.show());
        r
    }
    pub(super) fn plan(&self, file: &Path) -> Res {
        self.run(&["plan", file.to_str().unwrap()])
    }
    pub(super) fn apply(&self, file: &Path) -> Res {
        self.ok(&["apply", file.to_str().unwrap()])
    }
    pub(super) fn assert_in_sync(&self, file: &Path, why: &str) {
        let p = self.plan(file);
        assert_eq!(p.code, 0, "{why}: plan should be clean\n{}", p.show());
    }
    pub(super) fn assert_drift(&self, file: &Path, why: &str) -> Res {
        let p = self.plan(file);
        assert_eq!(p.code, 2, "{why}: plan should report drift\n{}", p.show());
        let s = self.run(&["status"]);
        assert!(
            s.stdout.lines().any(|l| l.starts_with("drift:")),
            "{why}: status should say drift\n{}",
            s.show()
        );
        p
    }
}

// ---------------------------------------------------------------------------------------------
// check-untouched, ported: the foreign part of a save, canonical.
