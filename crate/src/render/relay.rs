//! The relay's setup script, and the `authorized_keys` options that confine the project's
//! keys there to one forwarded port.

use super::{
    authorized_keys_line, block_markers, script, RenderKeys, REPLACE_BLOCK_FUNCTION, SAY_FUNCTION,
};
use crate::settings::{RelaySettings, Settings};

const RELAY_SETUP_SOURCE: &str = include_str!("../scripts/relay-setup.sh");

/// A forwarding target no request can use. OpenSSH has no per-key "none" for `permitopen`
/// and `permitlisten`, and a direction without a per-key list is open; a `.invalid` name
/// (RFC 6761) never resolves, so a list holding only it allows nothing.
const FORWARD_NOWHERE: &str = "nowhere.invalid:9";

/// `authorized_keys` options of the container's relay key: it may only listen on the
/// project's port (`-R`), open nothing (`-W`/`-L`/`-D`), run nothing, get no terminal.
fn relay_key_options(remote_port: u16) -> String {
    format!(
        "restrict,port-forwarding,command=\"/bin/false\",permitlisten=\"127.0.0.1:{remote_port}\",permitopen=\"{FORWARD_NOWHERE}\""
    )
}

/// `authorized_keys` options of the user's client key on the relay: it may only reach the
/// project's port (ProxyJump's `-W`), listen on nothing (`-R`), run nothing.
fn client_key_options(remote_port: u16) -> String {
    format!(
        "restrict,port-forwarding,command=\"/bin/false\",permitopen=\"127.0.0.1:{remote_port}\",permitlisten=\"{FORWARD_NOWHERE}\""
    )
}

/// The GECOS comment of the tunnel account the relay script creates; with the `nologin`
/// shell and the `*` password (which only root can set) it also recognises accounts that
/// earlier versions of the script created.
const TUNNEL_ACCOUNT_COMMENT: &str = "AI Studio SSH tunnels";

/// The relay setup script, run once as root on the relay (and again for each project;
/// harmless to repeat). Paths can be redirected for tests and unusual layouts with
/// `AISTUDIO_SSH_SSHD_CONFIG`, `AISTUDIO_SSH_SSHD_DROPIN_DIR`, `AISTUDIO_SSH_RELAY_KEYS_DIR`
/// and `AISTUDIO_SSH_SSHD_RELOAD`.
pub fn render_relay_setup(settings: &Settings, relay: &RelaySettings, keys: &RenderKeys) -> String {
    let (begin, end) = block_markers(&format!("aistudio-ssh project {}", settings.project));
    let key_lines = format!(
        "{}\n{}",
        authorized_keys_line(
            &relay_key_options(relay.remote_port),
            &keys.container_relay.1
        ),
        authorized_keys_line(&client_key_options(relay.remote_port), &keys.client),
    );
    script(
        RELAY_SETUP_SOURCE,
        &[
            ("project", &settings.project),
            ("tunnel_user", &relay.user),
            ("relay_port", &relay.port.to_string()),
            ("remote_port", &relay.remote_port.to_string()),
            ("key_lines", &key_lines),
            ("block_begin", &begin),
            ("block_end", &end),
            ("account_comment", TUNNEL_ACCOUNT_COMMENT),
        ],
        &[SAY_FUNCTION, REPLACE_BLOCK_FUNCTION],
    )
}
