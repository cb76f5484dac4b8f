//! `interfaces:` values: a device name (`lan: eth1`), or the device with the networks behind it
//! (`lan: {name: eth1, networks: [192.168.1.0/24]}`). The networks are a fact about the host the
//! file states, so rendering never has to ask the machine (issue 11: same file, same rules).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::span::Spanned;

/// One interface alias as written.
#[derive(Debug)]
pub struct InterfaceSpec {
    pub name: Spanned<String>,
    /// The networks on the interface (client networks of `hairpin: true`); empty when not given.
    pub networks: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for InterfaceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A spanned plain string keeps its own position; the map form is read field by field.
        let v = Spanned::<Shape>::deserialize(d)?;
        let location = v.location;
        Ok(match v.value {
            Shape::Name(name) => InterfaceSpec {
                name: Spanned {
                    value: name,
                    location,
                },
                networks: Vec::new(),
            },
            Shape::Full { name, networks } => InterfaceSpec { name, networks },
        })
    }
}

enum Shape {
    Name(String),
    Full {
        name: Spanned<String>,
        networks: Vec<Spanned<String>>,
    },
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a device name such as eth1, or {name: eth1, networks: [192.168.1.0/24]}",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Shape, E> {
                Ok(Shape::Name(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let mut name: Option<Spanned<String>> = None;
                let mut networks: Option<Vec<Spanned<String>>> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" if name.is_none() => name = Some(map.next_value()?),
                        "networks" if networks.is_none() => networks = Some(map.next_value()?),
                        "name" | "networks" => {
                            return Err(de::Error::custom(format!("duplicate field `{key}`")));
                        }
                        other => {
                            return Err(de::Error::unknown_field(other, &["name", "networks"]));
                        }
                    }
                }
                let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
                Ok(Shape::Full {
                    name,
                    networks: networks.unwrap_or_default(),
                })
            }
        }
        d.deserialize_any(V)
    }
}
