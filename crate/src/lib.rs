//! AI Studio SSH core: everything that decides or formats, host-testable; `wasm` is its browser face.

pub mod carrier;
pub mod cells;
pub mod connection;
pub mod error_variant;
pub mod fields;
pub mod gateway;
pub mod kernel;
pub mod keys;
pub mod native_host;
pub mod page;
pub mod project_keys;
pub mod render;
pub mod self_hosted;
pub mod settings;
pub mod shell;
pub mod stream;
pub mod terminal;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

/// The product version, shared by the crate, the extension manifests and the zips.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
