//! A value with the place in the file where it was written, so every later check can point at
//! `FILE:LINE:COL`.

use serde::Deserialize;

use crate::error::Location;

thread_local! {
    /// Which file of a state made of several is being parsed: serde gives `Spanned`'s
    /// deserializer no context of its own, and every location must say its file.
    static CURRENT_FILE: std::cell::Cell<u16> = const { std::cell::Cell::new(0) };
}

/// The index of the file being parsed (0 outside [`in_file`]).
pub fn current_file() -> u16 {
    CURRENT_FILE.with(|c| c.get())
}

/// Run `f` (a parse) with every location it makes in file number `index`.
pub fn in_file<T>(index: u16, f: impl FnOnce() -> T) -> T {
    CURRENT_FILE.with(|c| c.set(index));
    let result = f();
    CURRENT_FILE.with(|c| c.set(0));
    result
}

/// A value and where it was written. Derefs to the value, so checks read naturally.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub location: Location,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let location =
            Location::new(s.referenced.line(), s.referenced.column()).in_file(current_file());
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
