//! Values the YAML may spell in more than one way, read from the tree with their spans.

use crate::spec::read::{FromNode, Reader};
use crate::spec::span::Spanned;
use crate::spec::tree::{Kind, Node};

/// A port or an inclusive range, as written: `80`, `"80"` or `"8000-8010"`.
/// Checked (1..=65535, low <= high) in `validate.rs`, so the message can say what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    Number(i64),
    Text(String),
}

impl FromNode for PortSpec {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        match &node.kind {
            Kind::Int(i) => Some(PortSpec::Number(*i)),
            Kind::Str(s) => Some(PortSpec::Text(s.clone())),
            _ => {
                let what = "a port (1-65535) or a range like \"8000-8010\"";
                r.wrong(key, node, what, example);
                None
            }
        }
    }
}

/// A sysctl value: YAML gives numbers or strings; both end up as the text written to /proc/sys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl FromNode for Scalar {
    fn read(r: &mut Reader, key: &str, node: &Node, _example: &str) -> Option<Self> {
        match &node.kind {
            Kind::Bool(b) => Some(Scalar(if *b { "1" } else { "0" }.to_string())),
            Kind::Int(_) | Kind::Float(_) | Kind::Str(_) => node.kind.scalar_text().map(Scalar),
            _ => {
                r.wrong(key, node, "one value, a number or a text", "1");
                None
            }
        }
    }
}

/// `to:` — one backend as a string, or a list of backends (strings or `{address, weight}`).
#[derive(Debug)]
pub enum Backends {
    One(String),
    Many(Vec<Spanned<BackendItem>>),
}

#[derive(Debug)]
pub struct BackendItem {
    pub address: String,
    pub weight: Option<Spanned<i64>>,
}

impl FromNode for Backends {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        match &node.kind {
            Kind::Seq(items) => {
                let before = r.diags.len();
                let items: Vec<_> = items
                    .iter()
                    .filter_map(|item| r.value::<BackendItem>(key, item, example))
                    .collect();
                (r.diags.len() == before).then_some(Backends::Many(items))
            }
            Kind::Map(_) => {
                let one = r.value::<BackendItem>(key, node, example)?;
                Some(Backends::Many(vec![one]))
            }
            _ => String::read(r, key, node, example).map(Backends::One),
        }
    }
}

impl FromNode for BackendItem {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        if let Kind::Map(_) = node.kind {
            let what = format!("this backend of `{key}`");
            let example = "`{address: 192.168.1.3:80, weight: 2}`";
            let e = r.entry(node, what, &["address", "weight"], example)?;
            let address = r.req::<String>(&e, "address", "192.168.1.3:80");
            let weight = r.opt::<i64>(&e, "weight", "2");
            return Some(BackendItem {
                address: address?.value,
                weight,
            });
        }
        let address = String::read(r, key, node, example)?;
        Some(BackendItem {
            address,
            weight: None,
        })
    }
}

/// `hairpin:` — `true`/`false`, or the list of internal networks whose clients get masqueraded.
#[derive(Debug)]
pub enum Hairpin {
    Flag(bool),
    Networks(Vec<Spanned<String>>),
}

impl FromNode for Hairpin {
    fn read(r: &mut Reader, key: &str, node: &Node, _example: &str) -> Option<Self> {
        match &node.kind {
            Kind::Bool(b) => Some(Hairpin::Flag(*b)),
            Kind::Seq(_) => {
                let OneOrMany(nets) = OneOrMany::read(r, key, node, "[192.168.1.0/24]")?;
                Some(Hairpin::Networks(nets))
            }
            Kind::Str(s) if ["yes", "no", "on", "off"].contains(&s.to_lowercase().as_str()) => {
                let meant = if ["yes", "on"].contains(&s.to_lowercase().as_str()) {
                    "true"
                } else {
                    "false"
                };
                r.wrong(key, node, "true, false or a list of networks", meant);
                None
            }
            Kind::Str(s) if s.contains(['.', ':']) => {
                r.wrong(
                    key,
                    node,
                    "true, false or a list of networks",
                    &format!("[{s}]"),
                );
                None
            }
            _ => {
                let what = "true, false or a list of networks";
                r.wrong(key, node, what, "[192.168.1.0/24]");
                None
            }
        }
    }
}

/// One value or a list of them (`from: 10.0.0.0/8` or `from: [a, b]`).
#[derive(Debug)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<T: FromNode> FromNode for OneOrMany<Spanned<T>> {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        let one_example = example
            .trim_start_matches('[')
            .split(',')
            .next()
            .unwrap_or(example)
            .trim_end_matches(']');
        match &node.kind {
            Kind::Seq(items) => {
                let before = r.diags.len();
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    if let Kind::Seq(_) | Kind::Map(_) = item.kind {
                        r.wrong(key, item, "a list of single values", example);
                    } else if let Some(v) = r.value::<T>(key, item, one_example) {
                        values.push(v);
                    }
                }
                (r.diags.len() == before).then_some(OneOrMany(values))
            }
            _ => Some(OneOrMany(vec![r.value::<T>(key, node, one_example)?])),
        }
    }
}

/// A mapping kept in file order with the span of each key (`interfaces:`, `sysctl:`).
#[derive(Debug)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<V: FromNode> FromNode for Entries<Spanned<V>> {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        let Kind::Map(pairs) = &node.kind else {
            r.wrong(key, node, "a mapping of names to values", example);
            return None;
        };
        let before = r.diags.len();
        let mut items: Vec<(Spanned<String>, Spanned<V>)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let Some(name) = r.value::<String>(key, k, example) else {
                continue;
            };
            if let Some((first, _)) = items.iter().find(|(f, _)| f.value == name.value) {
                let (line, column) = (first.location.line, first.location.column);
                r.err(
                    name.location,
                    format!(
                        "`{}` is given twice in `{key}` (first at {line}:{column}); keep one",
                        name.value
                    ),
                );
                continue;
            }
            let value_example = example
                .split(": ")
                .nth(1)
                .unwrap_or("1")
                .trim_end_matches('}');
            if let Some(value) = r.value::<V>(&name.value, v, value_example) {
                items.push((name, value));
            }
        }
        (r.diags.len() == before).then_some(Entries(items))
    }
}
