//! A YAML scalar's value under YAML 1.2's core schema, as the tree builder ([`super::events`])
//! gives it: the same spellings serde's reader typed (strict booleans, no leading zeros).

use std::borrow::Cow;

use serde_saphyr::granit_parser::{ScalarStyle, Tag};

use crate::spec::tree::Kind;

/// Why a scalar has no value pfstate can use; the tree builder adds where.
#[derive(Debug)]
pub enum Refusal {
    /// `.inf`, `.nan` or a literal beyond f64: no pfstate value is one.
    NonFinite(String),
    /// `!!binary` or `!!timestamp`: pfstate has neither.
    UnusedTag,
    /// A tagged scalar that is not what its tag says.
    NotItsTag,
}

/// A scalar's value under YAML 1.2's core schema: quoted and block scalars are text; a plain
/// one is null, a boolean (`true`/`false` only, in three casings), an integer, a float, or
/// else text. An explicit `!!str`, `!!int`, ... tag decides instead.
pub(super) fn scalar(
    value: Cow<str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
) -> Result<Kind, Refusal> {
    let plain = matches!(style, ScalarStyle::Plain);
    let core = tag
        .filter(|t| t.handle() == "tag:yaml.org,2002:")
        .map(Tag::suffix);
    let t = value.trim_matches([' ', '\t', '\r', '\n']);
    match core {
        Some("str") => return Ok(Kind::Str(value.into_owned())),
        Some("null") => return Ok(Kind::Null),
        Some("bool") => return bool_of(t).map(Kind::Bool).ok_or(Refusal::NotItsTag),
        Some("int") => return int_of(t).ok_or(Refusal::NotItsTag),
        Some("float") => return float_of(t, &value)?.ok_or(Refusal::NotItsTag),
        Some("merge") => return Ok(Kind::Str(value.into_owned())),
        // pfstate has no binary or time values: say so rather than guess.
        Some("binary" | "timestamp") => return Err(Refusal::UnusedTag),
        _ => {}
    }
    // `!` (non-specific) and any tag on a quoted scalar keep the text.
    let forced = tag.is_some_and(|t| (t.handle(), t.suffix()) == ("", "!"));
    if !plain || forced {
        return Ok(Kind::Str(value.into_owned()));
    }
    if matches!(&*value, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Kind::Null);
    }
    if let Some(b) = bool_of(t) {
        return Ok(Kind::Bool(b));
    }
    if let Some(i) = int_of(t) {
        return Ok(i);
    }
    Ok(float_of(t, &value)?.unwrap_or_else(|| Kind::Str(value.into_owned())))
}

fn bool_of(t: &str) -> Option<bool> {
    match t {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Decimal (no leading zero), `0x`, `0o` or `0b`, an optional sign, `_` between digits.
/// Beyond i64 the value is clamped, as the schema's range checks expect.
fn int_of(t: &str) -> Option<Kind> {
    let (negative, rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (radix, digits) = if let Some(d) = rest.strip_prefix("0x").or(rest.strip_prefix("0X")) {
        (16, d)
    } else if let Some(d) = rest.strip_prefix("0o").or(rest.strip_prefix("0O")) {
        (8, d)
    } else if let Some(d) = rest.strip_prefix("0b").or(rest.strip_prefix("0B")) {
        (2, d)
    } else {
        if rest.len() > 1 && rest.starts_with('0') {
            return None;
        }
        (10, rest)
    };
    let magnitude = digits_of(digits, radix)?;
    let value: i128 = if negative {
        let m = i128::try_from(magnitude).ok()?;
        if m > i128::from(i64::MAX) + 1 {
            return None;
        }
        -m
    } else {
        if magnitude > u128::from(u64::MAX) {
            return None;
        }
        magnitude as i128
    };
    Some(Kind::Int(
        value.clamp(i64::MIN.into(), i64::MAX.into()) as i64
    ))
}

fn digits_of(digits: &str, radix: u32) -> Option<u128> {
    let bytes = digits.as_bytes();
    let mut value: u128 = 0;
    let mut any = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let between =
                i > 0 && bytes[i - 1] != b'_' && bytes.get(i + 1).is_some_and(|n| *n != b'_');
            if !between {
                return None;
            }
            continue;
        }
        let d = (b as char).to_digit(radix)?;
        value = value
            .checked_mul(u128::from(radix))?
            .checked_add(u128::from(d))?;
        any = true;
    }
    any.then_some(value)
}

/// A float, `Ok(None)` when the text is not one; `.inf`, `.nan` and overflowing literals are
/// refused (no pfstate value is one, and a silent infinity would mislead a range check).
fn float_of(t: &str, raw: &str) -> Result<Option<Kind>, Refusal> {
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    let non_finite = matches!(
        unsigned,
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF"
    );
    // Rust also reads `inf` and `nan`: those stay text, only a digit-led overflow is refused.
    let parsed = t.parse::<f64>().ok();
    let digit_led = unsigned.as_bytes().first().is_some_and(u8::is_ascii_digit);
    if non_finite || (digit_led && parsed.is_some_and(f64::is_infinite)) {
        return Err(Refusal::NonFinite(raw.to_string()));
    }
    Ok(parsed.filter(|f| f.is_finite()).map(Kind::Float))
}
