//! The reading helpers: suggestions, lists in words, scalars read leniently but never guessed.

use super::*;
use crate::spec::syntax::parse_tree;

fn node(yaml: &str) -> Node {
    parse_tree("f.yaml", &format!("v: {yaml}\n"))
        .unwrap()
        .get("v")
        .unwrap()
        .clone()
}

fn read<T: FromNode>(yaml: &str) -> (Option<T>, Vec<String>) {
    let mut r = Reader::default();
    let v = T::read(&mut r, "key", &node(yaml), "EX");
    (v, r.diags.into_iter().map(|d| d.message).collect())
}

#[test]
fn closest_prefers_the_same_word_in_another_case() {
    assert_eq!(closest("INPUT", &["input", "output"]), Some("input"));
    assert_eq!(
        closest("Round-Robin", &["random", "round-robin"]),
        Some("round-robin")
    );
    assert_eq!(closest("outptu", &["input", "output"]), Some("output"));
    assert_eq!(closest("zzz", &["input", "output"]), None);
}

#[test]
fn lists_in_words() {
    assert_eq!(one_of(&["a"], "or"), "`a`");
    assert_eq!(one_of(&["a", "b", "c"], "or"), "`a`, `b` or `c`");
}

#[test]
fn scalars() {
    assert_eq!(read::<String>("80").0.as_deref(), Some("80"));
    let (v, e) = read::<String>("{a: 1}");
    assert_eq!(
        (v, e),
        (
            None,
            vec!["`key` takes one value, not a mapping; write `key: EX`".to_string()]
        )
    );
    assert_eq!(read::<i64>("\"12\"").0, Some(12));
    assert_eq!(
        read::<u32>("-1").1,
        vec!["`key` takes a whole number, not the number -1; write `key: EX`"]
    );
    assert_eq!(read::<bool>("true").0, Some(true));
    assert_eq!(
        read::<bool>("off").1,
        vec!["`key` takes true or false, not `off`; write `key: false`"]
    );
    assert_eq!(
        read::<bool>("1").1,
        vec!["`key` takes true or false, not the number 1; write `key: true`"]
    );
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Color {
    Red,
}

impl Choice for Color {
    const WHAT: &'static str = "a color";
    const NAMES: &'static [(&'static str, Self)] = &[("red", Color::Red)];
}

#[test]
fn choices() {
    assert_eq!(read::<Color>("red").0, Some(Color::Red));
    assert_eq!(
        read::<Color>("RED").1,
        vec!["`RED` is not a color (`key` takes `red`); did you mean `red`?"]
    );
    assert_eq!(
        read::<Color>("[red]").1,
        vec!["`key` takes a color (`red`), not a list; write `key: EX`"]
    );
}
