//! Direct mode's container end: the bridge (`crate/src/scripts/bridge.py`, the acceptor end of
//! the stream protocol, [`crate::stream`]), the cell that starts it ([`render_bridge`]), and
//! the attach client that runs in the extension's own kernel and connects a Jupyter comm to
//! it ([`render_attach`]). `crate/tests/bridge.rs` runs the bridge against the Rust endpoint,
//! `crate/tests/jupyter_comm.rs` the attach client in real Jupyter servers.

use super::container::CONTAINER_STATE_DIR;
use super::{fill_here_document, python_script, script, SAY_FUNCTION};
use crate::settings::Settings;

/// The bridge program, Python 3.7 standard library only; it takes its settings as arguments
/// (`--listen`, `--sshd-port`), so it is written out as it is.
pub const BRIDGE_PY: &str = include_str!("../scripts/bridge.py");

const BRIDGE_SOURCE: &str = include_str!("../scripts/bridge.sh");
const BRIDGE_SUPERVISOR_SOURCE: &str = include_str!("../scripts/bridge-supervisor.sh");
const ATTACH_SOURCE: &str = include_str!("../scripts/attach.py");

/// The Unix socket the bridge listens on in the container (in the container's state
/// directory, mode 0700; the socket itself is made with umask 077).
pub const BRIDGE_SOCKET: &str = "/tmp/aistudio-ssh/bridge.sock";

/// The comm target the attach client registers in the kernel: a `comm_open` for it connects
/// the comm to the bridge.
pub const ATTACH_COMM_TARGET: &str = crate::carrier::COMM_TARGET;

/// The bridge cell: writes `bridge.py` into the container's state directory and starts it
/// (once, detached, supervised with capped backoff) listening on [`BRIDGE_SOCKET`] and
/// connecting streams to the user-mode sshd (port 22 when provisioning fell back to the
/// system sshd); `stop` stops it, `status` prints its status file (`state=up|starting|down|
/// stopped`, `since=`, `pid=`, `detail=`).
pub fn render_bridge(settings: &Settings) -> String {
    let supervisor = script(
        BRIDGE_SUPERVISOR_SOURCE,
        &[
            ("sshd_port", &settings.container_sshd_port.to_string()),
            ("state_dir", CONTAINER_STATE_DIR),
        ],
        &[],
    );
    let cell = script(
        BRIDGE_SOURCE,
        &[("state_dir", CONTAINER_STATE_DIR)],
        &[SAY_FUNCTION],
    );
    let cell = fill_here_document(&cell, "AISTUDIO_SSH_BRIDGE_SUPERVISOR", &supervisor);
    fill_here_document(&cell, "AISTUDIO_SSH_BRIDGE_PY", BRIDGE_PY)
}

/// The attach client: the code of an `execute_request` in the extension's own kernel
/// (ipykernel 4 to 7, Python 3.7+). It registers the comm target [`ATTACH_COMM_TARGET`]
/// (again on every run, closing the connection of the run before) and prints one line,
/// `aistudio-ssh: attach client ready on comm target aistudio_ssh_bridge (...)`.
///
/// A `comm_open` for the target connects to [`BRIDGE_SOCKET`] (a newer one closes the comm
/// before it); then each `comm_msg` from the front carries link bytes in its first buffer and
/// each `comm_msg` from the kernel carries bridge bytes in its one buffer (at most 256 KiB,
/// at most about 400 messages a second). The kernel closes the comm with data
/// `{"error": reason}` when the bridge cannot be reached, closes its connection, or a newer
/// comm or attach client replaces it; the front closing the comm closes the connection.
pub fn render_attach() -> String {
    python_script(
        ATTACH_SOURCE,
        &[
            ("bridge_socket", BRIDGE_SOCKET),
            ("comm_target", ATTACH_COMM_TARGET),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::{BRIDGE_SOCKET, CONTAINER_STATE_DIR};

    #[test]
    fn the_socket_is_in_the_state_directory() {
        assert_eq!(
            BRIDGE_SOCKET.strip_prefix(CONTAINER_STATE_DIR),
            Some("/bridge.sock")
        );
    }
}
