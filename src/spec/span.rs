//! A value with the place in the file where it was written, so every later check can point at
//! `FILE:LINE:COL`.

use serde::Deserialize;

use crate::error::Location;

/// A value and where it was written. Derefs to the value, so checks read naturally.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub location: Location,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let location = Location::new(s.referenced.line(), s.referenced.column());
        Ok(Spanned {
            value: s.value,
            location,
        })
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// The location of a spanned value, for messages about it.
pub fn at<T>(s: &Spanned<T>) -> Location {
    s.location
}
