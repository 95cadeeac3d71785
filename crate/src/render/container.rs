//! The container's scripts: provisioning (keys, sshd, authorized_keys, environment) and the
//! tunnel with its supervisor. The probe is in [`super::probe`].

use super::{
    authorized_keys_line, block_markers, fill_here_document, known_hosts_lines, script, RenderKeys,
    REPLACE_BLOCK_FUNCTION, SAY_FUNCTION,
};
use crate::cells;
use crate::settings::{RelaySettings, Settings};

const PROVISION_SOURCE: &str = include_str!("../scripts/provision.sh");
const TUNNEL_SOURCE: &str = include_str!("../scripts/tunnel.sh");
const TUNNEL_SUPERVISOR_SOURCE: &str = include_str!("../scripts/tunnel-supervisor.sh");

/// Where the container keeps what belongs to one container start (`/tmp` is fresh after one).
pub(super) const CONTAINER_STATE_DIR: &str = "/tmp/aistudio-ssh";
/// The relay's name in the container's own known_hosts file.
const CONTAINER_RELAY_ALIAS: &str = "aistudio-relay";

/// Whether a provisioning script carries the container's private keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateKeys {
    /// In the script: what the extension types into its own terminal, and `provision.sh`.
    Included,
    /// Left out: the companion notebook, which lives in `~/work`, uses the keys a
    /// provisioning with [`PrivateKeys::Included`] put in the container since it started.
    InContainer,
}

/// The provisioning cell: run by the notebook user in the container on every start.
/// With [`PrivateKeys::InContainer`] it carries no private key and uses those already in
/// the container's key directory (or says how to get them there).
pub fn render_provision(settings: &Settings, keys: &RenderKeys, private: PrivateKeys) -> String {
    let client_line = authorized_keys_line("from=\"127.0.0.1,::1\"", &keys.client);
    let relay_known_hosts = settings.relay.as_ref().map_or(String::new(), |relay| {
        known_hosts_lines(CONTAINER_RELAY_ALIAS, &relay.host_keys)
    });
    // The direct route gives the container no relay key at all.
    let relay_public = if settings.relay.is_some() {
        keys.container_relay.1.line.as_str()
    } else {
        ""
    };
    let (auth_begin, auth_end) =
        block_markers(&format!("aistudio-ssh project {}", settings.project));
    let (rc_begin, rc_end) = block_markers("aistudio-ssh environment");
    let (relay_private, host_private) = match private {
        PrivateKeys::Included if relay_public.is_empty() => ("", keys.container_host.0.as_str()),
        PrivateKeys::Included => (
            keys.container_relay.0.as_str(),
            keys.container_host.0.as_str(),
        ),
        PrivateKeys::InContainer => ("", ""),
    };
    script(
        PROVISION_SOURCE,
        &[
            ("project", &settings.project),
            ("sshd_port", &settings.container_sshd_port.to_string()),
            ("client_line", &client_line),
            ("relay_private", relay_private),
            ("relay_public", relay_public),
            ("host_private", host_private),
            ("host_public", &keys.container_host.1.line),
            ("relay_known_hosts", &relay_known_hosts),
            ("auth_begin", &auth_begin),
            ("auth_end", &auth_end),
            ("rc_begin", &rc_begin),
            ("rc_end", &rc_end),
            ("state_dir", CONTAINER_STATE_DIR),
            ("notebook", cells::COMPANION_NOTEBOOK_PATH),
            (
                "notebook_checkpoint",
                &cells::checkpoint_path(cells::COMPANION_NOTEBOOK_PATH),
            ),
        ],
        &[SAY_FUNCTION, REPLACE_BLOCK_FUNCTION],
    )
}

/// The tunnel cell: starts (once) a detached supervisor that keeps `ssh -R` to `relay` up;
/// `stop` stops it, `status` prints its status file.
pub fn render_tunnel(settings: &Settings, relay: &RelaySettings) -> String {
    let supervisor = script(
        TUNNEL_SUPERVISOR_SOURCE,
        &[
            ("project", &settings.project),
            ("relay_host", &relay.host),
            ("relay_port", &relay.port.to_string()),
            ("relay_user", &relay.user),
            ("relay_alias", CONTAINER_RELAY_ALIAS),
            ("remote_port", &relay.remote_port.to_string()),
            ("sshd_port", &settings.container_sshd_port.to_string()),
            ("state_dir", CONTAINER_STATE_DIR),
        ],
        &[],
    );
    let tunnel = script(
        TUNNEL_SOURCE,
        &[("state_dir", CONTAINER_STATE_DIR)],
        &[SAY_FUNCTION],
    );
    fill_here_document(&tunnel, "AISTUDIO_SSH_SUPERVISOR", &supervisor)
}
