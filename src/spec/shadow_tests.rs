//! Shadowing is reported when an earlier entry takes every packet of a later one, and only
//! then.

use super::warnings;
use crate::spec::load_str;

fn warn(body: &str) -> Vec<String> {
    let text = format!("version: 1\n{body}");
    warnings(&load_str("f.yaml", &text).unwrap_or_else(|e| panic!("{e}")))
}

const WEB: &str = "forwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}\n";

#[test]
fn a_drop_before_a_forward_accept_is_named() {
    let w = warn(&format!(
        "{WEB}filter:\n  - {{name: block, chain: forward, action: drop}}\n"
    ));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("filter entry `block` drops every new connection of forward `web`"),
        "{w:?}"
    );
    let w = warn(&format!(
        "{WEB}filter:\n  - {{name: p, chain: forward, proto: tcp, dport: 8080, action: reject}}\n"
    ));
    assert_eq!(w.len(), 1, "the backend port is what FORWARD sees: {w:?}");
}

#[test]
fn partial_overlaps_are_not_shadows() {
    for f in [
        "{name: b, chain: forward, proto: tcp, original_port: 80, source: 10.0.0.0/8, action: drop}",
        "{name: b, chain: forward, proto: udp, action: drop}",
        "{name: b, chain: forward, proto: tcp, dport: 80, action: drop}",
        "{name: b, chain: forward, state: [invalid], action: drop}",
        "{name: b, chain: input, action: drop}",
        "{name: b, chain: forward, limit: 1/second, action: drop}",
    ] {
        assert_eq!(
            warn(&format!("{WEB}filter:\n  - {f}\n")),
            Vec::<String>::new(),
            "{f}"
        );
    }
}

#[test]
fn an_earlier_filter_entry_that_takes_everything() {
    let w = warn(
        "filter:\n  - {name: all, chain: input, source: 10.0.0.0/8, action: drop}\n  - {name: ssh, chain: input, proto: tcp, dport: [22, 2222], source: [10.1.0.0/16, \"10.2.0.1-10.2.0.9\"], action: accept}\n",
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("filter entry `all` matches every packet of filter entry `ssh`"),
        "{w:?}"
    );
    let none = warn(
        "filter:\n  - {name: log, chain: input, action: log}\n  - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}\n  - {name: one, chain: input, proto: tcp, dport: 22, source: 10.0.0.0/8, action: drop}\n",
    );
    assert_eq!(
        none.len(),
        1,
        "log goes on; a wider accept above a narrower drop shadows it: {none:?}"
    );
    assert!(
        none[0].contains("`ssh` matches every packet of filter entry `one`"),
        "{none:?}"
    );
}
