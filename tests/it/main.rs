//! The integration tests: one binary, one module per area.
//!
//! - `cli`, `render_semantics`, `engine` (against the in-memory fake host) run as any user;
//! - the others build network namespaces or boot systemd in namespaces and need root: they are
//!   written with [`root_test!`], which skips them cleanly (saying so) without it. As root, as
//!   in CI, they really run.

/// A test that needs root (network namespaces): without it, it prints `SKIPPED <name>` and
/// passes. `root_test!(name, || { ... })`.
macro_rules! root_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            if pfstate::lab::skip_unless_root(stringify!($name)) {
                return;
            }
            let body: fn() = $body;
            body();
        }
    };
}

/// A test that boots systemd in namespaces (tests/support/sandbox.sh): without root, systemd
/// or the tools the sandbox needs, it prints `SKIPPED <name>: <why>` and passes.
macro_rules! sandbox_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            if let Some(why) = crate::support::skip_reason() {
                eprintln!("SKIPPED {}: {why}", stringify!($name));
                return;
            }
            let body: fn() = $body;
            body();
        }
    };
}

mod common;
mod payload_check;
mod support;

mod ansible_fleet;
mod apply_netns;
mod atomic;
mod atomic_netns;
mod backends;
mod boot_persistence;
mod canonical_values;
mod cli;
mod coexistence;
mod confirm_fake;
mod confirm_revert;
mod conntrack_cut;
mod engine;
mod foreign_shapes;
mod golden_render;
mod guard_order;
mod hostile_host;
mod hostile_input;
mod json_contract;
mod kernel_canonical;
mod layout;
mod local_guard;
mod offline_enable;
mod package;
mod pure_render;
mod render_semantics;
mod systemd_sandbox;
mod traffic;
mod tree_kernel;
mod try_cmd;
mod watch_fight;
mod watch_sandbox;
