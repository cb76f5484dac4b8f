//! Where the jumps stand relative to the other managers' rules, per fixture.

pub(super) fn chain_rules(save: &str, table: &str, chain: &str) -> Vec<String> {
    pfstate::ruleset::dump::parse(save)
        .table(table)
        .and_then(|t| t.chain(chain))
        .map(|c| c.rules.clone())
        .unwrap_or_default()
}

pub(super) fn is_cali(r: &str) -> bool {
    r.contains("--comment \"cali:")
}

/// Every jump where docs/coexistence.md says it goes.
pub(super) fn assert_placement(save: &str, fixture: &str) {
    let jump = |c: &str, to: &str| format!("-A {c} -m comment --comment pfstate -j PFSTATE-{to}");
    let docker = chain_rules(save, "filter", "DOCKER-USER");
    let has_docker = save.contains(":DOCKER-USER");
    // Leading-block hooks: directly after the leading `cali:` block.
    for (table, chain, to) in [
        ("nat", "PREROUTING", "PREROUTING"),
        ("nat", "OUTPUT", "OUTPUT"),
        ("filter", "INPUT", "INPUT"),
    ] {
        let rules = chain_rules(save, table, chain);
        let lead = rules.iter().take_while(|r| is_cali(r)).count();
        assert_eq!(
            rules.get(lead),
            Some(&jump(chain, to)),
            "{fixture}: {table} {chain}: {rules:#?}"
        );
        assert_eq!(rules.iter().filter(|r| r.contains("PFSTATE-")).count(), 1);
    }
    // nat POSTROUTING: before Calico's trailing rule, else last.
    let post = chain_rules(save, "nat", "POSTROUTING");
    let trail = post.iter().rev().take_while(|r| is_cali(r)).count();
    assert_eq!(
        post[post.len() - trail - 1],
        jump("POSTROUTING", "POSTROUTING"),
        "{fixture}: nat POSTROUTING: {post:#?}"
    );
    // filter FORWARD: first rule of DOCKER-USER when Docker is there, so Docker's FORWARD
    // policy DROP (and DOCKER-FORWARD) come after the forwards' accepts.
    let fwd = chain_rules(save, "filter", "FORWARD");
    if has_docker {
        assert_eq!(
            docker.first(),
            Some(&jump("DOCKER-USER", "FORWARD")),
            "{fixture}"
        );
        assert!(
            !fwd.iter().any(|r| r.contains("PFSTATE-")),
            "{fixture}: {fwd:#?}"
        );
        let user = fwd
            .iter()
            .position(|r| r.ends_with("-j DOCKER-USER"))
            .unwrap();
        let dfwd = fwd
            .iter()
            .position(|r| r.ends_with("-j DOCKER-FORWARD"))
            .unwrap();
        assert!(user < dfwd, "{fixture}: DOCKER-USER below DOCKER-FORWARD");
        assert!(
            fwd[..user].iter().all(|r| !r.ends_with("-j DROP")),
            "{fixture}: a DROP above DOCKER-USER"
        );
        if fixture == "docker.rules" {
            // (all-in-one: libvirt enabled forwarding first, so Docker left the policy ACCEPT)
            assert!(save.contains(":FORWARD DROP"), "{fixture}: Docker's policy");
        }
        // The forwards' accepts are in the chain DOCKER-USER jumps to first.
        let accepts = chain_rules(save, "filter", "PFSTATE-FORWARD");
        for name in ["web", "game", "np"] {
            assert!(
                accepts
                    .iter()
                    .any(|r| r.contains(&format!("pfstate:{name}")) && r.ends_with("-j ACCEPT")),
                "{fixture}: no accept for {name}: {accepts:#?}"
            );
        }
    } else {
        let lead = fwd.iter().take_while(|r| is_cali(r)).count();
        assert_eq!(
            fwd.get(lead),
            Some(&jump("FORWARD", "FORWARD")),
            "{fixture}: {fwd:#?}"
        );
    }
    // Canaries in both tables.
    for table in ["nat", "filter"] {
        let t = pfstate::ruleset::dump::parse(save);
        assert!(
            t.table(table).unwrap().chain("PFSTATE-CANARY").is_some(),
            "{fixture}: no canary in {table}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario per fixture
