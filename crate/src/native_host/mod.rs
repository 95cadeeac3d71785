//! The helper on the user's computer as browsers see it (direct mode, issue 14): its name,
//! the extension ids allowed to start it, the host manifests `aistudio-ssh install` writes
//! and where each browser reads them, and native messaging's framing on stdio; what it says
//! to the extension and to `aistudio-ssh proxy` ([`message`]), how it connects the two
//! ([`switchboard`]: the decisions, sans-IO, so they are tested without a browser), and
//! which browser's extension a message belongs to when several are connected ([`routes`]),
//! and the loopback WebSocket that carries the bytes once the extension opened it ([`lane`]).
//!
//! Browsers start a native messaging host only for the extension ids its manifest lists, so
//! those ids are known in advance: the unpacked Chromium build's id follows from the
//! manifest's `key` ([`chromium_extension_id`]), Firefox's is the gecko id.

pub mod lane;
pub mod message;
pub mod routes;
pub mod switchboard;

use std::io::{self, Read, Write};

use serde_json::{json, Value};

pub use lane::{same_secret, LaneHeader, LaneRefusal, LaneToken};
pub use message::{
    address_path, keeper_address, parse_keeper_address, project_of_alias, socket_path, Base64Bytes,
    ExtensionRequest, ProxyAnswer, ProxyRequest, ToExtension, ToHost, KEEPER_ADDRESS_FILE,
    KEEPER_LOCK_FILE, KEEPER_LOG_FILE, KEEPER_PID_FILE, SOCKET_DIR, SOCKET_FILE,
};
pub use routes::{ExtensionId, Routes};
use sha2::{Digest, Sha256};
pub use switchboard::{Output, ProxyAction, ProxyId, Switchboard};

/// The host's name, the file name of its manifests (`<name>.json`). Browsers allow lowercase
/// letters, digits, `_` and `.`.
pub const HOST_NAME: &str = "io.github.aistudio_ssh";

/// The unpacked Chromium build's id: derived from `key` in www/manifest.json5 (a test
/// checks the derivation, an end-to-end test the id Chromium gives the loaded build).
pub const CHROMIUM_EXTENSION_ID: &str = "nfbfpekjfcnniobpegkajkakabpienla";

/// The Firefox build's id (`browser_specific_settings.gecko.id`).
pub const GECKO_EXTENSION_ID: &str = "aistudio-ssh@aistudio-ssh";

/// The file name of the host's manifests in every browser's folder.
pub fn manifest_file_name() -> String {
    format!("{HOST_NAME}.json")
}

/// Whether the program's arguments (after its name) are those a browser starts a host
/// with: Chromium passes the caller's origin, Firefox the path of our manifest and the
/// caller's id.
pub fn started_by_browser(args: &[String]) -> bool {
    args.first().is_some_and(|first| {
        first.starts_with("chrome-extension://")
            || std::path::Path::new(first)
                .file_name()
                .is_some_and(|name| *name == *manifest_file_name())
    })
}

/// Chromium refuses a message from a host above 1 MiB.
pub const MAX_MESSAGE_TO_BROWSER: usize = 1024 * 1024;
/// Chromium sends at most 64 MiB to a host; anything longer is a broken stream.
pub const MAX_MESSAGE_FROM_BROWSER: usize = 64 * 1024 * 1024;

/// The id Chromium gives an extension whose manifest has `key` = base64 of this DER
/// SubjectPublicKeyInfo: the first 128 bits of its SHA-256, each hex digit as `a`..=`p`.
pub fn chromium_extension_id(public_key_der: &[u8]) -> String {
    Sha256::digest(public_key_der)[..16]
        .iter()
        .flat_map(|byte| [byte >> 4, byte & 0xf])
        .map(|nibble| char::from(b'a' + nibble))
        .collect()
}

/// The two manifest dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserFamily {
    /// Chrome, Chromium, Edge, Brave: `allowed_origins` of `chrome-extension://<id>/`.
    Chromium,
    /// Firefox: `allowed_extensions` of gecko ids.
    Firefox,
}

/// A browser and where it reads host manifests for the current user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Browser {
    pub name: &'static str,
    pub family: BrowserFamily,
    /// The manifest folder on Linux, relative to the home folder.
    pub linux_dir: &'static str,
    /// The manifest folder on macOS, relative to the home folder.
    pub macos_dir: &'static str,
    /// The registry key (under `HKEY_CURRENT_USER`) whose default value names the manifest
    /// on Windows.
    pub windows_key: &'static str,
    /// The browser's own folder on Windows, relative to `%LOCALAPPDATA%`: it is there when
    /// this folder is.
    pub windows_dir: &'static str,
}

impl Browser {
    /// The registry key `install` sets on Windows (its default value: our manifest's path),
    /// as `reg.exe` names it. Ours by its last part, [`HOST_NAME`].
    pub fn registry_key(&self) -> String {
        format!(r"HKCU\{}\{HOST_NAME}", self.windows_key)
    }
}

impl BrowserFamily {
    /// The folder of this family's manifest on Windows, relative to `%LOCALAPPDATA%` (on
    /// Linux and macOS each browser reads its own folder; on Windows the registry points
    /// anywhere, so one manifest per dialect).
    pub fn windows_manifest_dir(self) -> &'static str {
        match self {
            Self::Chromium => r"aistudio-ssh\NativeMessagingHosts\chromium",
            Self::Firefox => r"aistudio-ssh\NativeMessagingHosts\firefox",
        }
    }
}

/// The browsers `aistudio-ssh install` knows, as their documentation places manifests.
pub const BROWSERS: [Browser; 5] = [
    Browser {
        name: "Google Chrome",
        family: BrowserFamily::Chromium,
        linux_dir: ".config/google-chrome/NativeMessagingHosts",
        macos_dir: "Library/Application Support/Google/Chrome/NativeMessagingHosts",
        windows_key: r"Software\Google\Chrome\NativeMessagingHosts",
        windows_dir: r"Google\Chrome\User Data",
    },
    Browser {
        name: "Chromium",
        family: BrowserFamily::Chromium,
        linux_dir: ".config/chromium/NativeMessagingHosts",
        macos_dir: "Library/Application Support/Chromium/NativeMessagingHosts",
        windows_key: r"Software\Chromium\NativeMessagingHosts",
        windows_dir: r"Chromium\User Data",
    },
    Browser {
        name: "Microsoft Edge",
        family: BrowserFamily::Chromium,
        linux_dir: ".config/microsoft-edge/NativeMessagingHosts",
        macos_dir: "Library/Application Support/Microsoft Edge/NativeMessagingHosts",
        windows_key: r"Software\Microsoft\Edge\NativeMessagingHosts",
        windows_dir: r"Microsoft\Edge\User Data",
    },
    Browser {
        name: "Brave",
        family: BrowserFamily::Chromium,
        linux_dir: ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
        macos_dir: "Library/Application Support/BraveSoftware/Brave-Browser/NativeMessagingHosts",
        windows_key: r"Software\BraveSoftware\Brave-Browser\NativeMessagingHosts",
        windows_dir: r"BraveSoftware\Brave-Browser\User Data",
    },
    Browser {
        name: "Firefox",
        family: BrowserFamily::Firefox,
        linux_dir: ".mozilla/native-messaging-hosts",
        macos_dir: "Library/Application Support/Mozilla/NativeMessagingHosts",
        windows_key: r"Software\Mozilla\NativeMessagingHosts",
        windows_dir: r"Mozilla\Firefox",
    },
];

/// The host manifest for a browser family: the helper at `binary` (an absolute path), to be
/// started by our extension ids only (`extra_ids`: a store's ids, given at install).
pub fn host_manifest(family: BrowserFamily, binary: &str, extra_ids: &[String]) -> Value {
    let mut manifest = json!({
        "name": HOST_NAME,
        "description": "AI Studio SSH helper: SSH into AI Studio notebooks through the browser",
        "path": binary,
        "type": "stdio",
    });
    match family {
        BrowserFamily::Chromium => {
            let origins: Vec<String> = std::iter::once(CHROMIUM_EXTENSION_ID)
                .chain(extra_ids.iter().map(String::as_str))
                .map(|id| format!("chrome-extension://{id}/"))
                .collect();
            manifest["allowed_origins"] = json!(origins);
        }
        BrowserFamily::Firefox => {
            let ids: Vec<&str> = std::iter::once(GECKO_EXTENSION_ID)
                .chain(extra_ids.iter().map(String::as_str))
                .collect();
            manifest["allowed_extensions"] = json!(ids);
        }
    }
    manifest
}

/// Whether `id` can be an extension id given to `install --extension-id`: a Chromium id (32
/// letters `a`..=`p`) or a gecko id (`name@domain` or a `{uuid}`), nothing that could break
/// out of the manifest's JSON or an origin.
pub fn is_extension_id(id: &str) -> bool {
    let chromium = id.len() == 32 && id.bytes().all(|b| (b'a'..=b'p').contains(&b));
    let gecko = (3..=80).contains(&id.len())
        && (id.contains('@') || (id.starts_with('{') && id.ends_with('}')))
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@.-_{}".contains(&b));
    chromium || gecko
}

/// Why a native message could not be read or written.
#[derive(Debug, strum::IntoStaticStr)]
#[non_exhaustive]
pub enum NativeMessageError {
    /// A message longer than the side's limit.
    TooLarge { length: usize, limit: usize },
    /// The stream ended inside a message.
    Truncated,
    /// The message is not JSON.
    Json { detail: String },
    /// Reading or writing stdio failed.
    Io { detail: String },
}

impl core::fmt::Display for NativeMessageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLarge { length, limit } => write!(
                f,
                "a native message of {length} bytes is over the {limit}-byte limit"
            ),
            Self::Truncated => write!(f, "the browser's stream ended inside a message"),
            Self::Json { detail } => write!(f, "a native message is not JSON ({detail})"),
            Self::Io { detail } => write!(f, "native messaging stdio failed ({detail})"),
        }
    }
}

impl std::error::Error for NativeMessageError {}

fn io_error(error: io::Error) -> NativeMessageError {
    NativeMessageError::Io {
        detail: error.to_string(),
    }
}

/// Reads one message the browser sent: a 32-bit length in native byte order, then that many
/// bytes of UTF-8 JSON. `None` when the browser closed the stream between messages.
///
/// # Errors
/// A length over [`MAX_MESSAGE_FROM_BROWSER`], a stream that ends mid-message, or no JSON.
pub fn read_message(input: &mut impl Read) -> Result<Option<Value>, NativeMessageError> {
    let mut length = [0u8; 4];
    let mut filled = 0;
    while filled < length.len() {
        match input.read(&mut length[filled..]).map_err(io_error)? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(NativeMessageError::Truncated),
            n => filled += n,
        }
    }
    let length = u32::from_ne_bytes(length) as usize;
    if length > MAX_MESSAGE_FROM_BROWSER {
        return Err(NativeMessageError::TooLarge {
            length,
            limit: MAX_MESSAGE_FROM_BROWSER,
        });
    }
    let mut body = vec![0u8; length];
    input
        .read_exact(&mut body)
        .map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => NativeMessageError::Truncated,
            _ => io_error(error),
        })?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|error| NativeMessageError::Json {
            detail: error.to_string(),
        })
}

/// Writes one message to the browser, framed as [`read_message`] reads it, and flushes.
///
/// # Errors
/// A message over [`MAX_MESSAGE_TO_BROWSER`] (nothing is written), or stdio failing.
pub fn write_message(output: &mut impl Write, message: &Value) -> Result<(), NativeMessageError> {
    let body = message.to_string();
    if body.len() > MAX_MESSAGE_TO_BROWSER {
        return Err(NativeMessageError::TooLarge {
            length: body.len(),
            limit: MAX_MESSAGE_TO_BROWSER,
        });
    }
    let length = u32::try_from(body.len()).expect("under the 1 MiB limit");
    output
        .write_all(&length.to_ne_bytes())
        .and_then(|()| output.write_all(body.as_bytes()))
        .and_then(|()| output.flush())
        .map_err(io_error)
}
