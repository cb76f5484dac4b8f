//! Every schema error in pfstate's words, all of them in one run.

use crate::spec::parse;

fn errors(text: &str) -> Vec<String> {
    let e = parse("f.yaml", text).expect_err("refused");
    e.diagnostics
        .iter()
        .map(|d| format!("{}:{}: {}", d.location.line, d.location.column, d.message))
        .collect()
}

fn error(text: &str) -> String {
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

const WEB: &str = "version: 1\nforwards:\n  - name: web\n";

#[test]
fn listen_as_a_bare_port() {
    let e = error(&format!("{WEB}    listen: 80\n    to: 10.0.0.1\n"));
    assert_eq!(
        e,
        "4:13: `listen` is a mapping with at least a port; write `listen: {port: 80}`"
    );
    let e = error(&format!("{WEB}    listen: \"80-90\"\n    to: 10.0.0.1\n"));
    assert!(e.ends_with("write `listen: {port: \"80-90\"}`"), "{e}");
}

#[test]
fn forwards_as_a_mapping() {
    let e = error("version: 1\nforwards:\n  web:\n    listen: {port: 80}\n    to: 10.0.0.1\n");
    assert_eq!(
        e,
        "3:3: `forwards` is a list, not a mapping: start each forward with `- name: web` (not \
         `web:`) and indent its other keys under `name`"
    );
}

#[test]
fn repeated_key_names_both_places() {
    let e = error(&format!(
        "{WEB}    listen: {{port: 80}}\n    to: 10.0.0.1\n    to: 10.0.0.2\n"
    ));
    assert_eq!(
        e,
        "6:5: `to` is given twice in forward `web` (first at 5:5); keep one; several backends \
         are one list, `to: [192.168.1.2, 192.168.1.3]`"
    );
    let e = error("version: 1\ninterfaces: {wan: eth0, wan: eth1}\n");
    assert!(
        e.starts_with("2:25: `wan` is given twice in `interfaces` (first at 2:14)"),
        "{e}"
    );
}

#[test]
fn a_list_where_one_value_goes() {
    let e = error("version: 1\nsnat:\n  - name: x\n    source: [10.0.0.0/8]\n");
    assert_eq!(
        e,
        "4:13: `source` takes one value, not a list; write `source: 10.0.0.0/8`, and one entry \
         per value"
    );
}

#[test]
fn keywords_get_did_you_mean_in_any_case() {
    let all = errors(
        "version: 1\nfilter:\n  - {name: x, chain: INPUT, action: ACCEPT}\nforwards:\n  - {name: w, proto: Udp, listen: {port: 1}, to: x, balance: roundrobin}\n",
    );
    assert_eq!(
        all,
        vec![
            "3:22: `INPUT` is not a chain (`chain` takes `input`, `forward` or `output`); did you mean `input`?",
            "3:37: `ACCEPT` is not an action (`action` takes `accept`, `drop`, `reject`, `log` or `return`); did you mean `accept`?",
            "5:22: `Udp` is not a protocol (`proto` takes `tcp`, `udp` or `both`); did you mean `udp`?",
            "5:62: `roundrobin` is not a balancing mode (`balance` takes `random` or `round-robin`); did you mean `round-robin`?",
        ]
    );
    let e = error("version: 1\nfilter:\n  - {name: x, chain: input, action: permit}\n");
    assert!(
        e.ends_with("`log` or `return`)"),
        "no guess for an unrelated word: {e}"
    );
}

#[test]
fn missing_version_points_at_the_first_key() {
    assert_eq!(
        error("# my gateway\n\nforwards: []\n"),
        "3:1: the file has no `version`; add it, e.g. `version: 1`"
    );
}

#[test]
fn empty_file_and_a_file_that_is_a_list() {
    assert!(error("").starts_with("1:1: the file is empty"));
    assert!(error("# nothing\n").starts_with("1:1: the file is empty"));
    assert_eq!(
        error("- version: 1\n"),
        "1:1: the file is a mapping of keys, not a list; write `version: 1` on the first line, \
         then `forwards:`, `snat:` or `filter:`"
    );
}

#[test]
fn booleans_are_true_or_false() {
    let e = error(&format!(
        "{WEB}    listen: {{port: 80}}\n    to: x\n    local: no\n"
    ));
    assert_eq!(
        e,
        "6:12: `local` takes true or false, not `no`; write `local: false`"
    );
}

#[test]
fn unknown_and_missing_keys() {
    let all = errors(&format!(
        "{WEB}    listen: {{port: 80, adress: 1.2.3.4}}\n    to: x\n  - name: b\n    listen: {{port: 81}}\n"
    ));
    assert_eq!(
        all,
        vec![
            "4:24: `adress` is not a key of `listen`; did you mean `address`? (keys: `port`, `address`, `interface` and `from`)",
            "6:5: forward `b` has no `to`; add it, e.g. `to: 192.168.1.2:8080`",
        ]
    );
}

#[test]
fn wrong_shapes_say_what_to_write() {
    let e = error(&format!("{WEB}    listen: {{port: [80]}}\n    to: x\n"));
    assert_eq!(
        e,
        "4:20: `port` takes a port (1-65535) or a range like \"8000-8010\", not a list; write `port: 80`"
    );
    let e = error(&format!(
        "{WEB}    listen: {{port: 80}}\n    to: x\n    hairpin: 10.0.0.0/8\n"
    ));
    assert!(e.ends_with("write `hairpin: [10.0.0.0/8]`"), "{e}");
    let e = error("version: 1\nforwards:\n  - web\n");
    assert!(
        e.starts_with("3:5: this forward is a mapping of keys, not `web`"),
        "{e}"
    );
    let e = error(&format!("{WEB}    listen: {{port: 80}}\n    to:\n"));
    assert_eq!(e, "5:5: `to` is empty; write `to: 192.168.1.2:8080`");
}

#[test]
fn every_entry_is_read_even_after_a_bad_one() {
    let all = errors(
        "version: 1\nforwards:\n  - {name: a, listen: 80, to: x}\n  - {name: b, listen: {port: 1}, to: x, local: maybe}\nsnat:\n  - {name: c}\nfilter:\n  - {name: d, chain: inptu, action: drop}\n",
    );
    assert_eq!(all.len(), 4, "{all:#?}");
}

#[test]
fn a_valid_file_still_reads() {
    let text = "version: 1\nhost: h\ninterfaces: {wan: eth0}\nsysctl: {net.ipv4.ip_forward: 1}\n\
                forwards:\n  - name: web\n    listen: {port: 80, from: 10.0.0.0/8}\n    to: [a, {address: b, weight: 2}]\n    hairpin: [10.0.0.0/8]\n\
                filter:\n  - {name: f, chain: input, state: [new, established], action: accept}\n";
    let spec = parse("f.yaml", text).unwrap();
    assert_eq!(spec.forwards.len(), 1);
    assert_eq!(spec.filter[0].state.0.len(), 2);
    assert_eq!(spec.sysctl.0[0].1.value.0, "1");
}

#[test]
fn one_entry_without_its_dash_and_hairpin_yes() {
    let e = error("version: 1\nfilter: {name: x, chain: input, action: drop}\n");
    assert_eq!(
        e,
        "2:9: `filter` is a list of entries, and this mapping is one of them: make it an item \
         with `- `, e.g. `filter: [{name: x, ...}]` or `- name: x` on the line below `filter:`"
    );
    let e = error(&format!(
        "{WEB}    listen: {{port: 80}}\n    to: x\n    hairpin: yes\n"
    ));
    assert!(e.ends_with("write `hairpin: true`"), "{e}");
}
