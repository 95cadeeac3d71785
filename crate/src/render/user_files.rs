//! The user's files for a project: the ssh config (relay as jump host, container behind it),
//! the project's known_hosts, and the host aliases they use.

use rand_core::CryptoRngCore;
use serde::Serialize;

use super::{known_hosts_lines, RenderKeys};
use crate::keys::{KeyError, KeyPair};
use crate::project_keys::StoredKey;
use crate::settings::Settings;

/// A file the user downloads: its name and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct UserFile {
    pub name: String,
    pub text: String,
}

impl UserFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// The name of the ssh config the bundle holds (the user includes it from `~/.ssh/config`).
pub const SSH_CONFIG_FILE: &str = "ssh_config";
/// The name of the relay setup script in the bundle.
pub const RELAY_SETUP_FILE: &str = "relay-setup.sh";
/// The name of the companion notebook when the container refused it and the user downloads it.
pub const COMPANION_NOTEBOOK_FILE: &str = "aistudio-ssh.ipynb";

/// The host alias the user types: `ssh aistudio-<project>`.
pub fn host_alias(settings: &Settings) -> String {
    host_alias_of(&settings.project)
}

/// The `Host` alias a project goes by in the user's ssh config: `aistudio-<project>`.
pub fn host_alias_of(project: &str) -> String {
    format!("aistudio-{project}")
}

fn relay_alias(settings: &Settings) -> String {
    format!("aistudio-{}-relay", settings.project)
}

/// A path for ssh_config: quoted when it holds a blank (validated paths hold no quotes).
fn config_path(settings: &Settings, file: &str) -> String {
    let separator = if settings.ssh_dir.contains('\\') && !settings.ssh_dir.contains('/') {
        '\\'
    } else {
        '/'
    };
    let path = format!("{}{separator}{file}", settings.ssh_dir);
    if path.contains(' ') {
        format!("\"{path}\"")
    } else {
        path
    }
}

/// The name of the known_hosts file in the user's project directory.
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";
/// The name of the client private key file (the `.pub` beside it).
pub const CLIENT_KEY_FILE: &str = "id_aistudio";

/// The user's ssh config for the project, pinned through `HostKeyAlias` to the project's own
/// known_hosts; no host is lent the user's agent or X display (a container is shared with
/// the platform, and `Host *` lines later in the user's config cannot turn them on). Plain
/// OpenSSH syntax that works on Linux, macOS and Windows 10+.
///
/// Through the relay: the relay as a jump host (tunnel-only account) and the container
/// behind it. Direct: `ProxyCommand aistudio-ssh proxy %n`, the helper that carries the
/// bytes through the notebook tab (`%n` is the alias as typed, which names the project).
pub fn render_ssh_config(settings: &Settings) -> String {
    let identity = config_path(settings, CLIENT_KEY_FILE);
    let known_hosts = config_path(settings, KNOWN_HOSTS_FILE);
    let container = host_alias(settings);
    let common = format!(
        "    IdentityFile {identity}\n    IdentitiesOnly yes\n    UserKnownHostsFile {known_hosts}\n    \
         StrictHostKeyChecking yes\n    UpdateHostKeys no\n    ForwardAgent no\n    ForwardX11 no\n    \
         ServerAliveInterval 30\n    ServerAliveCountMax 3\n"
    );
    let project = &settings.project;
    let container_user = &settings.container_user;
    match &settings.relay {
        Some(relay_settings) => {
            let relay = relay_alias(settings);
            format!(
                "# AI Studio SSH: project {project}. Connect with: ssh {container}\n\
                 Host {relay}\n    HostName {relay_host}\n    Port {relay_port}\n    User {relay_user}\n    \
                 HostKeyAlias {relay}\n{common}\n\
                 Host {container}\n    HostName 127.0.0.1\n    Port {remote_port}\n    User {container_user}\n    \
                 ProxyJump {relay}\n    HostKeyAlias {container}\n{common}",
                relay_host = relay_settings.host,
                relay_port = relay_settings.port,
                relay_user = relay_settings.user,
                remote_port = relay_settings.remote_port,
            )
        }
        None => format!(
            "# AI Studio SSH: project {project}, direct (no server): keep the notebook tab open.\n\
             # Needs the helper: put aistudio-ssh on your PATH and run `aistudio-ssh install` once.\n\
             # Connect with: ssh {container}\n\
             Host {container}\n    HostName 127.0.0.1\n    User {container_user}\n    \
             ProxyCommand aistudio-ssh proxy %n\n    HostKeyAlias {container}\n{common}"
        ),
    }
}

/// The project's known_hosts: the container's stable host key (and the relay's keys on the
/// relay route), under the aliases of [`render_ssh_config`].
pub fn render_known_hosts(settings: &Settings, keys: &RenderKeys) -> String {
    let container = known_hosts_lines(
        &host_alias(settings),
        std::slice::from_ref(&keys.container_host.1),
    );
    match &settings.relay {
        Some(relay) => format!(
            "{}\n{container}\n",
            known_hosts_lines(&relay_alias(settings), &relay.host_keys)
        ),
        None => format!("{container}\n"),
    }
}

/// The client key as the files users expect: `id_aistudio` (protected when a non-empty
/// `passphrase` is given) before `id_aistudio.pub`; a pasted public key has no private file.
///
/// # Errors
/// [`KeyError::Crypto`] when the stored private key does not read back or cannot be written.
pub fn client_key_files(
    client: &StoredKey,
    passphrase: Option<&str>,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<UserFile>, KeyError> {
    let mut files = Vec::new();
    if let Some(private) = client.private_key.as_deref().filter(|key| !key.is_empty()) {
        let text = match passphrase.filter(|p| !p.is_empty()) {
            Some(passphrase) => KeyPair::import_openssh(private, None)
                .map_err(|error| KeyError::Crypto {
                    detail: format!("the stored client key does not read back: {error}"),
                })?
                .to_openssh_encrypted(passphrase, rng)?
                .to_string(),
            None => private.to_owned(),
        };
        files.push(UserFile::new(CLIENT_KEY_FILE, text));
    }
    files.push(UserFile::new(
        format!("{CLIENT_KEY_FILE}.pub"),
        format!("{}\n", client.public.line),
    ));
    Ok(files)
}
