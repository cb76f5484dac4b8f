//! Reading both families' full saves while the caller parses and renders, and serving a save
//! of an unchanged nf_tables generation from the cache (see `save_cache`).

use std::process::{Command, Stdio};

use super::iptables::{Iptables, checked_output};
use crate::error::HostError;
use crate::host::Netfilter;
use crate::host::fs::Root;
use crate::host::save_cache;
use crate::model::Family;

type SaveThread = std::thread::JoinHandle<std::io::Result<std::process::Output>>;

pub struct Prefetched {
    inner: Iptables,
    /// Threads draining each save's output (a pipe holds only 64 KiB: unread, the save stalls).
    pending: std::sync::Mutex<Vec<(Family, SaveThread)>>,
    /// Saves taken from the cache of an unchanged generation (see `save_cache`), served once.
    cached: std::sync::Mutex<Vec<(Family, String)>>,
    /// Fresh saves read so far, stored in the cache once both are in and the generation held.
    collected: std::sync::Mutex<Vec<(Family, String)>>,
    /// The nf_tables generation before the saves started; `None`: no caching.
    generation: Option<save_cache::Generation>,
    root: Root,
}

impl Iptables {
    /// Start the full save of both families now, so that it runs while the caller parses and
    /// renders (at 10,000 forwards each takes about as long as the other). Only use this
    /// while holding the run lock: the state read must be the state the plan is made against.
    pub fn prefetch(&self, root: &Root) -> Prefetched {
        // Only the nf_tables backend has a generation id; legacy rules are always read.
        let generation = if self.has_generation() {
            save_cache::Generation::current()
        } else {
            None
        };
        let cached = generation
            .as_ref()
            .and_then(|g| save_cache::load(root, g))
            .unwrap_or_default();
        let mut pending = Vec::new();
        for family in Family::ALL {
            if cached.iter().any(|(f, _)| *f == family) {
                continue;
            }
            if let Ok(child) = Command::new(self.tool(family, "save"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
            {
                pending.push((family, std::thread::spawn(move || child.wait_with_output())));
            }
        }
        Prefetched {
            inner: *self,
            pending: std::sync::Mutex::new(pending),
            cached: std::sync::Mutex::new(cached),
            collected: std::sync::Mutex::new(Vec::new()),
            generation,
            root: root.clone(),
        }
    }
}

impl Prefetched {
    /// Keep a fresh save; with both families in and the generation unchanged since before
    /// they started, the texts are exactly that generation's rule set: cache them.
    fn collect(&self, family: Family, text: &str) {
        let Some(before) = &self.generation else {
            return;
        };
        let mut collected = self.collected.lock().unwrap_or_else(|e| e.into_inner());
        collected.push((family, text.to_string()));
        if collected.len() == Family::ALL.len()
            && save_cache::Generation::current().as_ref() == Some(before)
        {
            save_cache::store(&self.root, before, &collected);
        }
    }
}

impl Netfilter for Prefetched {
    fn save(&self, family: Family, table: &str) -> Result<String, HostError> {
        if table.is_empty() {
            let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = cached.iter().position(|(f, _)| *f == family) {
                return Ok(cached.remove(i).1);
            }
        }
        let child = if table.is_empty() {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .iter()
                .position(|(f, _)| *f == family)
                .map(|i| pending.remove(i).1)
        } else {
            None
        };
        let Some(child) = child else {
            return self.inner.save(family, table);
        };
        let program = self.inner.tool(family, "save");
        let out = child
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the save thread panicked")))
            .map_err(|e| HostError::io(&program, e))?;
        let text = checked_output(&program, out)?;
        self.collect(family, &text);
        Ok(text)
    }

    fn save_counters(&self, family: Family, table: &str) -> Result<String, HostError> {
        self.inner.save_counters(family, table)
    }

    fn restore(&self, family: Family, payload: &str) -> Result<(), HostError> {
        self.inner.restore(family, payload)
    }
}

impl Drop for Prefetched {
    /// Reap saves nobody read (e.g. the file did not validate).
    fn drop(&mut self) {
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, thread) in pending.drain(..) {
            let _ = thread.join();
        }
    }
}
