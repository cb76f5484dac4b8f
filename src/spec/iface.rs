//! `interfaces:` values: a device name (`lan: eth1`), or the device with the networks behind it
//! (`lan: {name: eth1, networks: [192.168.1.0/24]}`). The networks are a fact about the host the
//! file states, so rendering never has to ask the machine (issue 11: same file, same rules).

use super::read::{FromNode, Reader};
use super::shapes::OneOrMany;
use super::span::Spanned;
use super::tree::{Kind, Node};

/// One interface alias as written.
#[derive(Debug)]
pub struct InterfaceSpec {
    pub name: Spanned<String>,
    /// The networks on the interface (client networks of `hairpin: true`); empty when not given.
    pub networks: Vec<Spanned<String>>,
}

impl FromNode for InterfaceSpec {
    fn read(r: &mut Reader, key: &str, node: &Node, example: &str) -> Option<Self> {
        if let Kind::Map(_) = node.kind {
            let what = format!("interface alias `{key}`");
            let full = "`{name: eth1, networks: [192.168.1.0/24]}`";
            let e = r.entry(node, what, &["name", "networks"], full)?;
            let name = r.req::<String>(&e, "name", "eth1");
            let networks = r.opt::<OneOrMany<Spanned<String>>>(&e, "networks", "[192.168.1.0/24]");
            return Some(InterfaceSpec {
                name: name?,
                networks: networks.map(|n| n.value.0).unwrap_or_default(),
            });
        }
        // A plain device name keeps its own position.
        let name = r.value::<String>(key, node, example)?;
        Some(InterfaceSpec {
            name,
            networks: Vec::new(),
        })
    }
}
