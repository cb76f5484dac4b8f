//! The command line without root: validate, render and diff, their exit codes and errors.

use crate::common;

use common::{pfstate, write_yaml};

fn errors_of(yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = write_yaml(dir.path(), "host.yaml", yaml);
    let r = pfstate(&["validate", &f]);
    assert_eq!(r.code, 1, "expected a validation error\n{}", r.show());
    r.stderr.replace(&f, "host.yaml")
}

#[test]
fn errors_name_file_line_and_column() {
    let e = errors_of(
        "version: 1\nforwards:\n  - name: web\n    listen: {port: 80}\n    to: 10.0.0.1\n    prot: tcp\n",
    );
    assert_eq!(
        e.trim(),
        "host.yaml:6:5: unknown field `prot`, expected one of name, proto, listen, to, balance, snat, hairpin, local, via, accept; did you mean `proto`?"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = errors_of(
        "version: 1\nforwards:\n  - name: web\n    listen: {port: 80}\n    to: 10.0.0.300\n  - name: web\n    listen: {port: \"90-80\"}\n    to: [10.0.0.1, \"[::1]:80\"]\n",
    );
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(
        lines,
        vec![
            "host.yaml:5:9: backend `10.0.0.300`: `10.0.0.300` is not an IP address",
            "host.yaml:6:11: name `web` is already used at line 3; names must be unique",
            "host.yaml:7:20: \"90-80\" is not a port: write 1 to 65535, or a range like \"8000-8010\" (low end first)",
            "host.yaml:8:20: backend ::1 is ipv6 but the first backend is ipv4; one forward holds one address family",
        ]
    );
}

#[test]
fn injection_and_foreign_prefixes_are_refused() {
    let cases = [
        (
            "version: 1\nprefix: DOCKER\n",
            "2:9: prefix `DOCKER` would claim chains of another system",
        ),
        (
            "version: 1\nprefix: cali\n",
            "2:9: prefix `cali` would claim",
        ),
        (
            "version: 1\nprefix: KUBEX\n",
            "would claim chains of another system",
        ),
        (
            "version: 1\nforwards:\n  - {name: a, listen: {port: 80, interface: \"eth0 -j ACCEPT\"}, to: 10.0.0.2}\n",
            "is not an interface name",
        ),
        (
            "version: 1\nforwards:\n  - {name: \"a\\n-A INPUT -j ACCEPT\", listen: {port: 80}, to: 10.0.0.2}\n",
            "must be 1 to 64 lowercase",
        ),
        (
            "version: 1\nsysctl:\n  \"kernel.x\\nnet.y\": 1\n",
            "is not a sysctl key",
        ),
        (
            "version: 1\nsysctl:\n  foo.bar: 1\n",
            "outside the kernel's sysctl tree",
        ),
        (
            "version: 1\nsysctl:\n  net/../../etc/passwd: 1\n",
            "is not a sysctl key",
        ),
        (
            "version: 1\nsysctl:\n  net.ipv4.ip_forward: \"1\\nkernel.panic = 1\"\n",
            "must be 1 to 256 printable characters",
        ),
        (
            "version: 1\nfilter:\n  - {name: l, chain: input, action: log, log_prefix: 'x\" -j ACCEPT'}\n",
            "without quotes",
        ),
        (
            "version: 1\nforwards:\n  - {name: a, listen: {port: 80}, to: 10.0.0.1}\n  - {name: b, listen: {port: \"79-81\"}, to: 10.0.0.2}\n",
            "listens on the same port as forward `a`",
        ),
        (
            "version: 1\nforwards:\n  - {name: a, listen: {port: 80, from: [10.1.2.3/8]}, to: 10.0.0.1}\n",
            "has host bits set; did you mean 10.0.0.0/8?",
        ),
        (
            "version: 1\nforwards:\n  - {name: a, listen: {port: 80, address: \"2001:db8::1\"}, to: 10.0.0.1}\n",
            "is ipv6 but the backends are ipv4",
        ),
        (
            "version: 1\nforwards:\n  - {name: a, listen: {port: 80}, to: [{address: 10.0.0.1, weight: 0}, 10.0.0.2]}\n",
            "weight 0 must be a whole number",
        ),
        (
            "version: 1\nforwards:\n  - {name: a, listen: {port: 0}, to: 10.0.0.1}\n",
            "0 is not a port",
        ),
        (
            "version: 1\nforwards:\n  - {name: a, listen: {port: 80}, to: \"10.0.0.1:9000-9005\"}\n",
            "has 6 ports but the listen range 80 has 1",
        ),
        ("version: 2\n", "unsupported version 2"),
        (
            "version: 1\nforwards:\n  - {name: a, listen: {port: 80}, to: 10.0.0.1, local: yes}\n",
            "strict mode expects true/false",
        ),
        ("version: 1\nforwards: [\n", "2:11: unclosed bracket"),
        ("forwards: []\n", "missing field `version`"),
    ];
    for (yaml, want) in cases {
        let e = errors_of(yaml);
        assert!(e.contains(want), "for {yaml:?}\nwanted {want:?} in:\n{e}");
        assert!(e.starts_with("host.yaml:"), "no file:line:col in {e}");
    }
}

#[test]
fn hostile_inputs_neither_panic_nor_hang() {
    let mut bomb = String::from(
        "version: 1\nsysctl:\n  a0: &a0 [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n",
    );
    for i in 1..9 {
        bomb.push_str(&format!(
            "  a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(",")
        ));
    }
    let deep = format!(
        "version: 1\nforwards: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let inputs: Vec<Vec<u8>> = vec![
        bomb.into_bytes(),
        deep.into_bytes(),
        b"\x00\xff\xfe".to_vec(),
        b"".to_vec(),
        b"- - - -\n".to_vec(),
        b"version: 99999999999999999999999\n".to_vec(),
        b"version: 1\nforwards:\n  - name: a\n    listen: {port: 99999999999999999999}\n    to: 1.2.3.4\n".to_vec(),
        b"version: 1\n? [a, b]\n: c\n".to_vec(),
        b"version: !!binary aGVsbG8=\n".to_vec(),
        b"version: 1\nforwards: *nope\n".to_vec(),
        "version: 1\nhost: \"\u{202e}\"\n".as_bytes().to_vec(),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, input) in inputs.iter().enumerate() {
        let p = dir.path().join(format!("in{i}.yaml"));
        std::fs::write(&p, input).unwrap();
        let start = std::time::Instant::now();
        let r = pfstate(&["validate", p.to_str().unwrap()]);
        assert_eq!(r.code, 1, "input {i} was accepted or crashed\n{}", r.show());
        assert!(
            !r.stderr.contains("panicked"),
            "input {i} panicked\n{}",
            r.show()
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "input {i} took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn render_and_diff_need_no_root_and_use_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_yaml(
        dir.path(),
        "a.yaml",
        "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}\n",
    );
    let b = write_yaml(
        dir.path(),
        "b.yaml",
        "version: 1\nforwards:\n  - {name: web, listen: {port: 80}, to: 10.77.0.12:8080}\n",
    );
    let r = pfstate(&["render", &a]);
    assert_eq!(r.code, 0, "{}", r.show());
    assert!(r.stdout.contains("-A PFSTATE-PREROUTING -p tcp -m tcp --dport 80 -m addrtype --dst-type LOCAL -m comment --comment \"pfstate:web\" -j DNAT --to-destination 10.77.0.11:8080"), "{}", r.show());
    assert!(
        r.stdout.contains("# /etc/sysctl.d/90-pfstate.conf\n"),
        "{}",
        r.show()
    );
    assert!(r.stdout.contains("net.ipv4.ip_forward = 1"), "{}", r.show());
    assert!(r.stdout.contains("[Service]\nType=oneshot"), "{}", r.show());

    let same = pfstate(&["diff", &a, &a]);
    assert_eq!(same.code, 0, "{}", same.show());
    assert!(same.stdout.is_empty(), "{}", same.show());
    let d = pfstate(&["diff", &a, &b]);
    assert_eq!(d.code, 2, "{}", d.show());
    assert!(
        d.stdout.contains("--to-destination 10.77.0.11:8080")
            && d.stdout.contains("+-A PFSTATE-PREROUTING"),
        "{}",
        d.show()
    );
    let j = pfstate(&["--format", "json", "diff", &a, &b]);
    assert_eq!(j.code, 2);
    let v: serde_json::Value = serde_json::from_str(j.stdout.trim()).unwrap();
    assert_eq!(v["changed"], true);
    assert!(v["diff"].as_str().unwrap().contains("10.77.0.12"));

    let missing = pfstate(&["validate", "/nonexistent/x.yaml"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("/nonexistent/x.yaml"),
        "{}",
        missing.show()
    );
}

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory;
    pfstate::cli::Cli::command().debug_assert();
}

#[test]
fn every_example_validates_and_renders() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let p = path.to_str().unwrap();
        let v = pfstate(&["validate", p]);
        assert_eq!(v.code, 0, "{p}\n{}", v.show());
        let r = pfstate(&["render", p]);
        assert_eq!(r.code, 0, "{p}\n{}", r.show());
        assert!(
            r.stdout.contains("COMMIT"),
            "{p} renders no rules\n{}",
            r.show()
        );
    }
    assert!(seen >= 1, "no examples found");
}
