//! The one tokenizer of `iptables-save` rule lines, and the few questions asked of its words.
//!
//! A line is words separated by spaces; a word in double quotes (the way `iptables-save` prints
//! a comment or a log prefix that is not bare, with `\"` and `\\` escaped) is one word, quotes
//! included. Nothing else in pfstate splits a rule line.

use std::borrow::Cow;

/// The words of a rule line, as printed (quoted words keep their quotes).
pub fn words(rule: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = rule;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        let end = match rest.strip_prefix('"') {
            Some(quoted) => {
                let mut escaped = false;
                let close = quoted.char_indices().find(|&(_, c)| {
                    let close = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    close
                });
                close.map_or(rest.len(), |(i, _)| i + 2)
            }
            None => rest.find(char::is_whitespace).unwrap_or(rest.len()),
        };
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// A word's text: without its quotes and escapes.
pub fn unquote(word: &str) -> Cow<'_, str> {
    let Some(inner) = word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) else {
        return Cow::Borrowed(word);
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    Cow::Owned(out)
}

/// The value of the first `flag` that is not negated (`! -p tcp` does not count) and is not
/// itself the value of another option (`--comment -j` is a comment).
pub fn option<'a>(words: &[&'a str], flag: &str) -> Option<&'a str> {
    (0..words.len().saturating_sub(1))
        .find(|&i| {
            let before = i.checked_sub(1).map(|b| words[b]);
            words[i] == flag && before != Some("!") && before != Some("--comment")
        })
        .map(|i| words[i + 1])
}

/// `-A CHAIN SPEC...` -> (`CHAIN`, `SPEC...`); `None` for anything else.
pub fn split_rule(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("-A ")?;
    Some(rest.split_once(' ').unwrap_or((rest, "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_words_stay_whole() {
        let w = words(r#"-A X -m comment --comment "a \" -j Y" -j DROP"#);
        assert_eq!(
            w,
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                r#""a \" -j Y""#,
                "-j",
                "DROP"
            ]
        );
        assert_eq!(unquote(w[5]), r#"a " -j Y"#);
        assert_eq!(option(&w, "-j"), Some("DROP"));
        assert_eq!(option(&words("-A X ! -p tcp -p udp"), "-p"), Some("udp"));
        assert_eq!(
            option(&words("-A X -m comment --comment -j -j RETURN"), "-j"),
            Some("RETURN")
        );
        assert_eq!(split_rule("-A X -j Y"), Some(("X", "-j Y")));
        assert_eq!(split_rule("-A X"), Some(("X", "")));
        assert_eq!(split_rule(":X - [0:0]"), None);
    }
}
