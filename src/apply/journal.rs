//! Files written with rollback: apply keeps each file's previous content until everything
//! succeeded.

use crate::error::HostError;
use crate::host::Files;
use crate::render::files::ManagedFile;

/// Files written so far, with what they held before, for rollback.
#[derive(Default)]
pub struct FileJournal {
    before: Vec<(&'static str, Option<String>)>,
}

impl FileJournal {
    /// Make a file hold `want`; returns whether anything changed.
    pub fn converge(&mut self, files: &dyn Files, f: &ManagedFile) -> Result<bool, HostError> {
        let old = files.read(f.target)?;
        if old == f.content {
            return Ok(false);
        }
        // Recorded before the write: a write that fails half-way is put back too.
        self.before.push((f.target, old));
        put(files, f.target, f.content.as_deref())?;
        Ok(true)
    }

    /// Put every written file back as it was, newest first.
    pub fn rollback(self, files: &dyn Files) -> Result<(), HostError> {
        for (target, old) in self.before.into_iter().rev() {
            put(files, target, old.as_deref())?;
        }
        Ok(())
    }
}

/// Write `content`, or remove the file for `None`.
fn put(files: &dyn Files, target: &str, content: Option<&str>) -> Result<(), HostError> {
    match content {
        Some(c) => files.write(target, c),
        None => files.remove(target).map(|_| ()),
    }
}
