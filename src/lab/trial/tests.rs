use ipnet::IpNet;

use super::blueprint::LabPlan;
use crate::model::Proto;

fn plan(yaml: &str) -> LabPlan {
    let m = crate::spec::validate::load_str("t.yaml", yaml).unwrap();
    LabPlan::from_model(&m)
}

#[test]
fn plan_places_backends_listen_and_clients() {
    let p = plan(
        "version: 1\ninterfaces: {wan: eth0, lan: eth1, dmz: eth2}\nforwards:\n  - name: web\n    listen: {port: 80, address: 203.0.113.10, from: [203.0.113.128/25]}\n    to: [192.168.1.1:8080, 192.168.1.11:8080]\n    via: lan\n",
    );
    assert_eq!(
        (p.wan_if.as_str(), p.segments[0].iface.as_str()),
        ("eth0", "eth1")
    );
    assert_eq!(p.dummies, vec!["eth2".to_string()]);
    assert_eq!(p.wan_gw[0].to_string(), "203.0.113.10/24");
    // .1 is a backend, so the gateway takes .254; the client is inside listen.from.
    assert_eq!(p.segments[0].gw[0].to_string(), "192.168.1.254/24");
    let c = p.client[0].addr();
    assert!(
        "203.0.113.128/25".parse::<IpNet>().unwrap().contains(&c),
        "{c}"
    );
    assert_eq!(p.segments[0].client.addrs[0].to_string(), "192.168.1.50/24");
    assert_eq!(p.backends.len(), 2);
    assert!(p.backends[0].1.serve.contains(&(Proto::Tcp, 8080)));
    assert!(!p.ipv6);
}

#[test]
fn plan_defaults_and_ipv6() {
    let p = plan(
        "version: 1\nforwards:\n  - name: v6\n    proto: udp\n    listen: {port: \"5000-5009\"}\n    to: \"[fd00:1::5]:6000-6009\"\n",
    );
    assert_eq!(
        (p.wan_if.as_str(), p.segments[0].iface.as_str()),
        ("wan0", "lan0")
    );
    assert_eq!(p.wan_gw[0].to_string(), "2001:db8::1/64");
    assert_eq!(p.segments[0].gw[0].to_string(), "fd00:1::1/64");
    assert!(p.ipv6);
    let serve = &p.backends[0].1.serve;
    assert!(serve.contains(&(Proto::Udp, 6000)) && serve.contains(&(Proto::Udp, 6009)));
}

#[test]
fn listen_address_on_the_lan_is_the_gateways_lan_address() {
    let p = plan(
        "version: 1\nforwards:\n  - name: web\n    listen: {port: 80, address: 10.1.2.3}\n    to: 10.1.2.11:8080\nsnat:\n  - name: out\n    source: 10.1.2.0/24\n",
    );
    assert_eq!(p.segments[0].gw[0].to_string(), "10.1.2.3/24");
    assert_eq!(p.wan_gw[0].to_string(), "192.0.2.1/24");
}

#[test]
fn one_segment_per_lan_interface() {
    let p = plan(
        "version: 1\ninterfaces: {wan: eth0, lan: eth1, dmz: eth2}\nforwards:\n  - name: web\n    listen: {port: 80}\n    to: 192.168.1.10:8080\n    via: lan\n  - name: mail\n    listen: {port: 25}\n    to: 172.16.5.9\n    via: dmz\n  - name: other\n    listen: {port: 81}\n    to: 192.168.1.11:8080\nsnat:\n  - name: out\n    source: 10.9.0.0/16\n    out_interface: wan\n",
    );
    let ifs: Vec<&str> = p.segments.iter().map(|g| g.iface.as_str()).collect();
    assert_eq!(ifs, ["eth1", "eth2"]);
    assert_eq!(p.wan_if, "eth0");
    assert!(p.dummies.is_empty(), "{:?}", p.dummies);
    let gws: Vec<String> = p.segments[0].gw.iter().map(|g| g.to_string()).collect();
    // 192.168.1.0/24 (web and other) and the snat source's first /24, on the LAN alias.
    assert_eq!(gws, ["192.168.1.1/24", "10.9.0.1/24"]);
    assert_eq!(p.segments[1].gw[0].to_string(), "172.16.5.1/24");
    assert_eq!(p.backends[1].0, 1, "mail's backend sits on eth2");
    assert_eq!(p.segments[1].client.role, "lanc2");
}

#[test]
fn narrow_snat_source_gets_a_lan_and_a_client_inside_it() {
    let p = plan(
        "version: 1\nsnat:\n  - name: one-host\n    source: 10.5.5.77/32\n    out_interface: wan0\n",
    );
    assert_eq!(p.segments[0].gw[0].to_string(), "10.5.5.1/24");
    assert_eq!(p.segments[0].client.addrs[0].to_string(), "10.5.5.77/24");
    assert_eq!(p.wan_if, "wan0");
}
