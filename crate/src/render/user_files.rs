//! The user's files for a project: the ssh config (relay as jump host, container behind it),
//! the project's known_hosts, and the host aliases they use.

use super::{known_hosts_lines, RenderKeys};
use crate::settings::Settings;

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

/// The user's ssh config for the project: the relay as a jump host (tunnel-only account)
/// and the container behind it, both pinned through `HostKeyAlias` to the project's own
/// known_hosts; neither is lent the user's agent or X display (a container is shared
/// with the platform, and `Host *` lines later in the user's config cannot turn them on). Plain OpenSSH syntax that works on Linux, macOS and Windows 10+.
pub fn render_ssh_config(settings: &Settings) -> String {
    let identity = config_path(settings, CLIENT_KEY_FILE);
    let known_hosts = config_path(settings, KNOWN_HOSTS_FILE);
    let relay = relay_alias(settings);
    let container = host_alias(settings);
    let common = format!(
        "    IdentityFile {identity}\n    IdentitiesOnly yes\n    UserKnownHostsFile {known_hosts}\n    \
         StrictHostKeyChecking yes\n    UpdateHostKeys no\n    ForwardAgent no\n    ForwardX11 no\n    \
         ServerAliveInterval 30\n    ServerAliveCountMax 3\n"
    );
    format!(
        "# AI Studio SSH: project {project}. Connect with: ssh {container}\n\
         Host {relay}\n    HostName {relay_host}\n    Port {relay_port}\n    User {relay_user}\n    \
         HostKeyAlias {relay}\n{common}\n\
         Host {container}\n    HostName 127.0.0.1\n    Port {remote_port}\n    User {container_user}\n    \
         ProxyJump {relay}\n    HostKeyAlias {container}\n{common}",
        project = settings.project,
        relay_host = settings.relay_host,
        relay_port = settings.relay_port,
        relay_user = settings.relay_user,
        remote_port = settings.remote_port,
        container_user = settings.container_user,
    )
}

/// The project's known_hosts: the relay's keys and the container's stable host key, under
/// the aliases of [`render_ssh_config`].
pub fn render_known_hosts(settings: &Settings, keys: &RenderKeys) -> String {
    format!(
        "{}\n{}\n",
        known_hosts_lines(&relay_alias(settings), &settings.relay_host_keys),
        known_hosts_lines(
            &host_alias(settings),
            std::slice::from_ref(&keys.container_host.1)
        )
    )
}
