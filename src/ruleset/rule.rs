//! One iptables rule, built from typed parts and printed exactly as `iptables-save` prints it.
//!
//! `iptables-save` does not echo what was typed (see the table in the README): it prints the
//! address and interface options first in a fixed order, addresses with their prefix length,
//! the comment double-quoted when it holds anything but letters, digits, '_' and '-', and it
//! keeps the order of `-m` matches as they were given. Rendering that form directly makes the
//! plan a plain text comparison with the kernel; `tests/it/kernel_canonical.rs` holds every shape
//! rendered here against the real `iptables-save`.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use super::words::{option, unquote, words};
use crate::model::{PortRange, Proto};

/// What a rule requires of a packet, for the tree layout: one protocol and a port range (the
/// option that holds the port depends on the chain; see `ruleset::table::HOOKS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub proto: Proto,
    pub port: PortRange,
}

/// A rule under construction. Options are stored by kind so the printed order is canonical
/// whatever order the renderer sets them in. It stays a value (its chain can change, its key
/// is known) until [`Rule::line`] prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    chain: String,
    source: Option<(bool, IpNet)>,
    destination: Option<(bool, IpNet)>,
    in_interface: Option<String>,
    out_interface: Option<String>,
    proto: Option<String>,
    matches: Vec<String>,
    comment: Option<String>,
    target: String,
    /// `-g` instead of `-j`.
    goto: bool,
    key: Option<Key>,
}

impl Rule {
    pub fn new(chain: &str) -> Rule {
        Rule {
            chain: chain.to_string(),
            ..Rule::default()
        }
    }
    /// `-s NET`; a /0 matches every address and `iptables-save` prints nothing for it.
    pub fn source(mut self, net: IpNet) -> Rule {
        self.source = (net.prefix_len() > 0).then_some((false, net));
        self
    }
    pub fn not_source(mut self, net: IpNet) -> Rule {
        self.source = Some((true, net));
        self
    }
    /// `-d NET`; a /0 is printed as nothing, as for [`Rule::source`].
    pub fn destination(mut self, net: IpNet) -> Rule {
        self.destination = (net.prefix_len() > 0).then_some((false, net));
        self
    }
    pub fn in_interface(mut self, name: &str) -> Rule {
        self.in_interface = Some(name.to_string());
        self
    }
    pub fn out_interface(mut self, name: &str) -> Rule {
        self.out_interface = Some(name.to_string());
        self
    }
    pub fn maybe_in_interface(self, name: Option<&str>) -> Rule {
        match name {
            Some(n) => self.in_interface(n),
            None => self,
        }
    }
    pub fn maybe_out_interface(self, name: Option<&str>) -> Rule {
        match name {
            Some(n) => self.out_interface(n),
            None => self,
        }
    }
    /// `-p NAME`; `-p all` is what iptables prints as nothing, so callers pass `None` for it.
    pub fn proto(mut self, name: &str) -> Rule {
        self.proto = Some(name.to_string());
        self
    }
    /// A match module with its options, e.g. `m("tcp", "--dport 80")`.
    pub fn m(mut self, module: &str, options: &str) -> Rule {
        self.matches.push(format!("-m {module} {options}"));
        self
    }
    pub fn comment(mut self, text: &str) -> Rule {
        self.comment = Some(text.to_string());
        self
    }
    pub fn target(mut self, target: &str) -> Rule {
        self.target = target.to_string();
        self
    }
    /// `-g CHAIN`: go to a chain without returning here.
    pub fn goto(mut self, chain: &str) -> Rule {
        self.target = chain.to_string();
        self.goto = true;
        self
    }
    /// Record the protocol and port range the rule requires (it prints nothing).
    pub fn keyed(mut self, proto: Proto, port: PortRange) -> Rule {
        self.key = Some(Key { proto, port });
        self
    }
    /// The same rule in another chain.
    pub fn in_chain(mut self, chain: &str) -> Rule {
        self.chain = chain.to_string();
        self
    }
    pub fn chain(&self) -> &str {
        &self.chain
    }
    pub fn key(&self) -> Option<Key> {
        self.key
    }
    /// The destination it requires (not negated), if any.
    pub fn destination_net(&self) -> Option<IpNet> {
        self.destination.filter(|(neg, _)| !neg).map(|(_, n)| n)
    }

    /// The `-A CHAIN ...` line as `iptables-save` prints it.
    pub fn line(&self) -> String {
        let mut out = format!("-A {}", self.chain);
        let mut push = |s: &str| {
            out.push(' ');
            out.push_str(s);
        };
        if let Some((neg, net)) = &self.source {
            push(&format!(
                "{}-s {}",
                if *neg { "! " } else { "" },
                net_text(*net)
            ));
        }
        if let Some((neg, net)) = &self.destination {
            push(&format!(
                "{}-d {}",
                if *neg { "! " } else { "" },
                net_text(*net)
            ));
        }
        if let Some(i) = &self.in_interface {
            push(&format!("-i {i}"));
        }
        if let Some(o) = &self.out_interface {
            push(&format!("-o {o}"));
        }
        if let Some(p) = &self.proto {
            push(&format!("-p {p}"));
        }
        for m in &self.matches {
            push(m);
        }
        if let Some(c) = &self.comment {
            push(&format!("-m comment --comment {}", save_string(c)));
        }
        if !self.target.is_empty() {
            let verb = if self.goto { "-g" } else { "-j" };
            push(&format!("{verb} {}", self.target));
        }
        out
    }
}

/// An address as `iptables-save` prints it (glibc's `inet_ntop`). Rust's `Display` agrees except
/// for the deprecated IPv4-compatible IPv6 form: `::1.2.3.4` is `::102:304` in Rust but stays
/// dotted in `inet_ntop` (first 96 bits zero, seventh group not zero).
pub fn addr_text(addr: IpAddr) -> String {
    match addr {
        IpAddr::V6(a) => v6_text(a),
        IpAddr::V4(a) => a.to_string(),
    }
}

fn v6_text(a: Ipv6Addr) -> String {
    let s = a.segments();
    if s[..6].iter().all(|w| *w == 0) && s[6] != 0 {
        let [.., b0, b1, b2, b3] = a.octets();
        return format!("::{b0}.{b1}.{b2}.{b3}");
    }
    a.to_string()
}

/// `ADDR/LEN` as `-s`/`-d` print it (always with the prefix length, /32 and /128 included).
pub fn net_text(net: IpNet) -> String {
    format!("{}/{}", addr_text(net.addr()), net.prefix_len())
}

/// The comment of every rule of entry `name` (a forward, snat or filter): `pfstate:NAME`.
pub fn entry_comment(name: &str) -> String {
    format!("{ENTRY_TAG}{name}")
}

/// The entry a rule line belongs to, read back from the comment [`entry_comment`] wrote.
pub fn entry_of(line: &str) -> Option<String> {
    let w = words(line);
    let comment = unquote(option(&w, "--comment")?);
    comment.strip_prefix(ENTRY_TAG).map(str::to_string)
}

const ENTRY_TAG: &str = "pfstate:";

/// A string argument as `iptables-save` quotes it (xtables_save_string): bare when it is
/// only letters, digits, '_' and '-', otherwise in double quotes with `"`, `\` and `'` escaped.
pub fn save_string(value: &str) -> String {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `--probability` as the kernel stores (a 31-bit fraction) and `iptables-save` prints it.
pub fn probability_text(p: f64) -> String {
    let scale = 2_147_483_648.0_f64; // 2^31, libxt_statistic's fixed point
    let stored = (p * scale).round().clamp(0.0, scale);
    format!("{:.11}", stored / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_print_in_canonical_order() {
        let r = Rule::new("X")
            .proto("tcp")
            .in_interface("lan0")
            .destination("127.0.0.0/8".parse().unwrap())
            .not_source("127.0.0.0/8".parse().unwrap())
            .m("tcp", "--dport 22")
            .comment("pfstate:ssh")
            .target("DROP");
        assert_eq!(
            r.line(),
            "-A X ! -s 127.0.0.0/8 -d 127.0.0.0/8 -i lan0 -p tcp -m tcp --dport 22 -m comment --comment \"pfstate:ssh\" -j DROP"
        );
    }

    #[test]
    fn addresses_print_as_inet_ntop() {
        for (typed, printed) in [
            ("::1.2.3.4/128", "::1.2.3.4/128"),
            ("::1.2.0.0/112", "::1.2.0.0/112"),
            ("::ffff:1.2.3.4/128", "::ffff:1.2.3.4/128"),
            ("::1/128", "::1/128"),
            ("::102/128", "::102/128"),
            ("::/128", "::/128"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("10.0.0.1/32", "10.0.0.1/32"),
        ] {
            assert_eq!(net_text(typed.parse().unwrap()), printed, "{typed}");
        }
    }

    #[test]
    fn any_address_is_no_option() {
        let any4: IpNet = "0.0.0.0/0".parse().unwrap();
        let any6: IpNet = "::/0".parse().unwrap();
        let r = Rule::new("X")
            .source(any4)
            .destination(any6)
            .target("ACCEPT");
        assert_eq!(r.line(), "-A X -j ACCEPT");
    }

    #[test]
    fn quoting_follows_xtables() {
        assert_eq!(save_string("pfstate"), "pfstate");
        assert_eq!(save_string("pfstate:web"), "\"pfstate:web\"");
        assert_eq!(save_string("a b"), "\"a b\"");
        assert_eq!(save_string(""), "\"\"");
    }

    #[test]
    fn probabilities_match_what_the_kernel_prints() {
        // Pairs measured with iptables 1.8.9 (see notes/traffic-tests.md).
        for (p, text) in [
            (0.5, "0.50000000000"),
            (0.25, "0.25000000000"),
            (0.33333333, "0.33333333023"),
            (1.0 / 3.0, "0.33333333349"),
            (0.2, "0.20000000019"),
            (0.1, "0.10000000009"),
            (0.66666667, "0.66666666977"),
            (1.0, "1.00000000000"),
        ] {
            assert_eq!(probability_text(p), text, "{p}");
        }
    }
}
