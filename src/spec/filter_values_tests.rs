//! Rates, ICMP types and address ranges in the form `iptables-save` prints (the pairs were
//! read back from a kernel with iptables 1.8.9; tests/kernel_canonical.rs re-checks them).

use super::*;

fn rate(text: &str) -> String {
    parse_limit(text, None).unwrap().rate
}

#[test]
fn rates_print_in_the_unit_the_kernel_chooses() {
    assert_eq!(rate("60/minute"), "1/sec");
    assert_eq!(rate("7/hour"), "7/hour");
    assert_eq!(rate("3/day"), "3/day");
    assert_eq!(rate("2000/min"), "2000/min");
    assert_eq!(rate("100/s"), "100/sec");
    assert_eq!(rate("10/Minute"), "10/min");
    assert_eq!(rate("1/second"), "1/sec");
}

#[test]
fn bad_rates_and_bursts_are_refused() {
    assert!(
        parse_limit("10001/second", None)
            .unwrap_err()
            .contains("1 to 10000 per second")
    );
    assert!(parse_limit("0/minute", None).is_err());
    assert!(
        parse_limit("10/fortnight", None)
            .unwrap_err()
            .contains("not a rate")
    );
    assert!(parse_limit("ten/minute", None).is_err());
    assert!(parse_limit("10", None).is_err());
    assert!(
        parse_limit("10/minute", Some(0))
            .unwrap_err()
            .contains("burst 0")
    );
    assert_eq!(
        parse_limit("10/minute", Some(5)).unwrap().burst,
        None,
        "default burst"
    );
    assert_eq!(parse_limit("10/minute", Some(20)).unwrap().burst, Some(20));
}

#[test]
fn icmp_names_become_numbers_per_family() {
    let both = [Family::V4, Family::V6];
    let m = parse_icmp_type("echo-request", &both).unwrap();
    assert_eq!((m.v4.as_deref(), m.v6.as_deref()), (Some("8"), Some("128")));
    let m = parse_icmp_type("port-unreachable", &both).unwrap();
    assert_eq!(
        (m.v4.as_deref(), m.v6.as_deref()),
        (Some("3/3"), Some("1/4"))
    );
    let m = parse_icmp_type("neighbor-solicitation", &[Family::V6]).unwrap();
    assert_eq!(m.v6.as_deref(), Some("135"));
    assert!(
        parse_icmp_type("packet-too-big", &both)
            .unwrap_err()
            .contains("family: ipv6")
    );
    assert_eq!(
        parse_icmp_type("any", &both).unwrap().v4.as_deref(),
        Some("any")
    );
}

#[test]
fn icmp_numbers_need_one_family() {
    let m = parse_icmp_type("3/4", &[Family::V4]).unwrap();
    assert_eq!(m.v4.as_deref(), Some("3/4"));
    assert!(
        parse_icmp_type("8", &[Family::V4, Family::V6])
            .unwrap_err()
            .contains("differ")
    );
    let e = parse_icmp_type("echo-requets", &[Family::V4]).unwrap_err();
    assert!(e.contains("did you mean `echo-request`?"), "{e}");
    assert!(parse_icmp_type("300", &[Family::V4]).is_err());
}

#[test]
fn addresses_networks_and_ranges() {
    assert_eq!(
        parse_addr_match("10.0.0.0/8").unwrap(),
        AddrMatch::Net("10.0.0.0/8".parse().unwrap())
    );
    assert_eq!(
        parse_addr_match("10.0.0.1").unwrap(),
        AddrMatch::Net("10.0.0.1/32".parse().unwrap())
    );
    assert_eq!(
        parse_addr_match("10.0.0.9 - 10.0.0.20").unwrap(),
        AddrMatch::Range("10.0.0.9".parse().unwrap(), "10.0.0.20".parse().unwrap())
    );
    assert!(
        parse_addr_match("10.0.0.20-10.0.0.9")
            .unwrap_err()
            .contains("low end first")
    );
    assert!(parse_addr_match("10.0.0.1-2001:db8::1").is_err());
    assert!(
        parse_addr_match("10.1.2.3/8")
            .unwrap_err()
            .contains("did you mean 10.0.0.0/8?")
    );
    assert!(
        parse_addr_match("host")
            .unwrap_err()
            .contains("not an address")
    );
}
