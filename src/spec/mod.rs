//! Stage ①: the desired-state file's text -> a validated [`Model`]. Pure, except [`load`],
//! which reads the file first.
//!
//! - [`yaml`] - structs mirroring the file, and [`parse`]: text -> `Spec`;
//! - [`syntax`] (+ [`lines`]) - text -> a spanned YAML [`tree`], syntax errors in pfstate's words;
//! - [`schema`] (+ [`read`]) - tree -> `Spec`: keys, shapes and keywords checked, every error
//!   collected, each with what to write instead;
//! - [`shapes`] - values the file may spell in more than one way;
//! - [`span`] - a value with its `FILE:LINE:COL`;
//! - [`values`] - parsers of single values (port, backend, sysctl key);
//! - [`validate`] (+ `validate_forward`, [`validate_rules`], [`validate_filter`] with
//!   [`filter_values`]) - `Spec` -> `Model`, every problem collected and sorted;
//! - [`suggest`] - "did you mean";
//! - [`multi`] - several files (or a directory) making one state.

mod events;
pub mod filter_values;
pub mod iface;
pub mod lines;
pub mod multi;
pub mod read;
mod scalars;
pub mod schema;
pub mod shadow;
pub mod shapes;
pub mod span;
pub mod suggest;
pub mod syntax;
pub mod tree;
pub mod validate;
pub mod validate_filter;
mod validate_forward;
pub mod validate_iface;
pub mod validate_rules;
pub mod values;
pub mod yaml;

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Location, SpecError};
use crate::model::Model;

pub use validate::load_str;
pub use yaml::{MAX_FILE_BYTES, parse};

/// Read and validate a file; returns the model and the text as given.
pub fn load(path: &Path) -> Result<(Model, String), Error> {
    let name = path.display().to_string();
    let text = read(path)?;
    let model = load_str(&name, &text)?;
    Ok((model, text))
}

/// A state file's text: bounded in size whatever it is (a file, a device, a pipe; `-` is
/// standard input), and UTF-8 (a bad byte is reported at its line:col).
pub fn read(path: &Path) -> Result<String, Error> {
    let read_err = |source| Error::Read {
        path: path.display().to_string(),
        source,
    };
    // The size a stat reports says nothing for /dev/zero or a pipe: read at most one byte
    // past the cap, whatever the source, and refuse what does not fit.
    let limit = MAX_FILE_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
    } else {
        let file = std::fs::File::open(path).map_err(read_err)?;
        if file.metadata().map_err(read_err)?.is_dir() {
            return Err(Error::Usage(format!(
                "{}: is a directory, not a state file",
                path.display()
            )));
        }
        file.take(limit).read_to_end(&mut bytes).map_err(read_err)?;
    }
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Error::Usage(format!(
            "{}: larger than {} MiB; a state file is text of at most that size",
            path.display(),
            MAX_FILE_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        // Point at the first byte that is not UTF-8, like any other spec error.
        let valid =
            String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()]).to_string();
        let line = valid.matches('\n').count() as u64 + 1;
        let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
        let loc = Location::new(line, col);
        Error::Spec(SpecError::one(
            &path.display().to_string(),
            loc,
            "the file is not UTF-8 text",
        ))
    })
}
