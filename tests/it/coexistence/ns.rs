//! A network namespace holding a fixture, and the small process helpers.

use super::*;

/// A network namespace `pfc-<pid>-<n>`, deleted on drop (also when the test panics).
pub(super) struct Ns {
    pub(super) name: String,
}

pub(super) fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub(super) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

pub(super) fn must(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

impl Ns {
    pub(super) fn new() -> Ns {
        let name = format!(
            "pfc-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        must(Command::new("ip").args(["netns", "add", &name]));
        let ns = Ns { name };
        // A LAN interface for `via:` and route_localnet, and loopback up.
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&[
            "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
        ]);
        ns.ip(&["link", "set", "lan0p", "up"]);
        ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "lan0"]);
        ns.ip(&["-6", "addr", "add", "fd00:99::1/64", "dev", "lan0", "nodad"]);
        ns.ip(&["link", "set", "lan0", "up"]);
        ns
    }

    pub(super) fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    pub(super) fn ip(&self, args: &[&str]) -> String {
        must(self.exec(&["ip"]).args(args))
    }

    pub(super) fn sh(&self, args: &[&str]) -> String {
        must(&mut self.exec(args))
    }

    /// `iptables-save` (or `ip6tables-save`) of this namespace.
    pub(super) fn save(&self, v6: bool) -> String {
        self.sh(&[if v6 {
            "ip6tables-save"
        } else {
            "iptables-save"
        }])
    }

    pub(super) fn saves(&self) -> [String; 2] {
        [self.save(false), self.save(true)]
    }

    /// ipset + nfacct + iptables-restore, through the fixture's own loader.
    pub(super) fn load(&self, fixture: &str) {
        must(
            Command::new(format!("{FIXTURES}/load-fixture.sh"))
                .args([&self.name, &format!("{FIXTURES}/{fixture}")]),
        );
        let six = run(self
            .exec(&["ip6tables-restore"])
            .stdin(std::fs::File::open(format!("{FIXTURES}/ipv6-foreign.rules")).unwrap()));
        assert!(six.status.success(), "{}", text(&six.stderr));
    }

    pub(super) fn event(&self, event: &str, arg: Option<&Path>) {
        let mut c = Command::new(format!("{FIXTURES}/simulate-event.sh"));
        c.args([&self.name, event]);
        if let Some(a) = arg {
            c.arg(a);
        }
        must(&mut c);
    }

    pub(super) fn ipt(&self, args: &[&str]) {
        self.sh(&[&["iptables", "-w"][..], args].concat());
    }

    /// One `iptables` command written as a line (`-t nat -D PREROUTING ...`); only for
    /// arguments without spaces.
    pub(super) fn ipt_line(&self, line: &str) {
        self.ipt(&line.split_whitespace().collect::<Vec<_>>());
    }

    pub(super) fn sysctl(&self, key: &str) -> String {
        self.sh(&["sysctl", "-n", key]).trim().to_string()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

// ---------------------------------------------------------------------------------------------
// pfstate
