//! YAML text -> [`Node`] tree, built straight from the YAML parser's events.
//!
//! Going through serde (`Spanned<Kind>` for every node) cost four times the parse itself: at
//! 10,000 forwards it was most of a plan's CPU. The tree is the same: YAML 1.2 core scalars with
//! strict booleans, aliases replayed at the place they are used, `<<` merge keys, repeated keys
//! kept for the schema step to name, and the same limits (nesting depth, alias expansion).
//! `syntax_tests::the_tree_is_the_one_serde_built` holds it to the serde path.

use std::collections::{HashMap, HashSet};

use serde_saphyr::granit_parser::{
    ErrorKind, Event, Options, Parser, ScalarStyle, ScanError, Span, Tag,
};

use crate::error::Location;
use crate::spec::scalars::{Refusal, scalar};
use crate::spec::tree::{Kind, Node};

/// What went wrong, for `syntax.rs` to word.
#[derive(Debug)]
pub enum TreeError {
    Scan(ScanError),
    SecondDocument(Location),
    UnknownAnchor(Location),
    NonFinite {
        value: String,
        location: Location,
    },
    AliasLimit(Location),
    /// Anchors (`&name`) that hold more values than aliases may replay.
    AnchorLimit(Location),
    TooDeep(Location),
    /// More values than any desired state holds.
    TooMany(Location),
    /// A `<<` whose value is not a mapping or a list of them.
    MergeNotMapping(Location),
    /// A `!!binary` or `!!timestamp` value: pfstate has neither.
    UnusedTag(Location),
    /// A tagged scalar that is not what its tag says.
    Unreadable(Location),
}

/// How much one file may make the reader do.
pub struct Limits {
    /// Nesting of collections.
    pub depth: usize,
    /// Events that aliases replay, and apart, events that anchors hold.
    pub replayed: usize,
    /// Nodes, aliases' copies counted once.
    pub nodes: usize,
}

/// A collection being read.
enum Open {
    Seq(Vec<Node>),
    Map {
        pairs: Vec<(Node, Node)>,
        /// The key read, waiting for its value; `true` when it is the merge key `<<`.
        key: Option<(Node, bool)>,
        /// The values of `<<` keys, merged in when the mapping ends.
        merges: Vec<Node>,
    },
}

struct Frame {
    open: Open,
    location: Location,
    anchor: usize,
}

struct Builder {
    stack: Vec<Frame>,
    /// Anchored nodes by id, with their size in replayed events.
    anchors: HashMap<usize, (Node, usize)>,
    replayed: usize,
    max_depth: usize,
    max_replayed: usize,
    /// Nodes read so far (aliases' copies included), bounded by `max_nodes`.
    nodes: usize,
    max_nodes: usize,
    /// Events held by anchors (each anchored node is kept for its aliases), bounded by the same
    /// limit: thirty anchors nested around one long list would otherwise hold thirty copies.
    anchored: usize,
}

/// Parse `text` into a tree within `limits`: an "alias bomb" of a few lines would expand to a
/// billion nodes, and a flat list of millions of one-letter values (about 80 bytes a node) is
/// no desired state either.
pub fn build(text: &str, limits: &Limits) -> Result<Node, TreeError> {
    let (max_depth, max_replayed) = (limits.depth, limits.replayed);
    let mut options = Options::default();
    options.emit_comments = false;
    options.block_nesting_limit = options.block_nesting_limit.max(max_depth + 1);
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        replayed: 0,
        max_depth,
        max_replayed,
        anchored: 0,
        nodes: 0,
        max_nodes: limits.nodes,
    };
    let mut root: Option<Node> = None;
    let mut documents = 0;
    // An empty document is a null where the stream ends, as the serde reader had it.
    let mut end = Location::new(1, 1);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(scan_error)?;
        let at = location(&span);
        let done = match event {
            Event::StreamEnd => {
                end = at;
                break;
            }
            Event::DocumentStart(..) => {
                documents += 1;
                // The error points at the second document's content, like the serde reader.
                if documents > 1 {
                    let content = parser.next_event().and_then(Result::ok);
                    let at = content.map(|(_, s)| location(&s)).unwrap_or(at);
                    return Err(TreeError::SecondDocument(at));
                }
                None
            }
            node => b.node(node, at)?,
        };
        if let Some(node) = done {
            root = Some(node);
        }
    }
    Ok(root.unwrap_or(Node {
        kind: Kind::Null,
        location: end,
    }))
}

fn location(span: &Span) -> Location {
    Location::new(span.start.line() as u64, span.start.col() as u64 + 1)
        .in_file(crate::spec::span::current_file())
}

fn refused(r: Refusal, at: Location) -> TreeError {
    match r {
        Refusal::NonFinite(value) => TreeError::NonFinite {
            value,
            location: at,
        },
        Refusal::UnusedTag => TreeError::UnusedTag(at),
        Refusal::NotItsTag => TreeError::Unreadable(at),
    }
}

fn scan_error(e: ScanError) -> TreeError {
    if matches!(e.kind(), ErrorKind::UnknownAnchor) {
        let m = e.marker();
        return TreeError::UnknownAnchor(Location::new(m.line() as u64, m.col() as u64 + 1));
    }
    TreeError::Scan(e)
}

impl Builder {
    /// One event of a document's content; `Some` when it completes the document's root.
    fn node(&mut self, event: Event, at: Location) -> Result<Option<Node>, TreeError> {
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.as_deref();
                let merge = is_merge_key(&value, style, tag);
                let node = Node {
                    kind: scalar(value, style, tag).map_err(|r| refused(r, at))?,
                    location: at,
                };
                self.finish(node, anchor, merge)
            }
            Event::Alias(id) => self.alias(id, at),
            Event::SequenceStart(_, anchor, _) => self.open(Open::Seq(Vec::new()), at, anchor),
            Event::MappingStart(_, anchor, _) => {
                let map = Open::Map {
                    pairs: Vec::new(),
                    key: None,
                    merges: Vec::new(),
                };
                self.open(map, at, anchor)
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            _ => Ok(None),
        }
    }

    fn open(&mut self, open: Open, at: Location, anchor: usize) -> Result<Option<Node>, TreeError> {
        if self.stack.len() >= self.max_depth {
            return Err(TreeError::TooDeep(at));
        }
        self.stack.push(Frame {
            open,
            location: at,
            anchor,
        });
        Ok(None)
    }

    fn close(&mut self) -> Result<Option<Node>, TreeError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(None);
        };
        let kind = match frame.open {
            Open::Seq(items) => Kind::Seq(items),
            Open::Map { pairs, merges, .. } => Kind::Map(merged(pairs, merges)?),
        };
        let node = Node {
            kind,
            location: frame.location,
        };
        self.finish(node, frame.anchor, false)
    }

    /// `*name`: the anchored node again, every part of it at the place of the alias.
    fn alias(&mut self, id: usize, at: Location) -> Result<Option<Node>, TreeError> {
        let Some((node, size)) = self.anchors.get(&id) else {
            return Err(TreeError::UnknownAnchor(at));
        };
        self.replayed += size;
        if self.replayed > self.max_replayed {
            return Err(TreeError::AliasLimit(at));
        }
        let mut copy = node.clone();
        relocate(&mut copy, at);
        self.finish(copy, 0, false)
    }

    /// A node is complete: keep it under its anchor, and hand it to the collection it is in
    /// (`Some` when it is the document's root). `merge`: the node is a `<<` merge key.
    fn finish(
        &mut self,
        node: Node,
        anchor: usize,
        merge: bool,
    ) -> Result<Option<Node>, TreeError> {
        self.nodes += 1;
        if self.nodes > self.max_nodes {
            return Err(TreeError::TooMany(node.location));
        }
        if anchor != 0 {
            let size = events(&node);
            self.anchored += size;
            if self.anchored > self.max_replayed {
                return Err(TreeError::AnchorLimit(node.location));
            }
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(frame) = self.stack.last_mut() else {
            return Ok(Some(node));
        };
        match &mut frame.open {
            Open::Seq(items) => items.push(node),
            Open::Map { pairs, key, merges } => match key.take() {
                None => *key = Some((node, merge)),
                Some((_, true)) => merges.push(node),
                Some((k, false)) => pairs.push((k, node)),
            },
        }
        Ok(None)
    }
}

/// A plain, untagged `<<` (or one tagged `!!merge`) is a merge key; a quoted one is text.
fn is_merge_key(value: &str, style: ScalarStyle, tag: Option<&Tag>) -> bool {
    let merge_tag =
        tag.is_some_and(|t| t.handle() == "tag:yaml.org,2002:" && t.suffix() == "merge");
    value == "<<" && (merge_tag || tag.is_none() && matches!(style, ScalarStyle::Plain))
}

/// The mapping's own pairs, then those of each `<<` value whose key it does not have yet.
fn merged(mut pairs: Vec<(Node, Node)>, merges: Vec<Node>) -> Result<Vec<(Node, Node)>, TreeError> {
    if merges.is_empty() {
        return Ok(pairs);
    }
    // Merged pairs read as written where they are merged: at the `<<` value (an alias's place,
    // or the inline mapping's).
    let mut sources = Vec::new();
    for m in merges {
        match m.kind {
            Kind::Map(_) => sources.push(m),
            Kind::Seq(items) => {
                for item in items {
                    match item.kind {
                        Kind::Map(_) => sources.push(item),
                        _ => return Err(TreeError::MergeNotMapping(item.location)),
                    }
                }
            }
            _ => return Err(TreeError::MergeNotMapping(m.location)),
        }
    }
    let sources = sources.into_iter().map(|mut m| {
        let at = m.location;
        relocate(&mut m, at);
        match m.kind {
            Kind::Map(p) => p,
            _ => Vec::new(),
        }
    });
    // Text keys are looked up in a set: a mapping of many keys merging many others stays linear.
    let mut text_keys: HashSet<String> = pairs
        .iter()
        .filter_map(|(k, _)| match &k.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    for (k, v) in sources.flatten() {
        let new = match &k.kind {
            Kind::Str(s) => text_keys.insert(s.clone()),
            other => !pairs.iter().any(|(have, _)| have.kind == *other),
        };
        if new {
            pairs.push((k, v));
        }
    }
    Ok(pairs)
}

/// How many events replaying this node takes: one per scalar, two per collection.
fn events(node: &Node) -> usize {
    match &node.kind {
        Kind::Seq(items) => 2 + items.iter().map(events).sum::<usize>(),
        Kind::Map(pairs) => {
            2 + pairs
                .iter()
                .map(|(k, v)| events(k) + events(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn relocate(node: &mut Node, at: Location) {
    node.location = at;
    match &mut node.kind {
        Kind::Seq(items) => items.iter_mut().for_each(|n| relocate(n, at)),
        Kind::Map(pairs) => pairs.iter_mut().for_each(|(k, v)| {
            relocate(k, at);
            relocate(v, at);
        }),
        _ => {}
    }
}
