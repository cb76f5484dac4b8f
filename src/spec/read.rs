//! YAML tree -> `Spec`: the schema step, in pfstate's words, collecting every error.
//!
//! Each message says what is wrong, names the key, and shows the line as it should read
//! (`write `listen: {port: 80}``). A value that cannot be read yields one message and `None`;
//! the entry holding it is dropped, and reading goes on with the next key and the next entry,
//! so a file with five mistakes gets five messages in one run.

use crate::error::{Diagnostic, Location};
use crate::spec::span::Spanned;
use crate::spec::suggest;
use crate::spec::tree::{Kind, Node};

/// Collects the messages of one file.
#[derive(Default)]
pub struct Reader {
    pub diags: Vec<Diagnostic>,
}

/// A value of the file that can be read from a node. `key` names it in messages and
/// `example` is what it looks like when right (without the key).
pub trait FromNode: Sized {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self>;
}

/// A keyword value (`chain: input`): the accepted words, lowercase, and what each means.
pub trait Choice: Sized + Copy + 'static {
    /// What one value is called in messages: "a chain", "an action".
    const WHAT: &'static str;
    const NAMES: &'static [(&'static str, Self)];
    /// Other spellings accepted without being offered (`icmpv6` for `icmp`).
    const ALIASES: &'static [(&'static str, Self)] = &[];
}

/// The mapping of one entry (a forward, `listen`, ...), keys checked.
pub struct Entry<'n> {
    /// How messages call the entry: "this forward", "`listen`".
    pub what: String,
    pub location: Location,
    pairs: Vec<(&'n str, Location, &'n Node)>,
}

impl Entry<'_> {
    fn key_location(&self, key: &str) -> Option<Location> {
        self.pairs
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, l, _)| *l)
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.pairs
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }
}

impl Reader {
    pub fn err(&mut self, location: Location, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            location,
            message: message.into(),
        });
    }

    /// "`key` takes WHAT, not WHAT-WAS-WRITTEN; write `key: EXAMPLE`".
    pub fn wrong(&mut self, key: &str, node: &Node, expected: &str, example: &str) {
        let written = match &node.kind {
            Kind::Null => "nothing".to_string(),
            other => other.describe(),
        };
        self.err(
            node.location,
            format!("`{key}` takes {expected}, not {written}; write `{key}: {example}`"),
        );
    }

    /// Read `node` as the mapping of an entry whose keys are `keys`. Unknown keys (with a
    /// "did you mean"), repeated keys and keys that are not names are reported here.
    pub fn entry<'n>(
        &mut self,
        node: &'n Node,
        what: String,
        keys: &[&str],
        example: &str,
    ) -> Option<Entry<'n>> {
        let Kind::Map(pairs) = &node.kind else {
            let written = node.kind.describe();
            self.err(
                node.location,
                format!("{what} is a mapping of keys, not {written}; write {example}"),
            );
            return None;
        };
        let mut entry = Entry {
            what,
            location: node.location,
            pairs: Vec::with_capacity(pairs.len()),
        };
        for (k, v) in pairs {
            let Kind::Str(name) = &k.kind else {
                self.err(
                    k.location,
                    format!(
                        "a key of {} must be a name such as `{}`",
                        entry.what, keys[0]
                    ),
                );
                continue;
            };
            if !keys.contains(&name.as_str()) {
                self.unknown_key(k.location, name, &entry.what, keys);
            } else if let Some(first) = first_key(pairs, name)
                && !std::ptr::eq(first, k)
            {
                self.repeated_key(k.location, name, &entry.what, first.location);
            } else {
                entry.pairs.push((name.as_str(), k.location, v));
            }
        }
        Some(entry)
    }

    fn unknown_key(&mut self, at: Location, name: &str, what: &str, keys: &[&str]) {
        let hint = closest(name, keys)
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
        self.err(
            at,
            format!(
                "`{name}` is not a key of {what}{hint} (keys: {})",
                one_of(keys, "and")
            ),
        );
    }

    fn repeated_key(&mut self, at: Location, name: &str, what: &str, first: Location) {
        let hint = match name {
            "to" => "; several backends are one list, `to: [192.168.1.2, 192.168.1.3]`",
            "from" | "state" | "dport" | "sport" | "source" | "destination" => {
                "; several values are one list, e.g. `[a, b]`"
            }
            _ => "",
        };
        self.err(
            at,
            format!(
                "`{name}` is given twice in {what} (first at {}:{}); keep one{hint}",
                first.line, first.column
            ),
        );
    }

    /// A key the entry must have.
    pub fn req<T: FromNode>(&mut self, e: &Entry, key: &str, example: &str) -> Option<Spanned<T>> {
        match e.get(key) {
            None => {
                self.err(
                    e.location,
                    format!("{} has no `{key}`; add it, e.g. `{key}: {example}`", e.what),
                );
                None
            }
            Some(n) if n.kind == Kind::Null => {
                let at = e.key_location(key).unwrap_or(n.location);
                self.err(at, format!("`{key}` is empty; write `{key}: {example}`"));
                None
            }
            Some(n) => self.value(key, n, example),
        }
    }

    /// A key the entry may have; written without a value (`key:`) it counts as absent.
    pub fn opt<T: FromNode>(&mut self, e: &Entry, key: &str, example: &str) -> Option<Spanned<T>> {
        match e.get(key) {
            None => None,
            Some(n) if n.kind == Kind::Null => None,
            Some(n) => self.value(key, n, example),
        }
    }

    /// A key whose absence means its default (`T::default()`, e.g. an empty list).
    pub fn or_default<T: FromNode + Default>(&mut self, e: &Entry, key: &str, example: &str) -> T {
        self.opt::<T>(e, key, example)
            .map(|s| s.value)
            .unwrap_or_default()
    }

    pub fn value<T: FromNode>(&mut self, key: &str, n: &Node, example: &str) -> Option<Spanned<T>> {
        T::read(self, key, n, example).map(|value| Spanned {
            value,
            location: n.location,
        })
    }
}

fn first_key<'n>(pairs: &'n [(Node, Node)], name: &str) -> Option<&'n Node> {
    pairs
        .iter()
        .map(|(k, _)| k)
        .find(|k| matches!(&k.kind, Kind::Str(s) if s == name))
}

/// `a, b or c`.
pub fn one_of(names: &[&str], last: &str) -> String {
    match names {
        [] => String::new(),
        [one] => format!("`{one}`"),
        [init @ .., tail] => {
            let init: Vec<String> = init.iter().map(|n| format!("`{n}`")).collect();
            format!("{} {last} `{tail}`", init.join(", "))
        }
    }
}

/// The accepted name a user most likely meant: the same word in another case, or a near
/// spelling (`roundrobin` -> `round-robin`).
pub fn closest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    if let Some(same) = names.iter().find(|n| n.eq_ignore_ascii_case(word)) {
        return Some(same);
    }
    suggest::closest(&lower, names.iter().copied())
}

impl<T: Choice> FromNode for T {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        let names: Vec<&str> = T::NAMES.iter().map(|(n, _)| *n).collect();
        let Kind::Str(word) = &node.kind else {
            r.wrong(
                key,
                node,
                &format!("{} ({})", T::WHAT, one_of(&names, "or")),
                example,
            );
            return None;
        };
        if let Some((_, v)) = T::NAMES.iter().chain(T::ALIASES).find(|(n, _)| n == word) {
            return Some(*v);
        }
        let hint = closest(word, &names)
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
        r.err(
            node.location,
            format!(
                "`{word}` is not {} (`{key}` takes {}){hint}",
                T::WHAT,
                one_of(&names, "or")
            ),
        );
        None
    }
}

impl FromNode for String {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            // A bare number is text here too: `name: 80`, `interface: 0`.
            Kind::Int(i) => Some(i.to_string()),
            Kind::Seq(items)
                if items.len() > 1
                    || items
                        .first()
                        .is_some_and(|i| i.kind.scalar_text().is_some()) =>
            {
                // A list where one value goes: show the first as the fix.
                let first = items[0]
                    .kind
                    .scalar_text()
                    .unwrap_or_else(|| example.to_string());
                r.err(
                    node.location,
                    format!("`{key}` takes one value, not a list; write `{key}: {first}`, and one entry per value"),
                );
                None
            }
            _ => {
                r.wrong(key, node, "one value", example);
                None
            }
        }
    }
}

impl FromNode for bool {
    fn read(r: &mut Reader, key: &str, node: &Node, _example: &str) -> Option<Self> {
        if let Kind::Bool(b) = node.kind {
            return Some(b);
        }
        let meant = match node.kind.scalar_text().map(|t| t.to_lowercase()).as_deref() {
            Some("no" | "off" | "n" | "0" | "false") => "false",
            _ => "true",
        };
        r.wrong(key, node, "true or false", meant);
        None
    }
}

impl FromNode for i64 {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        match &node.kind {
            Kind::Int(i) => Some(*i),
            Kind::Str(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
            _ => {
                r.wrong(key, node, "a whole number", example);
                None
            }
        }
    }
}

impl FromNode for u32 {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        let n = i64::read(r, key, node, example)?;
        match u32::try_from(n) {
            Ok(v) => Some(v),
            Err(_) => {
                r.wrong(key, node, "a whole number", example);
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
