//! The fields users fill in: what each accepts (a rule with a stable id and its English text,
//! translated by the UI), the error that names a refused field, and the host and user name
//! checks. Depends on nothing else in the crate, so settings and self-hosted servers share it.

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
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

/// Every rule a field can be refused under (the UI has a translation for each).
pub const RULES: [Rule; 11] = [
    PORT_RULE,
    UNPRIVILEGED_PORT_RULE,
    HOST_RULE,
    USER_RULE,
    RELAY_USER_RULE,
    RELAY_NEEDED_RULE,
    PROJECT_RULE,
    HOST_KEY_RULE,
    SSH_DIR_RULE,
    SELF_HOSTED_URL_RULE,
    SELF_HOSTED_NAME_RULE,
];

pub(crate) const PORT_RULE: Rule = Rule {
    id: "port",
    text: "a port is a whole number from 1 to 65535",
};
pub(crate) const UNPRIVILEGED_PORT_RULE: Rule = Rule {
    id: "unprivilegedPort",
    text: "a whole number from 1024 to 65535 (ports below 1024 need root, which the container and the tunnel user lack)",
};
pub(crate) const HOST_RULE: Rule = Rule {
    id: "host",
    text: "a host name (letters, digits and '-' in dot-separated labels, \
     internationalized names in xn-- form), an IPv4 address such as 203.0.113.7, or an IPv6 address such as 2001:db8::7",
};
pub(crate) const USER_RULE: Rule = Rule {
    id: "user",
    text: "a user name of 1 to 32 characters: lowercase letters, digits, '_' and '-', not starting with a digit or '-'",
};
pub(crate) const RELAY_USER_RULE: Rule = Rule {
    id: "relayUser",
    text: "a user name of 1 to 32 characters (lowercase letters, digits, '_' and '-', not starting with a digit or '-') \
     other than root: the relay setup script makes this tunnel-only account itself and refuses root and existing accounts",
};
pub(crate) const RELAY_NEEDED_RULE: Rule = Rule {
    id: "relayNeeded",
    text: "the relay route needs a relay: set it in the options, or choose the direct route (no server)",
};
pub(crate) const PROJECT_RULE: Rule = Rule {
    id: "project",
    text: "the project id from the notebook URL: letters, digits, '-' and '_', at most 64",
};
pub(crate) const HOST_KEY_RULE: Rule = Rule {
    id: "hostKey",
    text: "the relay's host key as printed by the relay setup script or `ssh-keyscan HOST`: \
     lines like 'ssh-ed25519 AAAA...' (a leading host name field is allowed)",
};
pub(crate) const SSH_DIR_RULE: Rule = Rule {
    id: "sshDir",
    text: "a path such as ~/.ssh/aistudio-7892508 or C:\\Users\\me\\.ssh\\aistudio: \
     letters, digits, spaces and ~ / \\ : . _ - only",
};

pub(crate) const SELF_HOSTED_URL_RULE: Rule = Rule {
    id: "selfHostedUrl",
    text: "the address of your Jupyter server as the browser shows it, \
     such as https://jupyter.example.org/user/alice/lab: https (plain http only on localhost, \
     127.0.0.1 or [::1]), no user name or password in it, and not an aistudio.baidu.com page \
     (those work without this)",
};
pub(crate) const SELF_HOSTED_NAME_RULE: Rule = Rule {
    id: "selfHostedName",
    text: "a name for `ssh aistudio-<name>`: letters, digits, '-' and '_', \
     at most 64, with at least one letter (AI Studio project ids are all digits)",
};

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

/// The longest project id (or self-hosted server name) we take: it names files and hosts.
const MAX_PROJECT_ID_LEN: usize = 64;

/// Whether `id` can be an AI Studio project id (as it appears in notebook URLs) or a
/// self-hosted server's name: an identifier of at most 64 characters.
pub fn is_project_id(id: &str) -> bool {
    is_identifier(id) && id.len() <= MAX_PROJECT_ID_LEN
}

/// Zone, user and project ids seen on AI Studio are ASCII letters, digits and dashes
/// (`bd-gpu-01`, `idehubcpu01`, `7892508`); underscores are accepted as a guess.
pub fn is_identifier(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
