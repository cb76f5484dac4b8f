//! `pfstate watch`: repair pfstate's own rules as soon as another manager removes them.
//!
//! [`policy`] decides when to check (debounce, back-off from a fight).

pub mod policy;
