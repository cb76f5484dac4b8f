//! Reading the raw lines of a file the YAML reader refused, to say what to write instead:
//! where an unclosed bracket opened, a key missing its `:`, a value holding `: `.
//!
//! These are heuristics over text that is not valid YAML, used only to word an error; a wrong
//! guess costs a less precise message, never a wrong parse.

use crate::error::Location;

/// A `[` or `{` still open at some point of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bracket {
    pub char: char,
    pub location: Location,
    pub byte: usize,
    /// Its line as it should read, closed: `listen: {port: 80,` -> `listen: {port: 80}`;
    /// `None` when the bracket ends its line (a collection written across lines).
    pub line_fixed: Option<String>,
}

/// The innermost bracket opened before byte `offset` and not closed before it.
pub fn open_before(text: &str, offset: usize) -> Option<Bracket> {
    let mut stack: Vec<(char, usize, Location)> = Vec::new();
    let mut line = 1u64;
    let mut line_start = 0usize;
    let mut quote: Option<char> = None;
    let mut node_start = true;
    let mut chars = text[..offset.min(text.len())].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\n' {
                (line, line_start) = (line + 1, i + 1);
            }
            continue;
        }
        match c {
            '\n' => {
                (line, line_start, node_start) = (line + 1, i + 1, true);
            }
            '#' if node_start || text[..i].ends_with([' ', '\t']) => {
                // A comment: skip to the end of the line.
                while chars.peek().is_some_and(|(_, c)| *c != '\n') {
                    chars.next();
                }
            }
            '"' | '\'' if node_start => quote = Some(c),
            '[' | '{' if node_start || !stack.is_empty() => {
                let column = text[line_start..i].chars().count() as u64 + 1;
                stack.push((c, i, Location::new(line, column)));
                node_start = true;
            }
            ']' | '}' if !stack.is_empty() => {
                stack.pop();
                node_start = false;
            }
            ',' if !stack.is_empty() => node_start = true,
            ' ' | '\t' => {}
            ':' | '-' | '?' => node_start = chars.peek().is_none_or(|(_, n)| n.is_whitespace()),
            _ => node_start = false,
        }
    }
    let (char, byte, location) = stack.pop()?;
    Some(Bracket {
        char,
        location,
        byte,
        line_fixed: closed_line(text, byte, char),
    })
}

fn line_of(text: &str, byte: usize) -> (usize, &str) {
    let start = text[..byte].rfind('\n').map_or(0, |i| i + 1);
    let end = text[byte..].find('\n').map_or(text.len(), |i| byte + i);
    (start, &text[start..end])
}

fn closed_line(text: &str, byte: usize, open: char) -> Option<String> {
    let (start, line) = line_of(text, byte);
    let after = line[byte - start + 1..].trim_end();
    if after.is_empty() {
        return None;
    }
    let close = if open == '{' { '}' } else { ']' };
    let head = line.trim_start().trim_end().trim_end_matches(',');
    Some(format!("{head}{close}"))
}

/// Whether the bracket is closed later on its own line (then a comma is what is missing).
pub fn closes_on_its_line(text: &str, open: &Bracket) -> bool {
    let (start, line) = line_of(text, open.byte);
    let mut depth = 0i32;
    for c in line[open.byte - start..].chars() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// The key and value of a `key: value` line, without indentation and list dashes.
fn key_value(line: &str) -> Option<(&str, &str)> {
    let body = strip_dashes(line);
    let (key, value) = body.split_once(": ")?;
    Some((key, value.trim()))
}

fn strip_dashes(line: &str) -> &str {
    let mut body = line.trim_start();
    while let Some(rest) = body.strip_prefix("- ") {
        body = rest.trim_start();
    }
    body
}

/// For `name: web: x` with the reader stopped at the second `:`, the quoted form
/// `name: "web: x"`.
pub fn second_colon(line: &str, column: usize) -> Option<String> {
    let (key, value) = key_value(line)?;
    let first = line.find(": ")?;
    let column_byte = line.char_indices().nth(column.checked_sub(1)?)?.0;
    if column_byte <= first || !(value.contains(": ") || value.ends_with(':')) {
        return None;
    }
    if value.starts_with(['"', '\'', '[', '{']) {
        return None;
    }
    Some(format!("{key}: \"{}\"", value.escape_default()))
}

/// For a line `- name web` (a key without its colon), the line as it should read.
pub fn missing_colon(line: &str) -> Option<String> {
    let body = strip_dashes(line);
    if body.contains(':') || body.starts_with(['"', '\'', '[', '{', '#']) {
        return None;
    }
    let (key, value) = body.split_once(' ')?;
    let key_like = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        && !value.trim().is_empty();
    if !key_like {
        return None;
    }
    let dashes = &line.trim_start()[..line.trim_start().len() - body.len()];
    Some(format!("{dashes}{key}: {}", value.trim()))
}

/// Where the bracket opened at byte `open` is closed (by any closing bracket), if it is.
pub fn closing_bracket(text: &str, open: usize) -> Option<Location> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in text.get(open..)?.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(location_of(text, open + i));
                }
            }
            _ => {}
        }
    }
    None
}

/// The first tab at or after byte `from` (the reader may stop just before the tab's line).
pub fn next_tab(text: &str, from: usize) -> Option<Location> {
    let at = from + text.get(from..)?.find('\t')?;
    Some(location_of(text, at))
}

pub fn location_of(text: &str, byte: usize) -> Location {
    let before = &text[..byte];
    let line = before.matches('\n').count() as u64 + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    Location::new(line, text[start..byte].chars().count() as u64 + 1)
}

/// The 1-based column where a line's content starts: its `- ` when it is a list item, else
/// its key.
pub fn content_column(line: &str) -> usize {
    line.chars().take_while(|c| *c == ' ').count() + 1
}

/// The 1-based column of a line's key, after indentation and list dashes.
pub fn key_column(line: &str) -> usize {
    line.chars().count() - strip_dashes(line).chars().count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unclosed_brace_and_its_fixed_line() {
        let text = "version: 1\nforwards:\n  - name: web\n    listen: {port: 80,\n    to: x\n";
        let b = open_before(text, text.len()).unwrap();
        assert_eq!((b.char, b.location), ('{', Location::new(4, 13)));
        assert_eq!(b.line_fixed.as_deref(), Some("listen: {port: 80}"));
        assert!(!closes_on_its_line(text, &b));
    }

    #[test]
    fn brackets_in_quotes_comments_and_plain_values_do_not_count() {
        let text = "a: \"[x\" # {\nb: c[d\ne: {f: [1, 2]}\n";
        assert_eq!(open_before(text, text.len()), None);
    }

    #[test]
    fn a_bracket_ending_its_line_has_no_one_line_fix() {
        let text = "forwards: [\n  {name: a}\n";
        let b = open_before(text, text.len()).unwrap();
        assert_eq!((b.char, b.location.line, b.line_fixed), ('[', 1, None));
    }

    #[test]
    fn quotes_a_value_with_a_colon() {
        assert_eq!(
            second_colon("  - name: web: x", 14).as_deref(),
            Some("name: \"web: x\"")
        );
        assert_eq!(second_colon("  - name: web", 9), None);
    }

    #[test]
    fn adds_the_missing_colon() {
        assert_eq!(
            missing_colon("  - name web").as_deref(),
            Some("- name: web")
        );
        assert_eq!(missing_colon("  - 10.0.0.1"), None);
        assert_eq!(missing_colon("    to: x"), None);
    }

    #[test]
    fn columns() {
        assert_eq!(
            (content_column("  - name: a"), key_column("  - name: a")),
            (3, 5)
        );
        assert_eq!(key_column("    to: x"), 5);
    }
}
