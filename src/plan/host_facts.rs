//! Warnings from what the live host says about the file's facts: a listen address the host
//! does not have, an interface that does not exist, a backend with no route or routed through
//! another interface than `via`, hairpin through a bridge. Only warnings: the rules are a
//! function of the file alone (issue 11), and at boot interfaces and routes may not exist yet.

use crate::host::facts::Facts;
use crate::model::{Hairpin, Model};

/// At most this many warnings of one kind are listed, then a count (a file of 10,000 forwards
/// on a host without their routes must not print 10,000 lines).
const MAX_PER_KIND: usize = 5;

pub fn warnings(model: &Model, facts: &Facts) -> Vec<String> {
    let mut kinds: Vec<Vec<String>> = vec![
        missing_interfaces(model, facts),
        foreign_addresses(model, facts),
        unrouted_backends(model, facts),
        bridges(model, facts),
    ];
    let mut out = Vec::new();
    for kind in &mut kinds {
        kind.dedup();
        let more = kind.len().saturating_sub(MAX_PER_KIND);
        out.extend(kind.drain(..).take(MAX_PER_KIND));
        if more > 0 {
            out.push(format!("... and {more} more like the above"));
        }
    }
    out
}

/// Every interface the file names by exact name (wildcards match whatever exists).
fn missing_interfaces(model: &Model, facts: &Facts) -> Vec<String> {
    let mut named: Vec<(&str, String)> = Vec::new();
    for f in &model.forwards {
        for i in [&f.interface, &f.via].into_iter().flatten() {
            named.push((i, format!("forward `{}`", f.name)));
        }
    }
    for s in &model.snats {
        if let Some(i) = &s.out_interface {
            named.push((i, format!("snat `{}`", s.name)));
        }
    }
    for r in &model.filters {
        for i in [&r.in_interface, &r.out_interface].into_iter().flatten() {
            named.push((i, format!("filter `{}`", r.name)));
        }
    }
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (iface, who) in named {
        if iface.ends_with('+') || facts.link(iface).is_some() || seen.contains(&iface) {
            continue;
        }
        seen.push(iface);
        out.push(format!("interface {iface} ({who}) does not exist here (yet): its rules match nothing until it does"));
    }
    out
}

fn foreign_addresses(model: &Model, facts: &Facts) -> Vec<String> {
    model
        .forwards
        .iter()
        .filter_map(|f| {
            let a = f.address?;
            (!facts.is_local(a)).then(|| format!("forward `{}`: listen address {a} is not an address of this host (yet): its DNAT matches nothing until it is", f.name))
        })
        .collect()
}

fn unrouted_backends(model: &Model, facts: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    for f in &model.forwards {
        for b in f.backends.iter().filter(|b| !facts.is_local(b.addr)) {
            match (facts.egress(b.addr), f.via.as_deref()) {
                (None, _) => out.push(format!(
                    "forward `{}`: no route to backend {} here (yet)",
                    f.name, b.addr
                )),
                (Some(dev), Some(via)) if dev != via => out.push(format!(
                    "forward `{}`: backend {} is routed through {dev}, not through `via` {via}: the rules for {via} (source NAT, route_localnet) do not apply to it",
                    f.name, b.addr
                )),
                _ => {}
            }
        }
    }
    out
}

/// A backend reaching itself through a hairpin forward on a bridge needs hairpin mode on its
/// bridge port, which is not pfstate's to set.
fn bridges(model: &Model, facts: &Facts) -> Vec<String> {
    model
        .forwards
        .iter()
        .filter(|f| f.hairpin != Hairpin::Off)
        .filter_map(|f| {
            let via = f.via.as_deref()?;
            facts.link(via).filter(|l| l.bridge).map(|_| format!(
                "forward `{}`: {via} is a bridge; for a backend to reach itself through the forward, its bridge port needs hairpin mode (`bridge link set dev PORT hairpin on`)",
                f.name
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::facts::{Link, Route};

    fn model(yaml: &str) -> Model {
        crate::spec::load_str("t.yaml", yaml).unwrap()
    }

    fn gateway() -> Facts {
        Facts {
            links: vec![
                Link {
                    name: "eth0".into(),
                    bridge: false,
                    addrs: vec!["203.0.113.10/24".parse().unwrap()],
                },
                Link {
                    name: "br0".into(),
                    bridge: true,
                    addrs: vec!["192.168.1.1/24".parse().unwrap()],
                },
            ],
            routes: vec![
                Route {
                    dst: "203.0.113.0/24".parse().unwrap(),
                    dev: Some("eth0".into()),
                },
                Route {
                    dst: "192.168.1.0/24".parse().unwrap(),
                    dev: Some("br0".into()),
                },
            ],
        }
    }

    #[test]
    fn a_host_that_matches_the_file_gives_no_warning() {
        let m = model(
            "version: 1\ninterfaces: {wan: eth0, lan: br0}\nforwards:\n  - {name: web, listen: {port: 80, address: 203.0.113.10, interface: wan}, to: 192.168.1.2:8080, local: true, via: lan}\n",
        );
        assert_eq!(warnings(&m, &gateway()), Vec::<String>::new());
    }

    #[test]
    fn each_fact_the_host_contradicts_is_one_warning() {
        let m = model(
            "version: 1\ninterfaces: {wan: eth9, lan: br0}\nforwards:\n  - {name: web, listen: {port: 80, address: 198.51.100.1, interface: wan}, to: 10.0.0.2:8080, hairpin: [192.168.1.0/24], via: lan}\n  - {name: db, listen: {port: 81}, to: 203.0.113.5, via: lan}\n",
        );
        let w = warnings(&m, &gateway());
        let has = |s: &str| w.iter().any(|x| x.contains(s));
        assert!(
            has("interface eth9 (forward `web`) does not exist"),
            "{w:?}"
        );
        assert!(
            has("listen address 198.51.100.1 is not an address"),
            "{w:?}"
        );
        assert!(has("no route to backend 10.0.0.2"), "{w:?}");
        assert!(
            has("203.0.113.5 is routed through eth0, not through `via` br0"),
            "{w:?}"
        );
        assert!(has("br0 is a bridge"), "{w:?}");
        assert_eq!(w.len(), 5, "{w:?}");
    }

    #[test]
    fn many_warnings_of_one_kind_are_counted_not_listed() {
        let mut yaml = String::from("version: 1\nforwards:\n");
        for i in 0..40 {
            yaml.push_str(&format!(
                "  - {{name: f{i}, listen: {{port: {}}}, to: 10.0.0.{i}}}\n",
                1000 + i
            ));
        }
        let w = warnings(&model(&yaml), &gateway());
        assert_eq!(w.len(), MAX_PER_KIND + 1, "{w:?}");
        assert_eq!(w[MAX_PER_KIND], "... and 35 more like the above");
    }
}
