//! Every YAML syntax error in pfstate's words, at the place to fix.

use super::parse_tree;

fn error(text: &str) -> String {
    let e = parse_tree("f.yaml", text).expect_err("refused");
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    let d = &e.diagnostics[0];
    format!("{}:{}: {}", d.location.line, d.location.column, d.message)
}

fn assert_no_library_words(message: &str) {
    for word in [
        "expected",
        "scalar",
        "sequence",
        "mapping start",
        "Options",
        "from_str",
    ] {
        assert!(
            !message.contains(word),
            "library wording {word:?} in {message}"
        );
    }
}

#[test]
fn unclosed_brace_is_reported_where_it_opened_with_the_line_fixed() {
    let e = error(
        "version: 1\nforwards:\n  - name: web\n    listen: {port: 80,\n    to: 10.0.0.1\n  - name: b\n",
    );
    assert_eq!(
        e,
        "4:13: this `{` is never closed (the YAML reader looked for `}` up to 6:9); end the \
         mapping with `}`, e.g. `listen: {port: 80}`"
    );
    assert_no_library_words(&e);
}

#[test]
fn unclosed_bracket_at_the_end_of_the_file() {
    let e = error("version: 1\nforwards: [\n  {name: web}\n");
    assert_eq!(
        e,
        "2:11: this `[` is never closed (the YAML reader looked for `]` to the end of the \
         file); end the list with `]` after its last item"
    );
}

#[test]
fn wrong_closing_bracket_names_both_ends() {
    let e = error("version: 1\nforwards:\n  - name: web\n    listen: {port: 80]\n");
    assert_eq!(
        e,
        "4:13: this `{` is closed by the `]` at 4:22; the mapping must end with `}`"
    );
}

#[test]
fn missing_comma_inside_brackets() {
    let e = error("version: 1\nx: [a, {p: 1 q: 2}]\n");
    assert!(e.contains("separated by commas"), "{e}");
}

#[test]
fn second_document_points_at_its_marker() {
    let e = error("version: 1\n---\nversion: 1\n");
    assert_eq!(
        e,
        "2:1: a second YAML document starts here: a pfstate file holds one desired state; \
         remove this `---` line, or move what follows into its own file (apply takes several \
         files)"
    );
}

#[test]
fn tab_is_found_on_its_own_line() {
    let e = error("version: 1\nforwards:\n  - name: web\n\tlisten: {port: 80}\n");
    assert_eq!(
        e,
        "4:1: a tab character: YAML indents with spaces only; replace the tab with spaces"
    );
}

#[test]
fn unclosed_quote() {
    let e = error("version: 1\nforwards:\n  - name: \"web\n");
    assert!(
        e.starts_with("3:11: the quoted value that starts here is never closed"),
        "{e}"
    );
}

#[test]
fn key_without_colon_is_shown_fixed() {
    let e = error("version: 1\nforwards:\n  - name web\n    listen: {port: 80}\n");
    assert_eq!(
        e,
        "3:3: this key has no `:` after it, so the lines below cannot belong to it; write \
         `- name: web`"
    );
}

#[test]
fn value_with_colon_space_is_shown_quoted() {
    let e = error("version: 1\nforwards:\n  - name: web: x\n");
    assert_eq!(
        e,
        "3:14: this value contains `: `, which YAML reads as another key; put the value in \
         quotes, e.g. `name: \"web: x\"`"
    );
}

#[test]
fn indentation_names_both_columns() {
    let e = error("version: 1\nforwards:\n  - name: web\n     listen: {port: 80}\n");
    assert!(
        e.starts_with("4:6: this line starts at column 6, the keys above it at column 5"),
        "{e}"
    );
    let e = error("version: 1\nforwards:\n- name: a\n  to: x\n - name: b\n");
    assert!(
        e.starts_with("5:2: this line starts at column 2, the `- ` items above it at column 1"),
        "{e}"
    );
}

#[test]
fn unknown_alias_and_escape_and_depth() {
    assert!(error("version: 1\nhost: *h\n").contains("refers to an anchor that is not defined"));
    assert!(error("version: 1\nhost: \"a\\q\"\n").contains("use single quotes"));
    let deep = format!("version: 1\nx: {}{}\n", "[".repeat(100), "]".repeat(100));
    assert!(error(&deep).contains("nested more than 32 levels"));
}

/// Anchors nested around one long list would hold a copy per level: refused early, with the
/// place, instead of taking hundreds of megabytes.
#[test]
fn anchors_that_hold_too_much_are_refused() {
    let list = format!("[{}]", vec!["x"; 20_000].join(", "));
    let nested = format!(
        "version: 1\nz: {}{list}{}\n",
        "&a [".repeat(12),
        "]".repeat(12)
    );
    let started = std::time::Instant::now();
    let e = error(&nested);
    assert!(
        e.contains("the anchors (`&name`) of this file hold more than"),
        "{e}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // One anchor around the same list is fine.
    let once = format!("version: 1\nz: &a {list}\ny: *a\n");
    assert!(parse_tree("f.yaml", &once).is_ok());
}

/// A node budget: more values than any desired state holds are refused while reading, not
/// after building gigabytes of tree (a small budget here; the real one is `LIMITS.nodes`).
#[test]
fn more_values_than_the_budget_are_refused() {
    let limits = super::events::Limits {
        nodes: 1_000,
        ..super::LIMITS
    };
    let text = |n: usize| format!("version: 1\nz: [{}]\n", "x, ".repeat(n));
    assert!(super::events::build(&text(990), &limits).is_ok());
    let e = super::events::build(&text(1_000), &limits).expect_err("refused");
    let (at, message) = super::describe_tree(&e, &text(1_000));
    assert_eq!(at.line, 2, "{message}");
    assert!(message.contains("too many values"), "{message}");
}

#[test]
fn anchors_and_merge_keys_still_work() {
    let text = "version: 1\nd: &d {port: 80}\nl:\n  <<: *d\n  address: x\n";
    let tree = parse_tree("f.yaml", text).unwrap();
    let l = tree.get("l").unwrap();
    assert!(l.get("port").is_some() && l.get("address").is_some());
}

#[test]
fn alias_bombs_stop_early_with_a_message() {
    let mut bomb = String::from("version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let e = error(&bomb);
    assert!(
        e.contains("the aliases (`*name`) of this file expand to more than"),
        "{e}"
    );
}

/// The serde path the tree builder replaced, kept as the oracle it is held to.
fn serde_tree(text: &str) -> Result<crate::spec::tree::Node, (crate::error::Location, String)> {
    serde_saphyr::from_str_with_options::<crate::spec::tree::Node>(text, super::options())
        .map_err(|e| super::describe(&e, text))
}

fn builder_tree(text: &str) -> Result<crate::spec::tree::Node, (crate::error::Location, String)> {
    super::events::build(text, &super::LIMITS).map_err(|e| super::describe_tree(&e, text))
}

/// Every example, every scalar spelling YAML 1.2 gives a type to (and near misses), anchors,
/// merges, tags, documents and broken files.
fn corpus() -> Vec<String> {
    let mut corpus: Vec<String> = Vec::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            corpus.push(std::fs::read_to_string(path).unwrap());
        }
    }
    let scalars = [
        "",
        "~",
        "null",
        "Null",
        "NULL",
        "nULL",
        "true",
        "True",
        "TRUE",
        "tRUE",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "0",
        "00",
        "007",
        "-0",
        "+0",
        "-7",
        "+7",
        "1_000",
        "1__0",
        "_1",
        "1_",
        "0x1F",
        "0X1f",
        "0o17",
        "0b101",
        "0x",
        "0o8",
        "-0x10",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "-170141183460469231731687303715884105729",
        "1.5",
        "-1.5",
        "+.5",
        ".5",
        "1.",
        "1e3",
        "1E-3",
        "-1e+3",
        "1e999",
        "-1e999",
        ".inf",
        "-.Inf",
        "+.INF",
        ".nan",
        ".NaN",
        "nan",
        "inf",
        "infinity",
        "1_0.5",
        "0.1.2",
        "08080",
        "-08",
        "10.0.0.1",
        "10.0.0.1:80",
        "::1",
        "fe80::1%eth0",
        "0x1.8p3",
        "1:30",
        "a b",
        "\"80\"",
        "'true'",
        "!!str 80",
        "!!int \"80\"",
        "!!int x",
        "!!bool yes",
        "!!float 1",
        "!!null x",
        "! 80",
        "!local 80",
        "|\n  80\n",
        ">\n  a\n  b\n",
        "'<<'",
        "<<",
    ];
    for s in scalars {
        corpus.push(format!("version: 1\nv: {s}\nl: [{s}]\n"));
        corpus.push(format!("{s}\n"));
    }
    corpus.extend(
        [
            "",
            "# only a comment\n",
            "---\n",
            "---\nversion: 1\n",
            "version: 1\n...\n",
            "version: 1\n---\n",
            "version: 1\n---\nversion: 1\n",
            "version: 1\nd: &d {port: 80, address: a}\nl:\n  <<: *d\n  address: x\n",
            "d: &d {p: 1}\ne: &e {q: 2, p: 3}\nl: {<<: [*d, *e], r: 4}\n",
            "l:\n  '<<': {a: 1}\n",
            "l:\n  !!merge <<: {a: 1}\n",
            "a: &x {b: &y [1, {c: *z}]}\n",
            "a: &x [1, 2]\nb: *x\nc: [*x, *x]\nd: {k: *x}\n",
            "a: &x\n  k: v\nb: *x\n",
            "&r {a: 1}\n",
            "k: 1\nk: 2\n",
            "? [a, b]\n: c\n",
            "{a: 1, b: [x, {c: d}]}\n",
            "a: [1, 2\n",
            "a: {b: 1]\n",
            "a: \"x\n",
            "a:\n\t- b\n",
            "- a\nb: c\n",
            "a: b: c\n",
            "%YAML 1.2\n---\na: 1\n",
        ]
        .map(String::from),
    );
    for depth in 30..35 {
        corpus.push(format!("x: {}{}\n", "[".repeat(depth), "]".repeat(depth)));
        corpus.push(format!(
            "x: {}1{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        ));
    }
    corpus
}

/// The same tree as the serde path, or the same error at the same place.
#[test]
fn the_tree_is_the_one_serde_built() {
    let corpus = corpus();
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let mut differ = Vec::new();
    // Where the builder says more than the serde path did, on purpose.
    let deliberate = [
        ("d: &d [1, 2]\nl:\n  <<: *d\n", "3:7: `<<` merges a mapping"),
        ("d: &d 5\nl:\n  <<: *d\n", "3:7: `<<` merges a mapping"),
        (
            "a: !!binary aGVsbG8=\n",
            "1:13: pfstate has no binary or time values",
        ),
        (
            "a: !!timestamp 2001-12-14\n",
            "1:16: pfstate has no binary or time values",
        ),
        // The place the expansion passed the limit, not the first anchor.
        (
            bomb.as_str(),
            "6:10: the aliases (`*name`) of this file expand to more than",
        ),
    ];
    for (text, want) in deliberate {
        let got = builder_tree(text).expect_err("refused");
        let got = format!("{}:{}: {}", got.0.line, got.0.column, got.1);
        if !got.starts_with(want) {
            differ.push(format!("{text:?}\n  want {want}\n  got  {got}"));
        }
    }
    for text in &corpus {
        let (want, got) = (serde_tree(text), builder_tree(text));
        if want != got {
            differ.push(format!("{text:?}\n  serde:   {want:?}\n  builder: {got:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{}",
        differ.len(),
        corpus.len(),
        differ.join("\n")
    );
}
