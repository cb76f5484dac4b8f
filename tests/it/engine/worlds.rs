//! The two worlds: the in-memory fake host, and a real network namespace driven through the binary.

use super::*;

pub(super) struct FakeWorld {
    pub(super) host: FakeHost,
    pub(super) dir: tempfile::TempDir,
}

impl FakeWorld {
    pub(super) fn new() -> FakeWorld {
        let host = FakeHost::new();
        for k in sysctl_keys() {
            host.sysctl.insert(&k, "0");
        }
        FakeWorld {
            host,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
}

impl World for FakeWorld {
    fn pfstate(&self, args: &[&str]) -> (u8, String) {
        let root = self.dir.path().display().to_string();
        let mut argv = vec!["pfstate", "--root", &root, "--color", "never"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("arguments");
        let ctx = Ctx::new(&cli);
        let result = cmd::run(&cli, &ctx, &self.host.host());
        let text = match &result {
            Ok(o) => format!("{}{}", o.diff, o.notes.join("\n")),
            Err(e) => e.to_string(),
        };
        (output::exit_code(&result), text)
    }
    fn load(&self, family: Family, save: &str) {
        self.host.netfilter.load(family, save);
    }
    fn try_restore(&self, family: Family, payload: &str) -> bool {
        use pfstate::host::Netfilter;
        self.host.netfilter.restore(family, payload).is_ok()
    }
    fn dump(&self, family: Family) -> String {
        self.host.netfilter.dump(family, "", false)
    }
    fn sysctl(&self, key: &str) -> Option<String> {
        self.host.sysctl.values().get(key).cloned()
    }
    fn file(&self, target: &str) -> Option<String> {
        self.host.files.all().get(target).cloned()
    }
    fn write_input(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write input");
        path.display().to_string()
    }
}

pub(super) struct KernelWorld {
    pub(super) ns: Netns,
    pub(super) dir: tempfile::TempDir,
}

impl KernelWorld {
    pub(super) fn new() -> KernelWorld {
        let ns = Netns::create(
            "engine",
            NetnsOptions {
                ipv6: true,
                ..NetnsOptions::default()
            },
        )
        .expect("netns");
        // A veth pair: this kernel has no dummy devices.
        let [a, b] = IFACES;
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b])
            .expect("veth");
        let zeros: Vec<String> = sysctl_keys();
        let kv: Vec<(&str, &str)> = zeros.iter().map(|k| (k.as_str(), "0")).collect();
        ns.set_sysctls(&kv).expect("sysctls");
        KernelWorld {
            ns,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(super) fn feed(&self, family: Family, text: &str, noflush: bool) -> bool {
        let tool = match family {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        };
        let flag = if noflush { "--noflush" } else { "" };
        let script = format!("{tool} {flag} <<'EOF'\n{text}EOF\n");
        let out = self
            .ns
            .exec_output("sh", &["-c", &script])
            .expect("restore");
        out.status.success()
    }
}

impl World for KernelWorld {
    fn pfstate(&self, args: &[&str]) -> (u8, String) {
        let root = self.dir.path().display().to_string();
        let mut argv = vec![
            "netns",
            "exec",
            self.ns.name(),
            BIN,
            "--root",
            &root,
            "--color",
            "never",
        ];
        argv.extend_from_slice(args);
        let out = std::process::Command::new("ip")
            .args(&argv)
            .output()
            .expect("pfstate");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1) as u8, text)
    }
    fn load(&self, family: Family, save: &str) {
        assert!(self.feed(family, save, false), "fixture refused");
    }
    fn try_restore(&self, family: Family, payload: &str) -> bool {
        self.feed(family, payload, true)
    }
    fn dump(&self, family: Family) -> String {
        let tool = match family {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        };
        normalize(&self.ns.exec(tool, &[]).expect("save"))
    }
    fn sysctl(&self, key: &str) -> Option<String> {
        self.ns.sysctl(key).expect("sysctl")
    }
    fn file(&self, target: &str) -> Option<String> {
        let path = self.dir.path().join(target.trim_start_matches('/'));
        let text = std::fs::read_to_string(path).ok()?;
        Some(text.replace(BIN, "/usr/sbin/pfstate"))
    }
    fn write_input(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write input");
        path.display().to_string()
    }
}
