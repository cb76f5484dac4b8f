//! The desired-state file as written: structs that mirror the YAML and nothing more.
//!
//! Every value a later check may complain about is wrapped in [`Spanned`], so that the
//! validation in `validate.rs` can point at `FILE:LINE:COL` even for errors that only show up
//! when several entries are compared (duplicate names, two forwards on one port).
//! Reading: text -> YAML tree (`syntax.rs`) -> these structs (`schema.rs`, with the helpers of
//! `read.rs`; shapes YAML allows in more than one way in `shapes.rs`).

pub use super::iface::InterfaceSpec;
use super::read::Reader;
use super::schema::read_spec;
pub use super::shapes::{BackendItem, Backends, Entries, Hairpin, OneOrMany, PortSpec, Scalar};
use super::span::Spanned;
use crate::error::SpecError;

#[derive(Debug)]
pub struct Spec {
    pub version: Spanned<u32>,
    pub host: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
    /// Install pfstate-watch.service (default true).
    pub watch: Option<Spanned<bool>>,
    pub interfaces: Entries<Spanned<InterfaceSpec>>,
    pub sysctl: Entries<Spanned<Scalar>>,
    pub forwards: Vec<Spanned<ForwardSpec>>,
    pub snat: Vec<Spanned<SnatSpec>>,
    pub filter: Vec<Spanned<FilterSpec>>,
    /// The verdict per built-in chain for packets nothing else decided.
    pub default: DefaultSpec,
}

/// `default: {input: drop, forward: drop}`.
#[derive(Debug, Default)]
pub struct DefaultSpec {
    pub input: Option<Spanned<VerdictSpec>>,
    pub forward: Option<Spanned<VerdictSpec>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictSpec {
    Accept,
    Drop,
    Reject,
}

#[derive(Debug)]
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

#[derive(Debug)]
pub struct ListenSpec {
    pub port: Spanned<PortSpec>,
    pub address: Option<Spanned<String>>,
    pub interface: Option<Spanned<String>>,
    pub from: OneOrMany<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoSpec {
    Tcp,
    Udp,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceSpec {
    Random,
    RoundRobin,
}

#[derive(Debug)]
pub struct SnatSpec {
    pub name: Spanned<String>,
    pub source: Spanned<String>,
    pub out_interface: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    /// Extension: also accept the forwarded traffic (and its replies) in FORWARD, so LAN
    /// hosts reach out under a FORWARD policy of DROP. Default true, like forwards.
    pub accept: Option<Spanned<bool>>,
}

#[derive(Debug)]
pub struct FilterSpec {
    pub name: Spanned<String>,
    pub chain: Spanned<FilterChainSpec>,
    pub proto: Option<Spanned<FilterProtoSpec>>,
    /// A port, a range, or a list of them (`[80, 443, "8000-8010"]`).
    pub dport: OneOrMany<Spanned<PortSpec>>,
    pub sport: OneOrMany<Spanned<PortSpec>>,
    /// An address, a network, a range `a-b`, or a list of them.
    pub source: OneOrMany<Spanned<String>>,
    pub destination: OneOrMany<Spanned<String>>,
    pub in_interface: Option<Spanned<String>>,
    pub out_interface: Option<Spanned<String>>,
    pub state: OneOrMany<Spanned<StateSpec>>,
    /// ICMP types by name (`echo-request`) or number (`8`, `3/4`), with `proto: icmp`.
    pub icmp_type: OneOrMany<Spanned<Scalar>>,
    /// At most this many matches per time unit (`10/minute`), optionally with a burst.
    pub limit: Option<Spanned<LimitSpec>>,
    /// The destination port / address of the connection before any DNAT (conntrack's
    /// original tuple): what a client asked for, even in FORWARD after translation.
    pub original_port: OneOrMany<Spanned<PortSpec>>,
    pub original_address: OneOrMany<Spanned<String>>,
    pub action: Spanned<ActionSpec>,
    /// Extension: the `--log-prefix` of a `log` action.
    pub log_prefix: Option<Spanned<String>>,
    /// Extension: `ipv4`, `ipv6` or `both`; by default taken from the addresses, else both.
    pub family: Option<Spanned<FamilySpec>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterProtoSpec {
    Tcp,
    Udp,
    Icmp,
    All,
}

/// `limit: 10/minute` or `limit: {rate: 10/minute, burst: 20}`.
#[derive(Debug)]
pub struct LimitSpec {
    pub rate: Spanned<String>,
    pub burst: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterChainSpec {
    Input,
    Forward,
    Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateSpec {
    Invalid,
    New,
    Related,
    Established,
    Untracked,
    Snat,
    Dnat,
}

/// A filter entry's `action:` as written is the model's action: the five words map one to one.
pub use crate::model::Action as ActionSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilySpec {
    Ipv4,
    Ipv6,
    Both,
}

pub use super::syntax::MAX_FILE_BYTES;

/// How every desired-state text is read (also for the joined copy of several files).
pub(crate) fn saphyr_options() -> serde_saphyr::Options {
    super::syntax::options()
}

/// Parse the text of a desired-state file: every syntax error is reported alone (the reader
/// cannot go on after it), every schema error at once. `file` is only used in error messages.
pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
    let tree = super::syntax::parse_tree(file, text)?;
    let mut r = Reader::default();
    let spec = read_spec(&mut r, &tree);
    match spec {
        Some(spec) if r.diags.is_empty() => Ok(spec),
        _ => {
            r.diags.sort_by_key(|d| d.location);
            Err(SpecError {
                file: file.to_string(),
                diagnostics: r.diags,
                more_files: Vec::new(),
            })
        }
    }
}

/// Parse file number `index` of a state made of several: its locations carry the index.
pub fn parse_nth(index: u16, file: &str, text: &str) -> Result<Spec, SpecError> {
    super::span::in_file(index, || parse(file, text))
}
