//! "Did you mean" hints for misspelt keys and values.

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
    fn suggests_the_nearest_word() {
        let keys = ["name", "proto", "listen", "to"];
        assert_eq!(closest("prot", keys.into_iter()), Some("proto"));
    }

    #[test]
    fn no_hint_for_unrelated_words() {
        assert_eq!(closest("zzzzzzzz", ["name", "proto"].into_iter()), None);
    }
}
