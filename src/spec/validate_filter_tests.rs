//! What a filter entry may combine, in pfstate's words.

use crate::spec::validate::load_str;

fn errors(filter: &str) -> Vec<String> {
    let text = format!("version: 1\nfilter:\n  - {filter}\n");
    match load_str("f.yaml", &text) {
        Ok(_) => vec![],
        Err(e) => e.diagnostics.iter().map(|d| d.message.clone()).collect(),
    }
}

fn ok(filter: &str) -> crate::model::FilterRule {
    let text = format!("version: 1\nfilter:\n  - {filter}\n");
    let model = load_str("f.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    model.filters[0].clone()
}

#[test]
fn lists_are_kept_and_multiplied_only_where_needed() {
    let r = ok(
        "{name: a, chain: input, proto: tcp, dport: [80, 443], source: [10.0.0.1, 10.0.0.2], action: accept}",
    );
    assert_eq!((r.dports.len(), r.sources.len(), r.expansion()), (2, 2, 2));
    let r = ok(
        "{name: a, chain: forward, proto: tcp, original_port: [80, 81], original_address: [192.0.2.1, 192.0.2.2], action: drop}",
    );
    assert_eq!(r.expansion(), 4);
}

#[test]
fn ports_and_types_need_their_protocol() {
    assert_eq!(
        errors("{name: a, chain: input, dport: [80, 443], action: accept}"),
        vec!["ports need `proto: tcp` or `proto: udp` in the same entry"]
    );
    assert_eq!(
        errors("{name: a, chain: forward, original_port: 8080, action: accept}"),
        vec!["ports need `proto: tcp` or `proto: udp` in the same entry"]
    );
    assert_eq!(
        errors("{name: a, chain: input, proto: tcp, icmp_type: echo-request, action: accept}"),
        vec!["icmp_type needs `proto: icmp` in the same entry"]
    );
}

#[test]
fn multiport_holds_fifteen_slots() {
    let fifteen: Vec<String> = (1..=15).map(|p| p.to_string()).collect();
    ok(&format!(
        "{{name: a, chain: input, proto: tcp, dport: [{}], action: accept}}",
        fifteen.join(", ")
    ));
    let e = errors(&format!(
        "{{name: a, chain: input, proto: tcp, dport: [{}, \"100-200\"], action: accept}}",
        fifteen[..14].join(", ")
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("`dport` lists 16 port slots but one rule matches at most 15"),
        "{e:?}"
    );
}

#[test]
fn families_must_agree() {
    let e = errors("{name: a, chain: input, source: [10.0.0.1, \"2001:db8::1\"], action: accept}");
    assert_eq!(
        e,
        vec!["the addresses of this entry mix IPv4 and IPv6; write one entry per family"]
    );
    let e = errors("{name: a, chain: input, proto: icmp, icmp_type: 8, action: accept}");
    assert!(
        e[0].starts_with("ICMP type numbers differ between IPv4 and IPv6"),
        "{e:?}"
    );
    let r = ok(
        "{name: a, chain: input, proto: icmp, source: 10.0.0.0/8, icmp_type: 8, action: accept}",
    );
    assert_eq!(r.icmp_types[0].v4.as_deref(), Some("8"));
}

#[test]
fn a_limit_is_per_rule_so_lists_are_refused_with_it() {
    let e = errors(
        "{name: a, chain: input, source: [10.0.0.1, 10.0.0.2], limit: 10/minute, action: accept}",
    );
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("a limit counts per rule, and the lists of this entry make 2 rules"),
        "{e:?}"
    );
    let r = ok(
        "{name: a, chain: input, proto: tcp, dport: [22, 2222], limit: {rate: 10/minute, burst: 20}, action: accept}",
    );
    assert_eq!(r.limit.unwrap().rate, "10/min");
    assert!(
        errors("{name: a, chain: input, limit: 10/fortnight, action: accept}")[0]
            .contains("not a rate")
    );
}

#[test]
fn proto_gets_did_you_mean_and_aliases() {
    let text = "version: 1\nfilter:\n  - {name: a, chain: input, proto: TCP, action: accept}\n";
    let e = load_str("f.yaml", text).unwrap_err().to_string();
    assert!(e.ends_with("did you mean `tcp`?"), "{e}");
    assert_eq!(
        ok("{name: a, chain: input, proto: icmpv6, action: accept}").proto,
        Some(crate::model::FilterProto::Icmp)
    );
}

#[test]
fn too_many_combinations() {
    let many: Vec<String> = (1..=20).map(|i| format!("10.0.{i}.1")).collect();
    let e = errors(&format!(
        "{{name: a, chain: input, source: [{0}], destination: [{0}], action: accept}}",
        many.join(", ")
    ));
    assert!(
        e[0].starts_with("this entry's lists combine into 400 rules"),
        "{e:?}"
    );
}
