//! Files written with rollback: apply keeps each file's previous content until everything
//! succeeded.

use std::path::PathBuf;

use crate::error::HostError;
use crate::host::fs::{self, FILE_MODE, Root, read};
use crate::render::files::ManagedFile;

/// Files written so far, with what they held before, for rollback.
#[derive(Default)]
pub struct FileJournal {
    before: Vec<(PathBuf, Option<String>)>,
}

impl FileJournal {
    /// Make a file hold `want`; returns whether anything changed.
    pub fn converge(&mut self, root: &Root, f: &ManagedFile) -> Result<bool, HostError> {
        let path = root.path(f.target);
        let old = read(root, f.target)?;
        if old == f.content {
            return Ok(false);
        }
        self.before.push((path.clone(), old));
        match &f.content {
            Some(c) => fs::write_atomic(&path, c.as_bytes(), FILE_MODE)?,
            None => {
                fs::remove_if_exists(&path)?;
            }
        }
        Ok(true)
    }

    /// Put every written file back as it was, newest first.
    pub fn rollback(self) -> Result<(), HostError> {
        for (path, old) in self.before.into_iter().rev() {
            match old {
                Some(c) => fs::write_atomic(&path, c.as_bytes(), FILE_MODE)?,
                None => {
                    fs::remove_if_exists(&path)?;
                }
            }
        }
        Ok(())
    }
}
