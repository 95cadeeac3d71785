//! The user's settings for one project and their validation: one serde model for the
//! extension (which stores it) and the CLI (which reads it as JSON).

use core::fmt;

use serde::{Deserialize, Serialize};
use strum::IntoStaticStr;

use crate::fields::{
    is_project_id, is_user_name, normalize_host, HOST_KEY_RULE, HOST_RULE, PORT_RULE, PROJECT_RULE,
    RELAY_NEEDED_RULE, RELAY_USER_RULE, SSH_DIR_RULE, UNPRIVILEGED_PORT_RULE, USER_RULE,
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

/// How `ssh` reaches the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub enum Route {
    /// Through the notebook tab: the helper on the user's computer, the extension, the
    /// page's Jupyter session and a bridge in the container. No server needed; the tab must
    /// stay open.
    Direct,
    /// Through the user's relay server and a reverse tunnel from the container: works with
    /// the tab closed.
    Relay,
}

/// Settings as the user wrote them (camelCase JSON), before validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct SettingsInput {
    /// The AI Studio project id.
    pub project: String,
    /// How ssh reaches the container; absent: through the relay when one is given, else
    /// direct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// The relay server (needed for [`Route::Relay`] only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayInput>,
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
    /// The relay, for [`Route::Relay`]; `None` is [`Route::Direct`].
    pub relay: Option<RelaySettings>,
    /// Container loopback port of the user-mode sshd (above 1023).
    pub container_sshd_port: u16,
    /// The notebook user in the container.
    pub container_user: String,
    /// The user's directory for this project's key, config and known_hosts.
    pub ssh_dir: String,
}

/// A validated relay and this project's port on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// A host name, an IPv4 address or an IPv6 address (without brackets).
    pub host: String,
    /// The relay's sshd port.
    pub port: u16,
    /// The tunnel-only account on the relay.
    pub user: String,
    /// The relay's pinned host keys.
    pub host_keys: Vec<PublicKeyInfo>,
    /// The relay loopback port for the container's sshd (above 1023).
    pub remote_port: u16,
}

impl Settings {
    /// How ssh reaches the container.
    pub fn route(&self) -> Route {
        if self.relay.is_some() {
            Route::Relay
        } else {
            Route::Direct
        }
    }
}

/// Why settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, IntoStaticStr)]
#[non_exhaustive]
pub enum SettingsError {
    /// The JSON could not be read as settings at all.
    #[strum(serialize = "SettingsJson")]
    Json { detail: String },
    /// One or more fields are invalid; each names the field, the value and what is allowed.
    #[strum(serialize = "InvalidSettings")]
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

    /// Settings from the extension's two stored parts: the relay all projects share (if the
    /// user set one) and the project's own part, where a blank field means "the default".
    pub fn from_parts(project: &str, relay: Option<RelayInput>, part: ProjectInput) -> Self {
        let (container_user, ssh_dir) = part.effective();
        Self {
            project: project.to_owned(),
            route: part.route,
            relay,
            remote_port: part.remote_port,
            container_sshd_port: part.container_sshd_port,
            container_user,
            ssh_dir,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] listing every invalid field.
    pub fn validate(&self) -> Result<Settings, SettingsError> {
        let mut errors = Vec::new();
        let project = check_project_id(&self.project, &mut errors);
        let relay = match (self.effective_route(), &self.relay) {
            (Route::Direct, _) => None,
            (Route::Relay, Some(relay)) => Some(relay.validated(&mut errors)),
            (Route::Relay, None) => {
                errors.push(FieldError::new("relay", "", RELAY_NEEDED_RULE));
                Some(None)
            }
        };
        let part = ProjectPart::validated(
            project,
            self.remote_port,
            self.container_sshd_port,
            &self.container_user,
            self.ssh_dir.as_deref(),
            &mut errors,
        );
        match (relay, part) {
            (relay @ (None | Some(Some(_))), Some(part)) if errors.is_empty() => Ok(Settings {
                project: project.to_owned(),
                relay: relay.flatten().map(|relay| RelaySettings {
                    host: relay.host,
                    port: relay.port,
                    user: relay.user,
                    host_keys: relay.host_keys,
                    remote_port: part.remote_port,
                }),
                container_sshd_port: part.container_sshd_port,
                container_user: self.container_user.clone(),
                ssh_dir: part.ssh_dir,
            }),
            _ => Err(SettingsError::Invalid { fields: errors }),
        }
    }

    /// The route asked for, or the one the settings imply: the relay when one is given.
    pub fn effective_route(&self) -> Route {
        self.route.unwrap_or(if self.relay.is_some() {
            Route::Relay
        } else {
            Route::Direct
        })
    }
}

/// A project's own settings as the extension stores them (camelCase); the relay is shared
/// by every project and stored apart. Blank text fields mean "the default".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct ProjectInput {
    /// How ssh reaches this project's container; absent: through the relay when the user set
    /// one, else direct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// Port on the relay's loopback where the container's sshd appears.
    #[serde(default = "default_remote_port")]
    pub remote_port: i64,
    /// Port of the container's user-mode sshd on the container's loopback.
    #[serde(default = "default_container_sshd_port")]
    pub container_sshd_port: i64,
    /// The notebook user in the container; blank or absent: `aistudio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_user: Option<String>,
    /// Where the user keeps this project's files; blank or absent: `~/.ssh/aistudio-<project>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_dir: Option<String>,
}

impl ProjectInput {
    /// Every invalid field of project `project`'s own part (the relay is checked apart, by
    /// [`RelayInput::check`]); empty when it is valid.
    pub fn check(&self, project: &str) -> Vec<FieldError> {
        let (container_user, ssh_dir) = self.effective();
        let mut errors = Vec::new();
        let project = check_project_id(project, &mut errors);
        ProjectPart::validated(
            project,
            self.remote_port,
            self.container_sshd_port,
            &container_user,
            ssh_dir.as_deref(),
            &mut errors,
        );
        errors
    }

    /// The container user and the user's folder this part means: a blank or absent field
    /// takes its default (no folder: the one named after the project).
    fn effective(&self) -> (String, Option<String>) {
        let given = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
        (
            given(&self.container_user).unwrap_or_else(default_container_user),
            given(&self.ssh_dir),
        )
    }
}

/// The lowest relay port from [`DEFAULT_REMOTE_PORT`] up that no project in `taken` uses:
/// each project of one relay needs a port of its own.
pub fn next_remote_port(taken: &[i64]) -> i64 {
    (DEFAULT_REMOTE_PORT..)
        .find(|port| !taken.contains(port))
        .unwrap_or(DEFAULT_REMOTE_PORT)
}

/// The relay's fields once valid.
struct Relay {
    host: String,
    port: u16,
    user: String,
    host_keys: Vec<PublicKeyInfo>,
}

impl RelayInput {
    /// Every invalid relay field (`relay.*`); empty when the relay is valid. The options
    /// page checks the relay before any project exists.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.validated(&mut errors);
        errors
    }

    fn validated(&self, errors: &mut Vec<FieldError>) -> Option<Relay> {
        let mut reject = |field: &'static str, value: &str, rule: Rule| {
            errors.push(FieldError::new(field, value, rule))
        };
        let host = normalize_host(&self.host);
        if host.is_none() {
            reject("relay.host", &self.host, HOST_RULE);
        }
        let port = port_at_least(self.port, 1);
        if port.is_none() {
            reject("relay.port", &self.port.to_string(), PORT_RULE);
        }
        if !is_user_name(&self.user) || self.user == "root" {
            reject("relay.user", &self.user, RELAY_USER_RULE);
        }
        let host_keys = parse_host_keys(&self.host_key);
        if host_keys.is_none() {
            reject("relay.hostKey", &self.host_key, HOST_KEY_RULE);
        }
        Some(Relay {
            host: host?,
            port: port?,
            user: self.user.clone(),
            host_keys: host_keys?,
        })
    }
}

/// The project's own fields once valid.
struct ProjectPart {
    remote_port: u16,
    container_sshd_port: u16,
    ssh_dir: String,
}

impl ProjectPart {
    fn validated(
        project: &str,
        remote_port: i64,
        container_sshd_port: i64,
        container_user: &str,
        ssh_dir: Option<&str>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let mut reject = |field: &'static str, value: &str, rule: Rule| {
            errors.push(FieldError::new(field, value, rule))
        };
        let valid_remote_port = port_at_least(remote_port, 1024);
        if valid_remote_port.is_none() {
            reject(
                "remotePort",
                &remote_port.to_string(),
                UNPRIVILEGED_PORT_RULE,
            );
        }
        let valid_sshd_port = port_at_least(container_sshd_port, 1024);
        if valid_sshd_port.is_none() {
            reject(
                "containerSshdPort",
                &container_sshd_port.to_string(),
                UNPRIVILEGED_PORT_RULE,
            );
        }
        if !is_user_name(container_user) {
            reject("containerUser", container_user, USER_RULE);
        }
        let ssh_dir = match ssh_dir {
            Some(dir) if is_ssh_dir(dir) => Some(dir.trim_end_matches(['/', '\\']).to_owned()),
            Some(dir) => {
                reject("sshDir", dir, SSH_DIR_RULE);
                None
            }
            None => Some(format!("~/.ssh/aistudio-{project}")),
        };
        Some(Self {
            remote_port: valid_remote_port?,
            container_sshd_port: valid_sshd_port?,
            ssh_dir: ssh_dir?,
        })
    }
}

/// The trimmed project id; an invalid one is recorded in `errors`.
fn check_project_id<'a>(project: &'a str, errors: &mut Vec<FieldError>) -> &'a str {
    let trimmed = project.trim();
    if !is_project_id(trimmed) {
        errors.push(FieldError::new("project", project, PROJECT_RULE));
    }
    trimmed
}

fn port_at_least(value: i64, minimum: i64) -> Option<u16> {
    u16::try_from(value)
        .ok()
        .filter(|port| i64::from(*port) >= minimum)
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
