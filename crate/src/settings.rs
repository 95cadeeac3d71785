//! The user's settings for one project and their validation: one serde model for the
//! extension (which stores it) and the CLI (which reads it as JSON).

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::fields::{
    is_user_name, normalize_host, HOST_KEY_RULE, HOST_RULE, PORT_RULE, PROJECT_RULE,
    RELAY_USER_RULE, SSH_DIR_RULE, UNPRIVILEGED_PORT_RULE, USER_RULE,
};
pub use crate::fields::{FieldError, Rule, RULES};
use crate::keys::{import_public_key, PublicKeyInfo};

/// Outbound TCP 22 was observed blocked from AI Studio containers; 443 is open.
pub const DEFAULT_RELAY_PORT: i64 = 443;
/// The tunnel-only account the relay setup script creates.
pub const DEFAULT_RELAY_USER: &str = "aistudio-tunnel";
/// The relay port the container's sshd is published on (the seed method's port).
pub const DEFAULT_REMOTE_PORT: i64 = 7423;
/// The port of the container's user-mode sshd (above 1023: it runs without root).
pub const DEFAULT_CONTAINER_SSHD_PORT: i64 = 2222;
/// The notebook user in every AI Studio container.
pub const DEFAULT_CONTAINER_USER: &str = "aistudio";

/// Settings as the user wrote them (camelCase JSON), before validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct SettingsInput {
    /// The AI Studio project id.
    pub project: String,
    /// The relay server.
    pub relay: RelayInput,
    /// Port on the relay's loopback where the container's sshd appears.
    #[serde(default = "default_remote_port")]
    pub remote_port: i64,
    /// Port of the container's user-mode sshd on the container's loopback.
    #[serde(default = "default_container_sshd_port")]
    pub container_sshd_port: i64,
    /// The notebook user in the container.
    #[serde(default = "default_container_user")]
    pub container_user: String,
    /// Where the user keeps this project's files on their computer; default
    /// `~/.ssh/aistudio-<project>` (`~` works in OpenSSH on Windows too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_dir: Option<String>,
}

/// The relay part of [`SettingsInput`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct RelayInput {
    /// Host name, IPv4 or IPv6 address of the relay.
    pub host: String,
    /// The relay's sshd port.
    #[serde(default = "default_relay_port")]
    pub port: i64,
    /// The tunnel-only account on the relay.
    #[serde(default = "default_relay_user")]
    pub user: String,
    /// The relay's host key: a public key line or `ssh-keyscan` output (several lines allowed).
    pub host_key: String,
}

fn default_remote_port() -> i64 {
    DEFAULT_REMOTE_PORT
}
fn default_container_sshd_port() -> i64 {
    DEFAULT_CONTAINER_SSHD_PORT
}
fn default_relay_port() -> i64 {
    DEFAULT_RELAY_PORT
}
fn default_relay_user() -> String {
    DEFAULT_RELAY_USER.to_owned()
}
fn default_container_user() -> String {
    DEFAULT_CONTAINER_USER.to_owned()
}

/// Validated settings: every value here is known to be well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The AI Studio project id (letters, digits, `-`, `_`).
    pub project: String,
    /// Relay host: a host name, an IPv4 address or an IPv6 address (without brackets).
    pub relay_host: String,
    /// Relay sshd port.
    pub relay_port: u16,
    /// Tunnel-only account on the relay.
    pub relay_user: String,
    /// The relay's pinned host keys.
    pub relay_host_keys: Vec<PublicKeyInfo>,
    /// Relay loopback port for the container's sshd (above 1023).
    pub remote_port: u16,
    /// Container loopback port of the user-mode sshd (above 1023).
    pub container_sshd_port: u16,
    /// The notebook user in the container.
    pub container_user: String,
    /// The user's directory for this project's key, config and known_hosts.
    pub ssh_dir: String,
}

/// Why settings were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingsError {
    /// The JSON could not be read as settings at all.
    Json { detail: String },
    /// One or more fields are invalid; each names the field, the value and what is allowed.
    Invalid { fields: Vec<FieldError> },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json { detail } => {
                write!(f, "the settings are not valid JSON settings: {detail}")
            }
            Self::Invalid { fields } => {
                write!(f, "invalid settings:")?;
                for field in fields {
                    write!(f, "\n  {field}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SettingsError {}

impl SettingsError {
    /// A stable name for the variant, for the UI to switch on.
    pub fn variant(&self) -> &'static str {
        match self {
            Self::Json { .. } => "SettingsJson",
            Self::Invalid { .. } => "InvalidSettings",
        }
    }
}

impl SettingsInput {
    /// Reads settings JSON (camelCase; defaults for everything but `project`, `relay.host`
    /// and `relay.hostKey`).
    ///
    /// # Errors
    /// [`SettingsError::Json`] when the text is not JSON of this shape.
    pub fn from_json(text: &str) -> Result<Self, SettingsError> {
        serde_json::from_str(text).map_err(|error| SettingsError::Json {
            detail: error.to_string(),
        })
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] listing every invalid field.
    pub fn validate(&self) -> Result<Settings, SettingsError> {
        let mut errors = Vec::new();
        let mut reject = |field: &'static str, value: &str, rule: Rule| {
            errors.push(FieldError::new(field, value, rule))
        };

        let project = self.project.trim();
        if !crate::jupyter::is_project_id(project) || project.len() > 64 {
            reject("project", &self.project, PROJECT_RULE);
        }
        let relay_host = normalize_host(&self.relay.host);
        if relay_host.is_none() {
            reject("relay.host", &self.relay.host, HOST_RULE);
        }
        let port = |value: i64, minimum: i64| {
            u16::try_from(value)
                .ok()
                .filter(|p| i64::from(*p) >= minimum)
        };
        let relay_port = port(self.relay.port, 1);
        if relay_port.is_none() {
            reject("relay.port", &self.relay.port.to_string(), PORT_RULE);
        }
        if !is_user_name(&self.relay.user) || self.relay.user == "root" {
            reject("relay.user", &self.relay.user, RELAY_USER_RULE);
        }
        let relay_host_keys = parse_host_keys(&self.relay.host_key);
        if relay_host_keys.is_none() {
            reject("relay.hostKey", &self.relay.host_key, HOST_KEY_RULE);
        }
        let remote_port = port(self.remote_port, 1024);
        if remote_port.is_none() {
            reject(
                "remotePort",
                &self.remote_port.to_string(),
                UNPRIVILEGED_PORT_RULE,
            );
        }
        let container_sshd_port = port(self.container_sshd_port, 1024);
        if container_sshd_port.is_none() {
            reject(
                "containerSshdPort",
                &self.container_sshd_port.to_string(),
                UNPRIVILEGED_PORT_RULE,
            );
        }
        if !is_user_name(&self.container_user) {
            reject("containerUser", &self.container_user, USER_RULE);
        }
        let ssh_dir = match &self.ssh_dir {
            Some(dir) if is_ssh_dir(dir) => dir.trim_end_matches(['/', '\\']).to_owned(),
            Some(dir) => {
                reject("sshDir", dir, SSH_DIR_RULE);
                String::new()
            }
            None => format!("~/.ssh/aistudio-{project}"),
        };

        match (
            relay_host,
            relay_port,
            relay_host_keys,
            remote_port,
            container_sshd_port,
        ) {
            (
                Some(relay_host),
                Some(relay_port),
                Some(relay_host_keys),
                Some(remote_port),
                Some(container_sshd_port),
            ) if errors.is_empty() => Ok(Settings {
                project: project.to_owned(),
                relay_host,
                relay_port,
                relay_user: self.relay.user.clone(),
                relay_host_keys,
                remote_port,
                container_sshd_port,
                container_user: self.container_user.clone(),
                ssh_dir,
            }),
            _ => Err(SettingsError::Invalid { fields: errors }),
        }
    }
}

fn is_ssh_dir(dir: &str) -> bool {
    !dir.trim().is_empty()
        && dir.len() <= 200
        && dir.chars().all(|c| {
            c.is_alphanumeric() || matches!(c, ' ' | '~' | '/' | '\\' | ':' | '.' | '_' | '-')
        })
}

/// Every key in a host key paste; comment and empty lines are skipped, and a leading
/// host field (`ssh-keyscan` output, known_hosts lines) is dropped.
fn parse_host_keys(text: &str) -> Option<Vec<PublicKeyInfo>> {
    let keys: Option<Vec<PublicKeyInfo>> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            import_public_key(line).ok().or_else(|| {
                let (_host, key) = line.split_once([' ', '\t'])?;
                import_public_key(key).ok()
            })
        })
        .collect();
    keys.filter(|keys| !keys.is_empty())
}
