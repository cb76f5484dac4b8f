//! "Did you mean" hints for misspelt keys.

/// For a parser message like ``unknown field `prot`, expected one of name, port`` return
/// ``did you mean `port`?`` when one of the expected names is close to the unknown one.
pub fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    let unknown = &rest[..end];
    let expected = rest[end..].split_once("expected one of ")?.1;
    let candidates = expected
        .split(',')
        .map(|c| c.trim().trim_matches('`').trim())
        .filter(|c| !c.is_empty());
    closest(unknown, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate nearest to `word`, if it is near enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        let m = "unknown field `prot`, expected one of name, proto, listen, to";
        assert_eq!(
            unknown_field_hint(m).as_deref(),
            Some("did you mean `proto`?")
        );
    }

    #[test]
    fn no_hint_for_unrelated_words() {
        let m = "unknown field `zzzzzzzz`, expected one of name, proto";
        assert_eq!(unknown_field_hint(m), None);
    }
}
