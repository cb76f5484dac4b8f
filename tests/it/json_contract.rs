//! The `--format json` contract (docs/json.md, format_version 1), pinned field by field:
//! validate, render and diff without root; plan, apply, status and remove in a throwaway
//! network namespace with `--root`, next to foreign (Docker-like) rules.

use crate::common::{Host, Run, pfstate, write_yaml};
use pfstate::lab;
use serde_json::{Value, json};

const STATE: &str = "version: 1
forwards:
  - {name: web, listen: {port: 80}, to: 10.77.0.11:8080}
snat:
  - {name: lan-out, source: 10.77.0.0/24}
filter:
  - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}
";

fn doc(run: &Run) -> Value {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stdout\n{}", run.show());
    assert_eq!(run.stderr, "", "nothing on stderr\n{}", run.show());
    let v: Value = serde_json::from_str(lines[0]).expect("valid JSON");
    assert_eq!(v["format_version"], 1, "{v}");
    for key in ["command", "ok", "changed", "warnings", "errors"] {
        assert!(v.get(key).is_some(), "field {key} missing: {v}");
    }
    assert_eq!(
        v["ok"],
        json!(run.code != 1),
        "ok matches the exit code: {v}"
    );
    v
}

fn changes(v: &Value) -> Vec<(String, String, String)> {
    v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().expect(k).to_string();
            (s("entry"), s("kind"), s("action"))
        })
        .collect()
}

fn has(list: &[(String, String, String)], entry: &str, kind: &str, action: &str) -> bool {
    list.iter()
        .any(|(e, k, a)| e == entry && k == kind && a == action)
}

#[test]
fn validate_reports_every_problem_as_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_yaml(dir.path(), "good.yaml", STATE);
    let bad = write_yaml(
        dir.path(),
        "bad.yaml",
        "version: 1\nforwards:\n  - {name: a, listen: {port: 70000}, to: 10.0.0.1}\n  - {name: a, listen: {port: 81}, to: 10.0.0.1}\n",
    );
    let run = pfstate(&["--format", "json", "validate", &good, &bad]);
    assert_eq!(run.code, 1, "{}", run.show());
    let v = doc(&run);
    assert_eq!(v["command"], "validate");
    assert_eq!(
        v["files"],
        json!([{"file": good, "ok": true}, {"file": bad, "ok": false}])
    );
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{v}");
    for e in errors {
        assert_eq!(e["file"], json!(bad), "{e}");
        assert!(
            e["line"].as_u64().is_some() && e["column"].as_u64().is_some(),
            "{e}"
        );
        assert!(
            !e["message"].as_str().unwrap().starts_with(&bad),
            "no prefix: {e}"
        );
    }
    assert_eq!(
        (errors[0]["line"].as_u64(), errors[1]["line"].as_u64()),
        (Some(3), Some(4))
    );
    let missing = pfstate(&["--format", "json", "validate", "/nonexistent/x.yaml"]);
    let v = doc(&missing);
    assert_eq!(v["errors"][0]["file"], "/nonexistent/x.yaml", "{v}");
    assert_eq!(v["errors"][0]["line"], Value::Null, "{v}");
}

#[test]
fn render_and_diff_give_payloads_files_and_the_diff() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_yaml(dir.path(), "a.yaml", STATE);
    let b = write_yaml(dir.path(), "b.yaml", &STATE.replace("port: 80", "port: 81"));
    let run = pfstate(&["--format", "json", "render", &a]);
    assert_eq!(run.code, 0, "{}", run.show());
    let v = doc(&run);
    assert_eq!(
        (v["command"].as_str(), v["changed"].as_bool()),
        (Some("render"), Some(false))
    );
    let v4 = v["rules"]["ipv4"].as_str().unwrap();
    assert!(
        v4.starts_with("*nat\n") && v4.contains("pfstate:web"),
        "{v4}"
    );
    assert!(v["rules"]["ipv6"].is_string(), "{v}");
    let files = v["files"].as_object().unwrap();
    assert!(files.contains_key("/etc/sysctl.d/90-pfstate.conf"), "{v}");
    assert!(
        files.contains_key("/etc/systemd/system/pfstate.service"),
        "{v}"
    );
    assert!(!files.contains_key("/etc/pfstate/host.yaml"), "{v}");

    let run = pfstate(&["--format", "json", "diff", &a, &b]);
    assert_eq!(run.code, 2, "{}", run.show());
    let v = doc(&run);
    assert_eq!(v["changed"], true);
    assert!(
        v["diff"]
            .as_str()
            .unwrap()
            .contains("+-A PFSTATE-PREROUTING"),
        "{v}"
    );
}

#[test]
fn plan_apply_status_remove_contract() {
    if lab::skip_unless_root("plan_apply_status_remove_contract") {
        return;
    }
    let h = Host::new("json");
    let dir = tempfile::tempdir().unwrap();
    let a = write_yaml(dir.path(), "a.yaml", STATE);

    let plan = h.run(&["--format", "json", "plan", &a]);
    assert_eq!(plan.code, 2, "{}", plan.show());
    let v = doc(&plan);
    assert_eq!(
        (v["command"].as_str(), v["changed"].as_bool()),
        (Some("plan"), Some(true))
    );
    let c = changes(&v);
    for (entry, kind, action) in [
        ("web", "forward", "add"),
        ("lan-out", "snat", "add"),
        ("ssh", "filter", "add"),
        ("nat PREROUTING", "jump", "add"),
        ("net.ipv4.ip_forward", "sysctl", "change"),
        ("/etc/pfstate/host.yaml", "file", "add"),
        ("pfstate.service", "unit", "enable"),
    ] {
        assert!(
            has(&c, entry, kind, action),
            "{entry} {kind} {action} in {c:?}"
        );
    }
    assert_eq!(v["before"]["rules"]["ipv4"], "", "{v}");
    assert!(
        v["after"]["rules"]["ipv4"]
            .as_str()
            .unwrap()
            .contains("pfstate:web")
    );
    assert_eq!(v["before"]["files"]["/etc/pfstate/host.yaml"], Value::Null);
    assert_eq!(v["after"]["files"]["/etc/pfstate/host.yaml"], STATE);
    assert_eq!(v["before"]["unit"]["pfstate.service"], "disabled");
    assert!(
        v["diff"]
            .as_str()
            .unwrap()
            .contains("+++ ipv4 rules (desired)")
    );
    assert_eq!(h.restores(), 0, "plan wrote to the kernel");

    let apply = h.run(&["--format", "json", "apply", &a]);
    assert_eq!(apply.code, 0, "{}", apply.show());
    let v = doc(&apply);
    assert_eq!(
        (v["command"].as_str(), v["changed"].as_bool()),
        (Some("apply"), Some(true))
    );
    assert_eq!(changes(&v), c, "apply reports what plan showed");
    assert_eq!(v["confirm"], Value::Null);

    let again = h.run(&["--format", "json", "apply", &a]);
    let v = doc(&again);
    assert_eq!(
        (again.code, v["changed"].as_bool()),
        (0, Some(false)),
        "{v}"
    );
    assert_eq!(v["changes"], json!([]));
    assert_eq!(v["before"], v["after"]);

    let status = h.run(&["--format", "json", "status"]);
    assert_eq!(status.code, 0, "{}", status.show());
    let v = doc(&status);
    assert_eq!(
        (v["drift"].as_bool(), v["applied"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(v["confirm"], Value::Null);
    let entries = v["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "lan-out", "ssh"]);
    assert_eq!(entries[0]["kind"], "forward");
    assert!(entries[0]["packets"].is_u64() && entries[0]["bytes"].is_u64());
    assert!(entries[0]["connections"].is_u64(), "{v}");
    assert_eq!(entries[1]["connections"], Value::Null);

    let bad = write_yaml(
        dir.path(),
        "bad.yaml",
        "version: 1\nforwards:\n  - {name: x, listen: {port: 80}, to: 10.0.0.1, prot: tcp}\n",
    );
    let failed = h.run(&["--format", "json", "apply", &bad]);
    assert_eq!(failed.code, 1, "{}", failed.show());
    let v = doc(&failed);
    assert_eq!(v["changed"], false);
    assert_eq!(
        (
            v["errors"][0]["file"].as_str(),
            v["errors"][0]["line"].as_u64()
        ),
        (Some(bad.as_str()), Some(3))
    );

    let remove = h.run(&["--format", "json", "remove"]);
    assert_eq!(remove.code, 0, "{}", remove.show());
    let v = doc(&remove);
    let c = changes(&v);
    assert!(has(&c, "web", "forward", "remove"), "{c:?}");
    assert!(has(&c, "/etc/pfstate/host.yaml", "file", "remove"), "{c:?}");
    assert!(has(&c, "pfstate.service", "unit", "disable"), "{c:?}");
}
