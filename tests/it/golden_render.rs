//! Golden files: for every `examples/*.yaml`, the whole output of `pfstate render` (restore
//! payloads, sysctl.d file, unit, warnings) is kept in `tests/golden/NAME.render` and compared
//! byte for byte. Runs as any user: `render` needs no privileges.
//!
//! After a deliberate change of the render, rewrite the files and review the diff:
//!
//! ```sh
//! PFSTATE_BLESS=1 cargo test --test golden_render && git diff tests/golden
//! ```
//!
//! The unit's ExecStart names the running binary, which depends on where the checkout is; the
//! golden files hold `@PFSTATE_BINARY@` there. Nothing else is rewritten: a render that depends
//! on the machine (an interface's networks, the route to a backend) cannot get in here: the
//! renderer takes the model alone, and `tests/pure_render.rs` proves the bytes are the same in
//! a boot-like namespace, a configured one, and as an unprivileged user.

use crate::payload_check;

use crate::common::examples;
use std::path::{Path, PathBuf};
use std::process::Command;

use pfstate::model::Model;
use pfstate::render;

const BIN: &str = env!("CARGO_BIN_EXE_pfstate");
const BLESS: &str = "PFSTATE_BLESS";
const BINARY_PLACEHOLDER: &str = "@PFSTATE_BINARY@";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn golden_dir() -> PathBuf {
    repo().join("tests/golden")
}

fn golden_path(example: &Path) -> PathBuf {
    let stem = example.file_stem().expect("file name").to_string_lossy();
    golden_dir().join(format!("{stem}.render"))
}

/// `pfstate render FILE` with the binary's path in the unit replaced by a placeholder.
fn render_output(example: &Path) -> String {
    let out = Command::new(BIN)
        .arg("render")
        .arg(example)
        .env("NO_COLOR", "1")
        .output()
        .expect("run pfstate render");
    let stdout = String::from_utf8(out.stdout).expect("render prints UTF-8");
    assert!(
        out.status.success(),
        "pfstate render {} failed:\n{stdout}{}",
        example.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .split_inclusive('\n')
        .map(|line| match line.split_once('=') {
            Some((key @ ("ExecStart" | "ExecReload"), value)) => {
                let args = value
                    .find(" apply ")
                    .or_else(|| value.find(" watch "))
                    .expect("ExecStart runs apply or watch");
                format!("{key}={BINARY_PLACEHOLDER}{}", &value[args..])
            }
            _ => line.to_string(),
        })
        .collect()
}

#[test]
fn every_example_renders_its_golden_file() {
    let bless = std::env::var_os(BLESS).is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for example in examples() {
        let got = render_output(&example);
        let path = golden_path(&example);
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got == want {
            continue;
        }
        if bless {
            std::fs::create_dir_all(golden_dir()).expect("mkdir tests/golden");
            std::fs::write(&path, &got).expect("write golden file");
            eprintln!("blessed {}", path.display());
            continue;
        }
        let shown = path.strip_prefix(repo()).unwrap_or(&path).display();
        failures.push(pfstate::plan::view::unified(
            &want,
            &got,
            &format!("{shown} (golden)"),
            &format!("pfstate render {} (now)", example.display()),
        ));
    }
    assert!(
        failures.is_empty(),
        "the render differs from the golden files; if the change is intended, run\n  {BLESS}=1 cargo test --test golden_render\nand review `git diff tests/golden`\n\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_golden_file_has_an_example() {
    let wanted: Vec<PathBuf> = examples().iter().map(|e| golden_path(e)).collect();
    for entry in std::fs::read_dir(golden_dir()).expect("tests/golden") {
        let path = entry.expect("dir entry").path();
        assert!(
            wanted.contains(&path),
            "{} belongs to no example: delete it",
            path.display()
        );
    }
}

fn load(example: &Path) -> Model {
    let text = std::fs::read_to_string(example).expect("read example");
    pfstate::spec::load_str(&example.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn entry_names(model: &Model) -> Vec<String> {
    let forwards = model.forwards.iter().map(|f| f.name.clone());
    let snats = model.snats.iter().map(|s| s.name.clone());
    let filters = model.filters.iter().map(|r| r.name.clone());
    let defaults = model.defaults.iter().map(|(chain, _)| match chain {
        pfstate::model::FilterChain::Forward => "default-forward".to_string(),
        _ => "default-input".to_string(),
    });
    forwards
        .chain(snats)
        .chain(filters)
        .chain(defaults)
        .collect()
}

/// The restore payloads of a golden file: the text under each `# ipvN: ...-restore` header.
fn payloads(golden: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in golden.split_inclusive('\n') {
        if line.starts_with("# ipv4: ") || line.starts_with("# ipv6: ") {
            out.extend(current.replace(String::new()));
        } else if line.starts_with('#') {
            out.extend(current.take());
        } else if let Some(p) = current.as_mut() {
            p.push_str(line);
        }
    }
    out.extend(current);
    out
}

#[test]
fn every_golden_payload_is_consistent() {
    let mut problems = Vec::new();
    for example in examples() {
        let model = load(&example);
        let golden = std::fs::read_to_string(golden_path(&example)).unwrap_or_default();
        let found = payloads(&golden);
        if found.is_empty() {
            problems.push(format!("{}: no payload", example.display()));
        }
        for payload in found {
            for p in payload_check::check(&payload, &model.prefix, &entry_names(&model)) {
                problems.push(format!("{}: {p}", example.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The port-range tree layout of large files (dispatch chains joined by `-g`, the tree's own
/// comment) passes the same checks, in both families.
#[test]
fn a_tree_layout_payload_is_consistent() {
    let mut yaml = String::from("version: 1\nprefix: BIG\nforwards:\n");
    for i in 0..300u32 {
        let (port, a, b) = (20000 + i * 3, i / 200, i % 200 + 1);
        yaml.push_str(&format!(
            "  - {{name: f{i}, proto: both, listen: {{port: {port}}}, to: [10.9.{a}.{b}:80, 10.8.{a}.{b}:80]}}\n  - {{name: g{i}, listen: {{port: {port}}}, to: \"[fd00::{i:x}]:80\"}}\n"
        ));
    }
    let model = pfstate::spec::load_str("big.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    let desired = render::render(&model);
    let mut problems = Vec::new();
    for rs in &desired.rulesets {
        let payload =
            pfstate::plan::plan_family(&desired.prefix, rs, &Default::default()).payload();
        assert!(
            payload.contains(" -g BIG-"),
            "no tree in the {} render",
            rs.family
        );
        problems.extend(payload_check::check(&payload, "BIG", &entry_names(&model)));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself: each broken payload must be caught, and a good one pass.
#[test]
fn the_checker_finds_what_it_promises() {
    let entries = vec!["web".to_string()];
    let good = "*nat\n:P-PREROUTING - [0:0]\n:P-LB-web - [0:0]\n:P-CANARY - [0:0]\n-A P-PREROUTING -p tcp -m comment --comment \"pfstate:web\" -j P-LB-web\n-A P-LB-web -m comment --comment \"pfstate:web\" -j DNAT --to-destination 10.0.0.1\n-I PREROUTING 1 -m comment --comment pfstate -j P-PREROUTING\nCOMMIT\n";
    assert_eq!(
        payload_check::check(good, "P", &entries),
        Vec::<String>::new()
    );
    let broken = [
        (":P-LB-web - [0:0]\n", ":OTHER - [0:0]\n", "is not owned"),
        (
            ":P-CANARY - [0:0]\n",
            ":P-CANARY - [0:0]\n:P-AAAAAAAAAAAAAAAAAAAAAAAAAAAA - [0:0]\n",
            "longer than 28",
        ),
        (
            "-j P-LB-web\n",
            "-j P-LB-webx\n",
            "neither built in nor declared",
        ),
        ("-j DNAT", "-j DROP", "neither built in nor declared"),
        (
            "\"pfstate:web\" -j DNAT",
            "\"pfstate:wub\" -j DNAT",
            "comment",
        ),
        (
            "-m comment --comment \"pfstate:web\" -j DNAT",
            "-j DNAT",
            "comment",
        ),
        (
            "COMMIT",
            "-A PREROUTING -m comment --comment pfstate -j P-PREROUTING\nCOMMIT",
            "2 jumps",
        ),
        (
            "-I PREROUTING 1 -m comment --comment pfstate",
            "-I PREROUTING 1 -m comment --comment other",
            "not pfstate's jump",
        ),
        (
            "-I PREROUTING 1 -m comment --comment pfstate -j P-PREROUTING\n",
            "",
            "no jump to it",
        ),
        (
            "-j P-LB-web\n",
            "-j DNAT --to-destination 10.0.0.2\n",
            "reached by no jump",
        ),
        (
            "COMMIT",
            "-A P-CANARY -m comment --comment \"pfstate:web\" -j RETURN\nCOMMIT",
            "must stay empty",
        ),
        ("*nat", "*raw", "only nat and filter"),
        ("COMMIT\n", "", "no COMMIT"),
    ];
    for (from, to, want) in broken {
        let payload = good.replacen(from, to, 1);
        assert_ne!(payload, good, "{from:?} is not in the good payload");
        let problems = payload_check::check(&payload, "P", &entries);
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want:?} not found for\n{payload}\n{problems:?}"
        );
    }
    assert_eq!(
        payload_check::words(r#"-A X -m comment --comment "a \"b\" c\\d" -j Y"#),
        [
            "-A",
            "X",
            "-m",
            "comment",
            "--comment",
            r#"a "b" c\d"#,
            "-j",
            "Y"
        ]
    );
}
