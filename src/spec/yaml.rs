//! The desired-state file as written: serde structs that mirror the YAML and nothing more.
//!
//! Every value a later check may complain about is wrapped in [`Spanned`], so that the
//! validation in `validate.rs` can point at `FILE:LINE:COL` even for errors that only show up
//! when several entries are compared (duplicate names, two forwards on one port).
//! Shapes YAML allows in more than one way (a port as `80` or `"8000-8010"`, one backend or a
//! list) have small hand-written visitors in `shapes.rs`; untagged enums would lose spans.

use serde::Deserialize;

pub use super::iface::InterfaceSpec;
pub use super::shapes::{BackendItem, Backends, Entries, Hairpin, OneOrMany, PortSpec, Scalar};
use super::span::Spanned;
use crate::error::{Location, SpecError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub version: Spanned<u32>,
    pub host: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub interfaces: Entries<InterfaceSpec>,
    #[serde(default)]
    pub sysctl: Entries<Spanned<Scalar>>,
    #[serde(default)]
    pub forwards: Vec<Spanned<ForwardSpec>>,
    #[serde(default)]
    pub snat: Vec<Spanned<SnatSpec>>,
    #[serde(default)]
    pub filter: Vec<Spanned<FilterSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSpec {
    pub name: Spanned<String>,
    pub proto: Option<Spanned<ProtoSpec>>,
    pub listen: Spanned<ListenSpec>,
    pub to: Spanned<Backends>,
    pub balance: Option<Spanned<BalanceSpec>>,
    pub snat: Option<Spanned<String>>,
    pub hairpin: Option<Spanned<Hairpin>>,
    pub local: Option<Spanned<bool>>,
    pub via: Option<Spanned<String>>,
    pub accept: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSpec {
    pub port: Spanned<PortSpec>,
    pub address: Option<Spanned<String>>,
    pub interface: Option<Spanned<String>>,
    #[serde(default)]
    pub from: OneOrMany<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtoSpec {
    Tcp,
    Udp,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalanceSpec {
    Random,
    RoundRobin,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnatSpec {
    pub name: Spanned<String>,
    pub source: Spanned<String>,
    pub out_interface: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    /// Extension: also accept the forwarded traffic (and its replies) in FORWARD, so LAN
    /// hosts reach out under a FORWARD policy of DROP. Default true, like forwards.
    pub accept: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    pub name: Spanned<String>,
    pub chain: Spanned<FilterChainSpec>,
    pub proto: Option<Spanned<String>>,
    pub dport: Option<Spanned<PortSpec>>,
    pub sport: Option<Spanned<PortSpec>>,
    pub source: Option<Spanned<String>>,
    pub destination: Option<Spanned<String>>,
    pub in_interface: Option<Spanned<String>>,
    pub out_interface: Option<Spanned<String>>,
    #[serde(default)]
    pub state: OneOrMany<Spanned<StateSpec>>,
    pub action: Spanned<ActionSpec>,
    /// Extension: the `--log-prefix` of a `log` action.
    pub log_prefix: Option<Spanned<String>>,
    /// Extension: `ipv4`, `ipv6` or `both`; by default taken from the addresses, else both.
    pub family: Option<Spanned<FamilySpec>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterChainSpec {
    Input,
    Forward,
    Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateSpec {
    Invalid,
    New,
    Related,
    Established,
    Untracked,
    Snat,
    Dnat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionSpec {
    Accept,
    Drop,
    Reject,
    Log,
    Return,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilySpec {
    Ipv4,
    Ipv6,
    Both,
}

/// The largest desired-state file accepted; a real one is a few hundred kilobytes at 10,000
/// forwards. Refusing more keeps a stray `pfstate apply /dev/zero` from eating memory.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// How every desired-state text is read: strict booleans, and budgets sized for the largest
/// accepted file.
pub(crate) fn saphyr_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    // YAML 1.1's yes/no/on/off are a classic source of surprises in a security-relevant file.
    options.strict_booleans = true;
    // Node and event budgets sized for the largest accepted file: the defaults (250,000
    // nodes, about 6 per forward) refuse files of more than about 40,000 forwards.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = budget.max_nodes.max(MAX_FILE_BYTES / 8);
    budget.max_events = budget.max_events.max(MAX_FILE_BYTES / 4);
    options.budget = Some(budget);
    options
}

/// Parse the text of a desired-state file. `file` is only used in error messages.
pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(SpecError::one(
            file,
            Location::start(),
            format!("the file is larger than {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    let options = saphyr_options();
    serde_saphyr::from_str_with_options::<Spec>(text, options)
        .map_err(|e| SpecError::one(file, location_of(&e), yaml_message(&e)))
}

fn location_of(e: &serde_saphyr::Error) -> Location {
    e.location()
        .map(|l| Location::new(l.line(), l.column()))
        .unwrap_or_else(Location::start)
        .in_file(super::span::current_file())
}

/// Parse file number `index` of a state made of several: its locations carry the index.
pub fn parse_nth(index: u16, file: &str, text: &str) -> Result<Spec, SpecError> {
    super::span::in_file(index, || parse(file, text))
}

/// The parser's message without its own "line L column C:" prefix, plus a "did you mean"
/// for a misspelt key.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let first = first.strip_prefix("error:").unwrap_or(first).trim();
    let message = strip_location_suffix(strip_location_prefix(first));
    match super::suggest::unknown_field_hint(message) {
        Some(hint) => format!("{message}; {hint}"),
        None => message.to_string(),
    }
}

fn strip_location_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(", column ") || message[i..].contains(" column ") => {
            &message[..i]
        }
        _ => message,
    }
}

fn strip_location_prefix(message: &str) -> &str {
    let Some(rest) = message.strip_prefix("line ") else {
        return message;
    };
    match rest.find(": ") {
        Some(i) if rest[..i].contains(" column ") => &rest[i + 2..],
        _ => message,
    }
}
