//! The messages of direct mode's helper: native messages between the extension and the host
//! (JSON, `kind`-tagged), and the one-line handshake of `aistudio-ssh proxy` on the local
//! socket.
//!
//! The extension is written against these exact shapes; a name changed here breaks it, so
//! the tests pin every shape as JSON text.
//!
//! # Which link bytes are for
//!
//! After the extension sends `linkDown` then `linkUp`, `bytes` the host sent before it read
//! them may still arrive (dozens of messages at full speed, `crate/tests/native_link.rs`
//! counts them): so `linkUp` carries a number the extension counts up, and every `bytes`
//! from the host names the `linkUp` it follows. The extension forwards only those of its
//! current link.

use std::ffi::OsStr;
use std::path::PathBuf;

use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};

/// A message from the extension to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ToHost {
    /// Who is there: answered with [`ToExtension::Hello`].
    Hello,
    /// The path to the project's bridge is open: the host's end says `Hello` on it. `link`
    /// numbers the attachment (the extension counts up): the host's `bytes` name the one
    /// they are for, so bytes sent before the host heard of a new attachment are dropped.
    LinkUp { project: String, link: u32 },
    /// A leg of the path dropped: the host forgets any partial frame and waits for `linkUp`.
    LinkDown { project: String, reason: String },
    /// Bytes from the bridge (standard base64), an arbitrary split of the link's byte
    /// stream: not aligned to frames.
    Bytes {
        project: String,
        #[cfg_attr(target_arch = "wasm32", tsify(type = "string"))]
        data: Base64Bytes,
    },
    /// The answer to [`ToExtension::Want`] when the link cannot be opened (no notebook tab
    /// of the project, or it failed): every proxy waiting for it fails with `reason`.
    NoLink { project: String, reason: String },
}

/// A message from the host to the extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ToExtension {
    /// The answer to [`ToHost::Hello`]: the host's name, the crate version, and the address
    /// of the keeper's lane (see [`super::lane`]), if it has one.
    Hello {
        host: String,
        version: String,
        lane: Option<String>,
    },
    /// A proxy waits for the project and its link is not up: open it (answered by
    /// [`ToHost::LinkUp`] or [`ToHost::NoLink`]).
    Want { project: String },
    /// What the host's end transmits (standard base64): whole frames, several per message,
    /// at most [`super::switchboard::MAX_BATCH`] bytes before base64; the first message of a
    /// link starts with its `Hello` (see the module's doc). `link` is the number of the
    /// [`ToHost::LinkUp`] they follow.
    Bytes {
        project: String,
        link: u32,
        #[cfg_attr(target_arch = "wasm32", tsify(type = "string"))]
        data: Base64Bytes,
    },
    /// The link is dead to the host's end (silent, or broken): close it and open a new one.
    Drop { project: String, reason: String },
    /// Counters for the popup, at most once a second while they change.
    #[serde(rename_all = "camelCase")]
    Status {
        project: String,
        /// `proxy` connections with an open stream.
        streams: u64,
        /// Bytes from `ssh` taken into the link.
        bytes_up: u64,
        /// Bytes from the link given to `ssh`.
        bytes_down: u64,
        /// Both ends' `Hello`s crossed on the current link.
        link_up: bool,
    },
    /// A message the host does not understand (an extension newer than the host).
    Error { error: String },
}

/// Bytes that cross JSON as standard base64 and stay bytes in Rust: on the lane they go as
/// they are (see [`super::lane`]), so only native messaging pays for base64.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Base64Bytes(pub Vec<u8>);

impl std::fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl From<&[u8]> for Base64Bytes {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&Base64::encode_string(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Base64::decode_vec(&text)
            .map(Self)
            .map_err(|error| serde::de::Error::custom(format!("not base64 ({error})")))
    }
}

/// The line `aistudio-ssh proxy` writes first on the helper's socket: `{"project":"P"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyRequest {
    pub project: String,
}

/// The host's one-line answer to a [`ProxyRequest`]: `{"ok":true}` once the project's link
/// is up and the bridge took the stream (it reached sshd; raw bytes follow both ways), or
/// `{"ok":false,"error":"..."}`: no link (the extension's reason), none within 20 s, or the
/// bridge's refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyAnswer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ProxyAnswer {
    /// The stream is open.
    pub fn ok() -> Self {
        Self {
            ok: true,
            error: None,
        }
    }

    /// No stream, for this reason (shown to the user by `aistudio-ssh proxy`).
    pub fn error(reason: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(reason.into()),
        }
    }

    /// The answer as its line on the socket, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| r#"{"ok":false}"#.into());
        line.push('\n');
        line
    }
}

impl ProxyRequest {
    /// The request as its line on the socket, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// The line the browser's native host sends on the helper's socket instead of a
/// [`ProxyRequest`]: `{"extension":"<its version>"}`. After the keeper's `ok` line, the
/// connection carries native messages both ways, framed as on the browser's stdio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionRequest {
    /// The native host's version: a keeper of another version with nothing to keep
    /// refuses and leaves, so an upgraded helper runs its own keeper.
    pub extension: String,
}

impl ExtensionRequest {
    /// The request of this build's native host.
    pub fn this_version() -> Self {
        Self {
            extension: crate::VERSION.into(),
        }
    }

    /// The request as its line on the socket, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// The request in a connection's first line, if it is one.
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line.trim()).ok()
    }
}

/// The prefix of a project's `Host` alias in the rendered ssh config (see
/// `render::host_alias_of`; a test keeps the two in step).
const ALIAS_PREFIX: &str = "aistudio-";

/// The project `aistudio-ssh proxy <alias>` means: `aistudio-<project>` as the rendered ssh
/// config's `Host` (ssh's `%n`), or a bare project id. `None` when it names no valid project.
pub fn project_of_alias(alias: &str) -> Option<&str> {
    let project = alias.strip_prefix(ALIAS_PREFIX).unwrap_or(alias);
    crate::fields::is_project_id(project).then_some(project)
}

/// The folder name inside `XDG_RUNTIME_DIR` (already the user's own).
pub const SOCKET_DIR: &str = "aistudio-ssh";
/// The socket's file name.
pub const SOCKET_FILE: &str = "helper.sock";
/// On Windows, which has no Unix socket in std: the keeper listens on a loopback port and
/// writes `<port> <client token> <keeper token>` here, in the user's
/// `%LOCALAPPDATA%\aistudio-ssh`. A client sends the first token as its first line, and the
/// keeper answers with the second before anything else: each knows the other read this file
/// (a program that took the port of a keeper that died cannot pass for it).
pub const KEEPER_ADDRESS_FILE: &str = "helper.address";
/// The keeper's process id, next to its socket (for whoever has to stop it).
pub const KEEPER_PID_FILE: &str = "keeper.pid";
/// What the keeper logs, next to its socket (written anew by each keeper).
pub const KEEPER_LOG_FILE: &str = "keeper.log";
/// The lock a keeper holds for its life, next to its socket: one keeper per user.
pub const KEEPER_LOCK_FILE: &str = "keeper.lock";

/// Where the host listens and the proxy connects: `$XDG_RUNTIME_DIR/aistudio-ssh/helper.sock`
/// (a per-user folder the system cleans at logout), else `$TMPDIR` (else `/tmp`)
/// `/aistudio-ssh-<uid>/helper.sock`. Both sides compute it from the same environment; the
/// folder must be the user's own and closed to others (the binary checks before use).
pub fn socket_path(xdg_runtime_dir: Option<&OsStr>, tmpdir: Option<&OsStr>, uid: u32) -> PathBuf {
    let nonempty = |value: Option<&OsStr>| value.filter(|v| !v.is_empty()).map(PathBuf::from);
    let folder = match nonempty(xdg_runtime_dir) {
        Some(runtime) => runtime.join(SOCKET_DIR),
        None => nonempty(tmpdir)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join(format!("{SOCKET_DIR}-{uid}")),
    };
    folder.join(SOCKET_FILE)
}

/// Where the keeper writes its address on Windows: `%LOCALAPPDATA%\aistudio-ssh\helper.address`
/// (the user's profile, closed to others).
pub fn address_path(local_app_data: &OsStr) -> PathBuf {
    PathBuf::from(local_app_data)
        .join(SOCKET_DIR)
        .join(KEEPER_ADDRESS_FILE)
}

/// What [`KEEPER_ADDRESS_FILE`] holds: `<port> <client token> <keeper token>` and a newline.
pub fn keeper_address(port: u16, client: &str, keeper: &str) -> String {
    format!("{port} {client} {keeper}\n")
}

/// The port and tokens of [`keeper_address`]; `None` for anything else.
pub fn parse_keeper_address(text: &str) -> Option<(u16, &str, &str)> {
    let mut parts = text.trim_end().split(' ');
    let (port, client, keeper) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = parts.next().is_none() && token(client) && token(keeper);
    Some((port.parse().ok()?, client, keeper)).filter(|_| valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn from(value: Value) -> ToHost {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn extension_messages_have_the_agreed_shapes() {
        assert_eq!(from(json!({"kind": "hello"})), ToHost::Hello);
        assert_eq!(
            from(json!({"kind": "linkUp", "project": "P", "link": 3})),
            ToHost::LinkUp {
                project: "P".into(),
                link: 3
            }
        );
        assert_eq!(
            from(json!({"kind": "linkDown", "project": "P", "reason": "tab closed"})),
            ToHost::LinkDown {
                project: "P".into(),
                reason: "tab closed".into()
            }
        );
        assert_eq!(
            from(json!({"kind": "bytes", "project": "P", "data": "AAE="})),
            ToHost::Bytes {
                project: "P".into(),
                data: Base64Bytes(vec![0, 1])
            }
        );
        let not_base64 = json!({"kind": "bytes", "project": "P", "data": "A*=="});
        let error = serde_json::from_value::<ToHost>(not_base64).unwrap_err();
        assert!(error.to_string().contains("not base64"), "{error}");
        assert_eq!(
            from(json!({"kind": "noLink", "project": "P", "reason": "no tab"})),
            ToHost::NoLink {
                project: "P".into(),
                reason: "no tab".into()
            }
        );
    }

    #[test]
    fn host_messages_have_the_agreed_shapes() {
        let text = |message: ToExtension| serde_json::to_string(&message).unwrap();
        assert_eq!(
            text(ToExtension::Hello {
                host: "h".into(),
                version: "1.2.3".into(),
                lane: Some("ws://127.0.0.1:1/t".into())
            }),
            r#"{"kind":"hello","host":"h","version":"1.2.3","lane":"ws://127.0.0.1:1/t"}"#
        );
        assert_eq!(
            text(ToExtension::Want {
                project: "P".into()
            }),
            r#"{"kind":"want","project":"P"}"#
        );
        assert_eq!(
            text(ToExtension::Bytes {
                project: "P".into(),
                link: 3,
                data: Base64Bytes(vec![0, 1])
            }),
            r#"{"kind":"bytes","project":"P","link":3,"data":"AAE="}"#
        );
        assert_eq!(
            text(ToExtension::Drop {
                project: "P".into(),
                reason: "silent".into()
            }),
            r#"{"kind":"drop","project":"P","reason":"silent"}"#
        );
        assert_eq!(
            text(ToExtension::Status {
                project: "P".into(),
                streams: 2,
                bytes_up: 3,
                bytes_down: 4,
                link_up: true
            }),
            r#"{"kind":"status","project":"P","streams":2,"bytesUp":3,"bytesDown":4,"linkUp":true}"#
        );
        // And back, as a test double of the extension reads them.
        let status: ToExtension = serde_json::from_str(
            r#"{"kind":"status","project":"P","streams":0,"bytesUp":0,"bytesDown":9,"linkUp":false}"#,
        )
        .unwrap();
        assert!(matches!(status, ToExtension::Status { bytes_down: 9, .. }));
    }

    #[test]
    fn the_proxy_handshake_is_one_json_line_each_way() {
        let request = ProxyRequest {
            project: "7892508".into(),
        };
        assert_eq!(request.to_line(), "{\"project\":\"7892508\"}\n");
        assert_eq!(ProxyAnswer::ok().to_line(), "{\"ok\":true}\n");
        assert_eq!(
            ProxyAnswer::error("no tab").to_line(),
            "{\"ok\":false,\"error\":\"no tab\"}\n"
        );
        let parsed: ProxyAnswer = serde_json::from_str(r#"{"ok":true}"#).unwrap();
        assert_eq!(parsed, ProxyAnswer::ok());
    }

    #[test]
    fn an_alias_names_its_project() {
        let alias = crate::render::host_alias_of("7892508");
        assert_eq!(project_of_alias(&alias), Some("7892508"));
        assert_eq!(project_of_alias("my_project-2"), Some("my_project-2"));
        assert_eq!(project_of_alias("aistudio-"), None);
        assert_eq!(project_of_alias("aistudio-a b"), None);
        assert_eq!(project_of_alias("../x"), None);
    }

    #[test]
    fn the_windows_address_sits_in_the_users_local_app_data() {
        assert_eq!(
            address_path(OsStr::new("C:/Users/u/AppData/Local")),
            std::path::Path::new("C:/Users/u/AppData/Local/aistudio-ssh/helper.address")
        );
    }

    #[test]
    fn the_keepers_address_file_reads_back_and_nothing_else_does() {
        let (client, keeper) = ("0123456789abcdef".repeat(4), "fedcba9876543210".repeat(4));
        let text = keeper_address(49152, &client, &keeper);
        assert_eq!(text, format!("49152 {client} {keeper}\n"));
        assert_eq!(
            parse_keeper_address(&text),
            Some((49152, client.as_str(), keeper.as_str()))
        );
        let bad = [
            "",
            "49152",
            "49152 ab",
            "49152 ab ",
            "70000 ab cd",
            "x ab cd",
            "49152 not-hex cd",
            " 1 ab cd",
            "49152 ab cd ef",
        ];
        for bad in bad {
            assert_eq!(parse_keeper_address(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_socket_sits_in_the_users_runtime_folder_or_a_uid_folder_in_tmp() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert_eq!(
            socket_path(os("/run/user/1000"), os("/var/tmp"), 1000),
            PathBuf::from("/run/user/1000/aistudio-ssh/helper.sock")
        );
        assert_eq!(
            socket_path(None, os("/var/tmp"), 1000),
            PathBuf::from("/var/tmp/aistudio-ssh-1000/helper.sock")
        );
        assert_eq!(
            socket_path(os(""), None, 501),
            PathBuf::from("/tmp/aistudio-ssh-501/helper.sock")
        );
    }
}
