//! The user's settings for one project and their validation: one serde model for the
//! extension (which stores it) and the CLI (which reads it as JSON).

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

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

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's JSON path, such as `relay.port`.
    pub field: &'static str,
    /// The rejected value, shortened for display.
    pub value: String,
    /// What the field accepts, in English.
    pub allowed: String,
    /// Which rule that is ([`Rule::id`]): the UI shows its translation where it has one.
    pub rule: &'static str,
}

/// What a field accepts: a stable id (for translations) and the English text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub text: &'static str,
}

impl FieldError {
    /// `field` refused with `value` (shortened to 80 characters) under `rule`.
    pub fn new(field: &'static str, value: &str, rule: Rule) -> Self {
        Self {
            field,
            value: value.chars().take(80).collect(),
            allowed: rule.text.to_owned(),
            rule: rule.id,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?} is not allowed; {}",
            self.field, self.value, self.allowed
        )
    }
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

/// Every rule a field can be refused under (the UI has a translation for each).
pub const RULES: [Rule; 10] = [
    PORT_RULE,
    UNPRIVILEGED_PORT_RULE,
    HOST_RULE,
    USER_RULE,
    RELAY_USER_RULE,
    PROJECT_RULE,
    HOST_KEY_RULE,
    SSH_DIR_RULE,
    crate::jupyter::SELF_HOSTED_URL_RULE,
    crate::jupyter::SELF_HOSTED_NAME_RULE,
];

const PORT_RULE: Rule = Rule {
    id: "port",
    text: "a port is a whole number from 1 to 65535",
};
const UNPRIVILEGED_PORT_RULE: Rule = Rule {
    id: "unprivilegedPort",
    text: "a whole number from 1024 to 65535 (ports below 1024 need root, which the container and the tunnel user lack)",
};
const HOST_RULE: Rule = Rule {
    id: "host",
    text: "a host name (letters, digits and '-' in dot-separated labels, \
     internationalized names in xn-- form), an IPv4 address such as 203.0.113.7, or an IPv6 address such as 2001:db8::7",
};
pub(crate) const USER_RULE: Rule = Rule {
    id: "user",
    text: "a user name of 1 to 32 characters: lowercase letters, digits, '_' and '-', not starting with a digit or '-'",
};
const RELAY_USER_RULE: Rule = Rule {
    id: "relayUser",
    text: "a user name of 1 to 32 characters (lowercase letters, digits, '_' and '-', not starting with a digit or '-') \
     other than root: the relay setup script makes this tunnel-only account itself and refuses root and existing accounts",
};
const PROJECT_RULE: Rule = Rule {
    id: "project",
    text: "the project id from the notebook URL: letters, digits, '-' and '_', at most 64",
};
const HOST_KEY_RULE: Rule = Rule {
    id: "hostKey",
    text: "the relay's host key as printed by the relay setup script or `ssh-keyscan HOST`: \
     lines like 'ssh-ed25519 AAAA...' (a leading host name field is allowed)",
};
const SSH_DIR_RULE: Rule = Rule {
    id: "sshDir",
    text: "a path such as ~/.ssh/aistudio-7892508 or C:\\Users\\me\\.ssh\\aistudio: \
     letters, digits, spaces and ~ / \\ : . _ - only",
};

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

/// The host as ssh takes it: a host name (lowercased), an IPv4 address, or an IPv6
/// address without brackets. `None` when it is none of these.
pub(crate) fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim();
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if unbracketed.parse::<Ipv6Addr>().is_ok() {
        return Some(unbracketed.to_ascii_lowercase());
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Some(host.to_owned());
    }
    is_host_name(host).then(|| host.to_ascii_lowercase())
}

/// RFC 1123 host names; a name whose last label is all digits is a mistyped address (RFC 3696).
fn is_host_name(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    host.len() <= 253
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && !labels
            .last()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
}

/// Portable user names (as `useradd` accepts by default on Debian).
pub(crate) fn is_user_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    (1..=32).contains(&name.len())
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_rfc_1123() {
        for good in [
            "relay.example.com",
            "a",
            "xn--fiqs8s.cn",
            "a-b.c0",
            "my-relay",
        ] {
            assert!(is_host_name(good), "{good}");
        }
        for bad in [
            "",
            "-a.com",
            "a-.com",
            "a..com",
            "1.2.3",
            "a_b.com",
            "例子.cn",
            "a.com.",
            &"a".repeat(64),
        ] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn user_names_are_portable() {
        assert!(is_user_name("aistudio-tunnel"));
        assert!(is_user_name("_relay"));
        for bad in ["", "Root", "1abc", "-x", "a b", "a;b", &"a".repeat(33)] {
            assert!(!is_user_name(bad), "{bad}");
        }
    }
}
