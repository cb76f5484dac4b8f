//! Values the YAML may spell in more than one way, with visitors that keep spans intact.

use std::fmt;

use super::span::Spanned;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A port or an inclusive range, as written: `80`, `"80"` or `"8000-8010"`.
/// Checked (1..=65535, low <= high) in `validate.rs`, so the message can say what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port (1-65535) or a range like \"8000-8010\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortSpec, E> {
                Ok(PortSpec::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortSpec, E> {
                Ok(PortSpec::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortSpec, E> {
                Ok(PortSpec::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A sysctl value: YAML gives numbers or strings; both end up as the text written to /proc/sys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(if v { "1" } else { "0" }.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
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

impl<'de> Deserialize<'de> for Backends {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Backends;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a backend \"address[:port]\" or a list of backends")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Backends, E> {
                Ok(Backends::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Backends, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<BackendItem>>()? {
                    items.push(item);
                }
                Ok(Backends::Many(items))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for BackendItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BackendItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"address[:port]\" or {address: \"address[:port]\", weight: N}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BackendItem, E> {
                Ok(BackendItem {
                    address: v.to_string(),
                    weight: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BackendItem, A::Error> {
                let mut address: Option<String> = None;
                let mut weight = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "address" if address.is_none() => address = Some(map.next_value()?),
                        "weight" if weight.is_none() => weight = Some(map.next_value()?),
                        "address" | "weight" => {
                            return Err(de::Error::custom(format!("duplicate field `{key}`")));
                        }
                        other => {
                            return Err(de::Error::unknown_field(other, &["address", "weight"]));
                        }
                    }
                }
                let address = address.ok_or_else(|| de::Error::missing_field("address"))?;
                Ok(BackendItem { address, weight })
            }
        }
        d.deserialize_any(V)
    }
}

/// `hairpin:` — `true`/`false`, or the list of internal networks whose clients get masqueraded.
#[derive(Debug)]
pub enum Hairpin {
    Flag(bool),
    Networks(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for Hairpin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Hairpin;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, or a list of internal networks (CIDR)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Hairpin, E> {
                Ok(Hairpin::Flag(v))
            }
            fn visit_str<E: de::Error>(self, _v: &str) -> Result<Hairpin, E> {
                Err(de::Error::custom(
                    "hairpin takes true, false or a list of networks such as [192.168.1.0/24]",
                ))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Hairpin, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(Hairpin::Networks(items))
            }
        }
        d.deserialize_any(V)
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

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<T>()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let one = T::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(OneOrMany(vec![one]))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
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

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<V>()?;
                    items.push((key, value));
                }
                Ok(Entries(items))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}
