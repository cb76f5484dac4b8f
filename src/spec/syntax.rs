//! Text -> YAML tree, with every YAML syntax error worded by pfstate: what is wrong, where,
//! and what to write instead. The library's own messages never reach the user.

use serde_saphyr::granit_parser::{ErrorKind, ScanError};

use crate::error::{Location, SpecError};
use crate::spec::events::{self, TreeError};
use crate::spec::lines::{self, Bracket};
use crate::spec::span::current_file;
use crate::spec::tree::Node;

/// The largest desired-state file accepted; a real one is a few hundred kilobytes at 10,000
/// forwards. Refusing more keeps a stray `pfstate apply /dev/zero` from eating memory.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// Deeper nesting than this is never a pfstate file (the deepest key is 4 levels down); the
/// limit also bounds the recursion of every walk over the tree.
const MAX_DEPTH: usize = 32;

/// Events replayed through aliases: about 12 per `<<: *defaults` entry, for 16,000 entries.
const MAX_ALIAS_EVENTS: usize = 200_000;

/// The serde reader's limits, kept: its node budget was one node per 8 bytes of the largest
/// file, far above the 90,000 nodes of 10,000 forwards.
const LIMITS: events::Limits = events::Limits {
    depth: MAX_DEPTH,
    replayed: MAX_ALIAS_EVENTS,
    nodes: MAX_FILE_BYTES / 8,
};

/// Parse `text` into a tree. `file` is only used in error messages.
pub fn parse_tree(file: &str, text: &str) -> Result<Node, SpecError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(SpecError::one(
            file,
            Location::start().in_file(current_file()),
            format!(
                "the file is larger than {} MiB; split it (apply takes several files)",
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    events::build(text, &LIMITS).map_err(|e| {
        let (location, message) = describe_tree(&e, text);
        SpecError::one(file, location.in_file(current_file()), message)
    })
}

/// Where and what, in pfstate's words, for any error of the tree builder.
fn describe_tree(e: &TreeError, text: &str) -> (Location, String) {
    match e {
        TreeError::Scan(scan) => scan_error(scan, text),
        TreeError::SecondDocument(at) => second_document(*at, text),
        TreeError::UnknownAnchor(at) => (*at, unknown_anchor()),
        TreeError::NonFinite { value, location } => (*location, not_a_number(value)),
        TreeError::AliasLimit(at) => (*at, too_many_aliases()),
        TreeError::AnchorLimit(at) => (
            *at,
            format!(
                "the anchors (`&name`) of this file hold more than {MAX_ALIAS_EVENTS} values; \
                 anchor only what is reused, e.g. `defaults: &defaults {{proto: tcp}}`"
            ),
        ),
        TreeError::TooDeep(at) | TreeError::TooMany(at) => (*at, too_deep()),
        TreeError::MergeNotMapping(at) => (
            *at,
            "`<<` merges a mapping (or a list of mappings) into this one; the `*name` here \
             must name a mapping, e.g. `defaults: &defaults {proto: tcp}`"
                .to_string(),
        ),
        TreeError::UnusedTag(at) => (
            *at,
            "pfstate has no binary or time values; write this value as plain text, without \
             the `!!` tag"
                .to_string(),
        ),
        TreeError::Unreadable(at) => (*at, unreadable()),
    }
}

fn unknown_anchor() -> String {
    "this `*name` refers to an anchor that is not defined above it; mark the value to reuse \
     with `&name` first, e.g. `to: &backend 192.168.1.2` then `to: *backend`"
        .to_string()
}

fn not_a_number(value: &str) -> String {
    format!("`{value}` is not a number pfstate can use; write a plain number or quote text")
}

fn too_many_aliases() -> String {
    format!(
        "the aliases (`*name`) of this file expand to more than {MAX_ALIAS_EVENTS} values; \
         write the repeated values out, or reuse fewer of them"
    )
}

fn too_deep() -> String {
    format!(
        "the file is nested more than {MAX_DEPTH} levels deep or holds too many values or \
         aliases to be a desired state; a pfstate file nests at most 5 levels"
    )
}

pub(crate) fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    // YAML 1.1's yes/no/on/off stay text, so `local: yes` is refused by name, not guessed.
    options.strict_booleans = true;
    // Repeated keys reach the tree; the schema step names both places.
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::PassThrough;
    // Node and event budgets sized for the largest accepted file: the defaults (250,000
    // nodes, about 6 per forward) refuse files of more than about 40,000 forwards.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = budget.max_nodes.max(MAX_FILE_BYTES / 8);
    budget.max_events = budget.max_events.max(MAX_FILE_BYTES / 4);
    budget.max_depth = MAX_DEPTH;
    options.budget = Some(budget);
    // Aliases are replayed into the tree: bound the copies (an "alias bomb" of a few lines
    // expands to a billion nodes), generously for `<<: *defaults` in every entry.
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_EVENTS;
    options
}

/// The serde reader's errors in the same words: `syntax_tests` holds the tree builder to the
/// serde path it replaced.
#[cfg(test)]
fn describe(e: &serde_saphyr::Error, text: &str) -> (Location, String) {
    let location = e
        .location()
        .map(|l| Location::new(l.line(), l.column()))
        .unwrap_or_else(Location::start);
    match e {
        serde_saphyr::Error::ExternalMessage { source, .. } => match &**source {
            serde_saphyr::ExternalMessageSource::Parser(scan) => scan_error(scan, text),
            _ => (location, unreadable()),
        },
        serde_saphyr::Error::AliasError { error, .. } => describe(error, text),
        serde_saphyr::Error::MultipleDocuments { .. } => second_document(location, text),
        serde_saphyr::Error::UnknownAnchor { .. } => (location, unknown_anchor()),
        serde_saphyr::Error::NonFiniteFloat { value, .. } => (location, not_a_number(value)),
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. } => {
            (location, too_many_aliases())
        }
        serde_saphyr::Error::Budget { .. } => (location, too_deep()),
        _ => (location, unreadable()),
    }
}

fn unreadable() -> String {
    "this is not valid YAML: check the indentation, quotes and brackets on this line and the \
     one above"
        .to_string()
}

fn second_document(location: Location, text: &str) -> (Location, String) {
    // The reader points at the second document's content; the fix is on its `---` line.
    let line = text
        .lines()
        .take(location.line as usize)
        .enumerate()
        .filter(|(_, l)| l.starts_with("---"))
        .map(|(i, _)| i as u64 + 1)
        .last()
        .unwrap_or(location.line.into());
    (
        Location::new(line, 1),
        "a second YAML document starts here: a pfstate file holds one desired state; remove \
         this `---` line, or move what follows into its own file (apply takes several files)"
            .to_string(),
    )
}

fn scan_error(scan: &ScanError, text: &str) -> (Location, String) {
    let mark = scan.marker();
    let at = Location::new(mark.line() as u64, mark.col() as u64 + 1);
    let offset = mark.byte_offset().unwrap_or(text.len()).min(text.len());
    let message = match scan.kind() {
        ErrorKind::UnclosedFlowCollection { .. }
        | ErrorKind::UnexpectedEofFlowSequence
        | ErrorKind::UnexpectedEofFlowMapping
        | ErrorKind::UnexpectedEofImplicitFlowMapping => {
            return flow_error(text, offset, None);
        }
        ErrorKind::ExpectedFlowMappingSeparator
        | ErrorKind::ExpectedFlowSequenceSeparator
        | ErrorKind::BlockEntryInFlowCollection => {
            return flow_error(text, offset, Some(at));
        }
        ErrorKind::MismatchedFlowCollectionEnd { open, close } => {
            // The reader points at the opening bracket; say where the wrong one closes it.
            let closed = lines::closing_bracket(text, offset)
                .map(|l| format!(" at {}:{}", l.line, l.column))
                .unwrap_or_default();
            format!(
                "this `{open}` is closed by the `{close}`{closed}; {} must end with `{}`",
                collection_name(*open),
                closing(*open)
            )
        }
        ErrorKind::TabInIndentation
        | ErrorKind::TabInBlockIndentation
        | ErrorKind::TabNotAllowed
        | ErrorKind::TabInPlainScalar
        | ErrorKind::TabAtBlockScalarStart => {
            let at = lines::next_tab(text, offset).unwrap_or(at);
            return (
                at,
                "a tab character: YAML indents with spaces only; replace the tab with spaces"
                    .to_string(),
            );
        }
        ErrorKind::MisplacedFlowCollectionEnd => "this bracket closes nothing: remove it, or \
             add the `[` or `{` it was meant to close"
            .to_string(),
        ErrorKind::MappingValueNotAllowed
        | ErrorKind::ExpectedBlockMappingKey
        | ErrorKind::ExpectedBlockSequenceEntry
        | ErrorKind::InvalidIndentation
        | ErrorKind::SimpleKeyExpected
        | ErrorKind::InvalidSimpleKey
        | ErrorKind::MappingKeyNotAllowed
        | ErrorKind::InvalidColonPlacement => return structure_error(text, at),
        other => other_scan_error(other),
    };
    (at, message)
}

fn other_scan_error(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::UnclosedQuotedScalar => "the quoted value that starts here is never closed: \
             end it with the same quote, e.g. `name: \"web\"`"
            .to_string(),
        ErrorKind::UnknownQuotedScalarEscape
        | ErrorKind::InvalidQuotedScalarHexEscape
        | ErrorKind::InvalidUnicodeEscape => "a backslash inside double quotes starts an escape \
             YAML does not know here; use single quotes for text with backslashes, e.g. \
             `log_prefix: 'drop\\in '`"
            .to_string(),
        ErrorKind::InvalidTrailingSingleQuotedScalar
        | ErrorKind::InvalidTrailingDoubleQuotedScalar => "text follows the closing quote: put \
             the whole value inside the quotes, or a comment after ` #`"
            .to_string(),
        ErrorKind::RecursionLimitExceeded => format!(
            "nested more than {MAX_DEPTH} levels deep; a pfstate file nests at most 5 levels"
        ),
        ErrorKind::UnexpectedCharacter { character } => format!(
            "a value cannot start with `{character}`: put the value in quotes, e.g. \
             `name: \"{character}web\"`"
        ),
        ErrorKind::CommentNotSeparated => "a comment needs a space before its `#`, e.g. \
             `port: 80 # web`"
            .to_string(),
        _ => unreadable(),
    }
}

fn collection_name(open: char) -> &'static str {
    if open == '{' {
        "the mapping"
    } else {
        "the list"
    }
}

fn closing(open: char) -> char {
    if open == '{' { '}' } else { ']' }
}

/// A `[` or `{` that is not closed where the reader needed it (`None`: at the end of the
/// file): report it where it opened, with the line as it should read. A bracket closed on its
/// own line means a missing comma.
fn flow_error(text: &str, offset: usize, noticed: Option<Location>) -> (Location, String) {
    let at = noticed.unwrap_or_else(|| lines::location_of(text, offset));
    // Some errors point at the opening bracket itself, others where the reader gave up.
    let upto = if text[offset..].starts_with(['[', '{']) {
        offset + 1
    } else {
        offset
    };
    let Some(open) = lines::open_before(text, upto) else {
        return (at, unreadable());
    };
    if noticed.is_some() && open.location.line == at.line && lines::closes_on_its_line(text, &open)
    {
        let example = if open.char == '{' {
            "`{port: 80, address: 203.0.113.10}`"
        } else {
            "`[10.0.0.0/8, 192.168.0.0/16]`"
        };
        let what = if open.char == '{' { "entries" } else { "items" };
        return (
            at,
            format!(
                "inside `{}...{}` {what} are separated by commas, e.g. {example}",
                open.char,
                closing(open.char)
            ),
        );
    }
    (open.location, unclosed(&open, noticed))
}

fn unclosed(open: &Bracket, noticed: Option<Location>) -> String {
    let close = closing(open.char);
    let fix = match open.line_fixed.as_deref() {
        Some(line) => format!(
            "end {} with `{close}`, e.g. `{line}`",
            collection_name(open.char)
        ),
        None => format!(
            "end {} with `{close}` after its last item",
            collection_name(open.char)
        ),
    };
    let upto = match noticed {
        Some(l) => format!("up to {}:{}", l.line, l.column),
        None => "to the end of the file".to_string(),
    };
    format!(
        "this `{}` is never closed (the YAML reader looked for `{close}` {upto}); {fix}",
        open.char
    )
}

/// Bad indentation, a missing `:`, or a `: ` inside a plain value: which one, from the lines.
fn structure_error(text: &str, at: Location) -> (Location, String) {
    let lines: Vec<&str> = text.lines().collect();
    let row = (at.line as usize).clamp(1, lines.len().max(1)) - 1;
    let line = lines.get(row).copied().unwrap_or("");
    if let Some(fixed) = lines::second_colon(line, at.column as usize) {
        return (
            at,
            format!(
                "this value contains `: `, which YAML reads as another key; put the value in \
                 quotes, e.g. `{fixed}`"
            ),
        );
    }
    let above: Vec<&str> = lines[..row]
        .iter()
        .rev()
        .copied()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    if let Some(prev) = above.first()
        && let Some(fixed) = lines::missing_colon(prev)
    {
        let n = row
            - lines[..row]
                .iter()
                .rev()
                .position(|l| l == prev)
                .unwrap_or(0);
        return (
            Location::new(n as u64, lines::content_column(prev) as u64),
            format!(
                "this key has no `:` after it, so the lines below cannot belong to it; write \
                 `{fixed}`"
            ),
        );
    }
    indentation(at.line.into(), line, &above)
}

fn indentation(row: u64, line: &str, above: &[&str]) -> (Location, String) {
    let is_item = |l: &str| l.trim_start().starts_with("- ") || l.trim() == "-";
    let (here, there, what) = if is_item(line) {
        let there = above
            .iter()
            .find(|l| is_item(l))
            .map(|l| lines::content_column(l));
        (
            lines::content_column(line),
            there,
            "the `- ` items above it",
        )
    } else {
        let there = above.first().map(|l| lines::key_column(l));
        (lines::key_column(line), there, "the keys above it")
    };
    let message = match there {
        Some(there) if there != here => format!(
            "this line starts at column {here}, {what} at column {there}: the keys of one entry \
             line up in the same column, and so do the `- ` items of one list (YAML reads the \
             structure from the indentation)"
        ),
        _ => "this line is not indented like any mapping or list above it: the keys of one \
              entry line up in the same column, and so do the `- ` items of one list"
            .to_string(),
    };
    (Location::new(row, here as u64), message)
}

#[cfg(test)]
#[path = "syntax_tests.rs"]
mod tests;
