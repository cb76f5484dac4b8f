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
