//! The container bridge of direct mode: `crate/src/scripts/bridge.py`, the acceptor end of
//! the stream protocol ([`crate::stream`]), embedded so the core can write it into the
//! container. Not yet part of provisioning; `crate/tests/bridge.rs` runs it against the Rust
//! endpoint.

/// The bridge program, Python 3.7 standard library only; it takes its settings as arguments
/// (`--sshd-port`), so it is written out as it is.
pub const BRIDGE_PY: &str = include_str!("../scripts/bridge.py");
