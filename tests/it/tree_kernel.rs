//! The tree layout of a large rule set, round-tripped through the real kernel: loaded with
//! `iptables-restore --noflush` into a throwaway namespace, `iptables-save` must print exactly
//! the rendered rules, and a plan against what the kernel holds must be empty. Needs root;
//! skipped otherwise. No timing assertions.

use pfstate::lab::{Netns, NetnsOptions};
use pfstate::model::Family;
use pfstate::plan::plan_family;
use pfstate::render::render;
use pfstate::ruleset::dump;

fn state(n: usize) -> String {
    let mut s = String::from("version: 1\nforwards:\n");
    for i in 0..n {
        let proto = if i % 5 == 0 { "    proto: both\n" } else { "" };
        let listen = if i % 17 == 3 {
            format!("\"{}-{}\"", 20_000 + i * 40, 20_000 + i * 40 + 30)
        } else {
            (1_000 + i * 3).to_string()
        };
        s.push_str(&format!(
            "  - name: f{i}\n{proto}    listen:\n      port: {listen}\n    to: 10.2.{}.{}:8080\n",
            i / 200,
            i % 200 + 1
        ));
    }
    // A local forward, so nat OUTPUT holds rules too.
    s.push_str("  - name: local-one\n    local: true\n    via: lo0\n    listen:\n      port: 65000\n    to: 10.3.0.1:80\n");
    s
}

root_test!(tree_layout_round_trips_through_the_kernel, || {
    let model = pfstate::spec::load_str("t.yaml", &state(400)).expect("valid");
    let desired = render(&model);
    let rs = desired.ruleset(Family::V4);
    let nat = rs.table(pfstate::ruleset::Table::Nat).expect("nat");
    assert!(
        nat.chains.iter().any(|c| c.name.starts_with("PFSTATE-Pt")),
        "expected a tree"
    );
    let payload = plan_family(&desired.prefix, rs, &Default::default()).payload();

    let ns = Netns::create("tree-rt", NetnsOptions::default()).expect("netns");
    let path = std::env::temp_dir().join(format!("pfstate-tree-rt-{}.rules", std::process::id()));
    std::fs::write(&path, &payload).expect("write payload");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "iptables-restore", "--noflush"])
        .stdin(std::fs::File::open(&path).expect("open"))
        .output()
        .expect("iptables-restore");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = ns.exec("iptables-save", &[]).expect("iptables-save");
    let live = dump::parse(&saved);
    for (table, rules) in &rs.tables {
        let t = live.table(table.name()).expect("table saved");
        for c in &rules.chains {
            let got = &t.chain(&c.name).expect("chain saved").rules;
            assert_eq!(got, &c.rules, "{table} {}", c.name);
        }
    }
    let again = plan_family(&desired.prefix, rs, &live);
    assert!(again.is_empty(), "not converged:\n{}", again.payload());
});

root_test!(nftables_tables_over_netlink_match_nft_list_tables, || {
    let ns = Netns::create("nft-tables", NetnsOptions::default()).expect("netns");
    ns.exec("iptables", &["-t", "nat", "-N", "PFSTATE-X"])
        .expect("iptables");
    for (family, name) in [("inet", "firewalld"), ("ip6", "t6"), ("netdev", "nd")] {
        ns.exec("nft", &["add", "table", family, name])
            .expect("nft");
    }
    let want = ns.exec("nft", &["list", "tables"]).expect("nft list");
    let got = ns
        .run_in(pfstate::host::nft_tables::list_tables)
        .expect("enter netns")
        .expect("netlink answer");
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(|l| l.trim().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&got), sorted(&want));
});
