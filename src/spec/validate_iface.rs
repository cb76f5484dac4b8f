//! Validation of what a forward needs to know about interfaces: the `interfaces:` aliases
//! (with the networks behind them), a concrete `via`, and the keys `local` and `hairpin: true`
//! need. Rendering asks the machine nothing (issue 11), so where a rule needs a fact about the
//! host, the file must state it, and the message names the key to add.

use ipnet::IpNet;

use super::span::{Spanned, at};
use super::validate::Validator;
use super::yaml as spec;
use crate::model::{Family, Hairpin};
use crate::names;

/// How a missing `via` is written in the examples of the messages.
const VIA_EXAMPLE: &str = "`via: lan` (with `interfaces: {lan: eth1}`)";

impl Validator {
    /// `interfaces:`: each alias, its device and the networks it states.
    pub(crate) fn aliases(&mut self, interfaces: &spec::Entries<Spanned<spec::InterfaceSpec>>) {
        for (alias, iface) in &interfaces.0 {
            let iface = &iface.value;
            if names::entry_name_problem(alias).is_some() {
                self.err(
                    at(alias),
                    format!(
                        "interface alias `{}` must be lowercase letters, digits, '-' or '_'",
                        alias.escape_debug()
                    ),
                );
            }
            if let Some(p) = names::interface_problem(&iface.name) {
                self.err(at(&iface.name), p);
            }
            let nets: Vec<IpNet> = iface
                .networks
                .iter()
                .filter_map(|n| self.network(n))
                .collect();
            self.interfaces
                .insert(alias.value.clone(), iface.name.value.clone());
            self.networks.insert(alias.value.clone(), nets);
        }
    }

    /// An interface field that must name one interface (`via`): sysctls and the guard rule
    /// are per interface, so a wildcard (`eth+`) would name none.
    pub(crate) fn concrete_interface(&mut self, s: &Spanned<String>, key: &str) -> Option<String> {
        let dev = self.interface(s)?;
        if dev.ends_with('+') {
            let through = if dev == s.value {
                String::new()
            } else {
                format!(" (alias `{}`)", s.value)
            };
            self.err(
                at(s),
                format!(
                    "`{dev}`{through} is a wildcard; `{key}` needs one interface by name, because route_localnet and its guard rule are set per interface: write for example `{key}: eth1`"
                ),
            );
            return None;
        }
        Some(dev)
    }

    /// `hairpin:` in the model: `true` takes the networks the `via` alias states.
    pub(crate) fn hairpin(
        &mut self,
        f: &spec::ForwardSpec,
        family: Option<Family>,
        has_via: bool,
    ) -> Hairpin {
        let Some(h) = &f.hairpin else {
            return Hairpin::Off;
        };
        if f.listen.interface.is_some()
            && f.via.is_none()
            && !matches!(h.value, spec::Hairpin::Flag(false))
        {
            self.err(at(h), format!("hairpin with `listen.interface` needs `via:`, the interface LAN clients come in on, so their connections are caught there too; add {VIA_EXAMPLE}"));
        }
        match &h.value {
            spec::Hairpin::Flag(false) => Hairpin::Off,
            spec::Hairpin::Networks(nets) => Hairpin::Networks(
                nets.iter()
                    .filter_map(|n| self.network_of(n, family))
                    .collect(),
            ),
            spec::Hairpin::Flag(true) => {
                let Some(via) = f.via.as_ref().filter(|_| has_via) else {
                    if f.via.is_none() {
                        self.err(at(h), "`hairpin: true` masquerades the clients of the networks behind `via`, which is missing: add `via: lan` with `interfaces: {lan: {name: eth1, networks: [192.168.1.0/24]}}`, or list the client networks: `hairpin: [192.168.1.0/24]`");
                    }
                    return Hairpin::Off;
                };
                let nets: Vec<IpNet> = self
                    .networks
                    .get(&via.value)
                    .into_iter()
                    .flatten()
                    .filter(|n| family.is_none_or(|fam| Family::of(&n.addr()) == fam))
                    .copied()
                    .collect();
                if nets.is_empty() {
                    let fam = family.map(|f| format!(" {f}")).unwrap_or_default();
                    let dev = self.interfaces.get(&via.value).unwrap_or(&via.value);
                    self.err(at(h), format!("`hairpin: true` takes the client networks from the `via` interface, and the file states no{fam} networks for `{}`: write `interfaces: {{{}: {{name: {dev}, networks: [192.168.1.0/24]}}}}`, or list them: `hairpin: [192.168.1.0/24]`", via.value, alias_for(&via.value, &self.interfaces)));
                }
                Hairpin::Networks(nets)
            }
        }
    }

    /// IPv4 `local: true` reaches the backends through 127.0.0.1 too, which needs
    /// route_localnet and its guard rule on the interface towards them: `via` names it.
    pub(crate) fn check_needs_via(&mut self, f: &spec::ForwardSpec, family: Family) {
        if let Some(l) = f.local.as_ref().filter(|l| l.value)
            && f.via.is_none()
            && family == Family::V4
        {
            self.err(at(l), format!("`local: true` needs `via:`, the interface the backends are reached through: route_localnet and its guard rule are set on that interface; add {VIA_EXAMPLE}"));
        }
    }
}

/// The alias to suggest in a message: the one given, or `lan` when a device was named directly.
fn alias_for(given: &str, aliases: &std::collections::BTreeMap<String, String>) -> String {
    if aliases.contains_key(given) {
        given.to_string()
    } else {
        "lan".to_string()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Hairpin;
    use crate::spec::load_str;

    /// The one error of a file, as `LINE:COL: message`.
    fn error(yaml: &str) -> String {
        let e = load_str("t.yaml", yaml).expect_err("must be refused");
        assert_eq!(e.diagnostics.len(), 1, "{e}");
        let d = &e.diagnostics[0];
        format!("{}:{}: {}", d.location.line, d.location.column, d.message)
    }

    #[test]
    fn hairpin_true_takes_the_networks_the_via_alias_states() {
        let m = load_str("t.yaml", "version: 1\ninterfaces:\n  lan: {name: eth1, networks: [192.168.1.0/24, 'fd00::/64']}\nforwards:\n  - {name: web, listen: {port: 80}, to: 192.168.1.2, hairpin: true, via: lan}\n").unwrap();
        let f = &m.forwards[0];
        assert_eq!(
            f.hairpin,
            Hairpin::Networks(vec!["192.168.1.0/24".parse().unwrap()])
        );
        assert_eq!(f.via.as_deref(), Some("eth1"));
        assert_eq!(m.interfaces["lan"], "eth1");
    }

    #[test]
    fn a_rule_that_needs_a_host_fact_names_the_key_to_add() {
        let e = error(
            "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.0.0.2, local: true}\n",
        );
        assert!(e.starts_with("3:58: `local: true` needs `via:`"), "{e}");
        assert!(
            e.contains("add `via: lan` (with `interfaces: {lan: eth1}`)"),
            "{e}"
        );
        let e = error(
            "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.0.0.2, hairpin: true}\n",
        );
        assert!(e.starts_with("3:60: `hairpin: true` masquerades"), "{e}");
        assert!(e.contains("networks: [192.168.1.0/24]"), "{e}");
        let e = error(
            "version: 1\ninterfaces: {lan: eth1}\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.0.0.2, hairpin: true, via: lan}\n",
        );
        assert!(e.contains("states no ipv4 networks for `lan`: write `interfaces: {lan: {name: eth1, networks: [192.168.1.0/24]}}`"), "{e}");
        let e = error(
            "version: 1\ninterfaces: {wan: eth0}\nforwards:\n  - {name: web, listen: {port: 80, interface: wan}, to: 10.0.0.2, hairpin: [10.0.0.0/24]}\n",
        );
        assert!(
            e.contains("hairpin with `listen.interface` needs `via:`"),
            "{e}"
        );
    }

    #[test]
    fn ipv6_local_needs_no_via() {
        load_str("t.yaml", "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: '[fd00::2]:80', local: true}\n").unwrap();
    }

    #[test]
    fn wildcards_are_refused_where_one_interface_is_needed_only() {
        let e = error(
            "version: 1\ninterfaces: {lan: eth+}\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.0.0.2, local: true, via: lan}\n",
        );
        assert!(
            e.contains("`eth+` (alias `lan`) is a wildcard; `via` needs one interface by name"),
            "{e}"
        );
        let e = error(
            "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.0.0.2, via: lan+}\n",
        );
        assert!(e.contains("`lan+` is a wildcard"), "{e}");
        let ok = "version: 1\ninterfaces: {wan: ppp+}\nforwards:\n  - {name: web, listen: {port: 80, interface: wan}, to: 10.0.0.2}\nsnat:\n  - {name: out, source: 10.0.0.0/24, out_interface: ppp+}\nfilter:\n  - {name: f, chain: forward, in_interface: veth+, out_interface: wan, action: accept}\n";
        let m = load_str("t.yaml", ok).unwrap();
        assert_eq!(m.forwards[0].interface.as_deref(), Some("ppp+"));
    }

    #[test]
    fn sysctls_outside_net_and_route_localnet_are_refused_with_the_reason() {
        let e = error("version: 1\nsysctl:\n  kernel.core_pattern: '|/tmp/x'\n");
        assert!(e.starts_with("3:3: `kernel.core_pattern` is outside net.: pfstate keeps a host's networking state"), "{e}");
        let e = error("version: 1\nsysctl:\n  net.ipv4.conf.eth+.rp_filter: 1\n");
        assert!(e.contains("interface wildcard `eth+`"), "{e}");
        let e = error("version: 1\nsysctl:\n  net.ipv4.conf.eth1.route_localnet: 1\n");
        assert!(e.contains("write `local: true` and `via:`"), "{e}");
    }

    #[test]
    fn an_alias_map_needs_a_name_and_valid_networks() {
        let e = load_str(
            "t.yaml",
            "version: 1\ninterfaces:\n  lan: {networks: [10.0.0.0/24]}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("name"), "{e}");
        let e = error("version: 1\ninterfaces:\n  lan: {name: eth1, networks: [10.0.0.1/24]}\n");
        assert!(
            e.contains("host bits set; did you mean 10.0.0.0/24?"),
            "{e}"
        );
    }
}
