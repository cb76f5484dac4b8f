//! A fake host with both iptables backends: the one in use, and another that may still hold a
//! copy of pfstate's chains (see `plan::backends`).

use crate::error::HostError;
use crate::host::Netfilter;
use crate::host::fake::{FakeHost, FakeNetfilter};
use crate::model::Family;

/// Another backend for `host`: its writes are steps of the host's fault log.
pub fn other_backend(host: &FakeHost) -> FakeNetfilter {
    FakeNetfilter::new(host.faults.clone())
}

/// The backend in use (`main`), with `other` as [`Netfilter::other_backend`].
pub struct WithOther<'a> {
    pub main: &'a FakeNetfilter,
    pub other: &'a FakeNetfilter,
}

impl Netfilter for WithOther<'_> {
    fn save(&self, family: Family, table: &str) -> Result<String, HostError> {
        self.main.save(family, table)
    }
    fn save_counters(&self, family: Family, table: &str) -> Result<String, HostError> {
        self.main.save_counters(family, table)
    }
    fn restore(&self, family: Family, payload: &str) -> Result<(), HostError> {
        self.main.restore(family, payload)
    }
    fn other_backend(&self) -> Option<&dyn Netfilter> {
        Some(self.other)
    }
    fn backend_name(&self) -> String {
        "fake-main".into()
    }
}
