//! The lane: a WebSocket on the user's loopback between the keeper and the extension's
//! background, carrying the same messages as native messaging, with a link's bytes as binary
//! frames (no JSON, no base64). Native messaging stays what starts the helper and keeps the
//! worker alive; the lane is how the bytes travel once the background has opened it.
//!
//! Why: a browser reads its native host's stdout slowly (Chromium: 34-38 MB/s of base64 JSON
//! on our machines, about 26 MB/s of bytes, in the browser process), which capped direct
//! mode's upload. A WebSocket's bytes go through the network service instead.
//!
//! Who may use it: the port is open to every local process and web page, so the keeper
//! admits a connection only with the path `/<token>`, a random 256-bit token it gives the
//! extension in its `hello` over native messaging (which only the browser reads), and only
//! from an extension's origin (`chrome-extension://`, `moz-extension://`: a web page cannot
//! send those). Browsers exempt an extension's background from Local Network Access checks;
//! web pages would need the user's permission, so content scripts never use the lane.
//!
//! # Binary frames
//! Both ways: `[project length: u8][project: UTF-8][link: u32, big-endian][bytes]`. From the
//! keeper `link` is the [`super::ToHost::LinkUp`] the bytes follow (as in
//! [`super::ToExtension::Bytes`]); from the extension it is 0 and ignored. Text frames carry
//! the other messages as the same JSON as native messaging.

use std::fmt::Write as _;

use rand_core::RngCore;

/// The random part of the lane's address: 32 bytes as 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct LaneToken(String);

impl std::fmt::Debug for LaneToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in a log.
        f.write_str("LaneToken(..)")
    }
}

/// Why a connection to the lane was refused (logged by the keeper; the peer gets a 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneRefusal {
    /// The path is not `/<token>`.
    WrongToken,
    /// No `Origin`, or not an extension's.
    NotAnExtension(Option<String>),
}

impl std::fmt::Display for LaneRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongToken => f.write_str("a connection to the lane had the wrong token"),
            Self::NotAnExtension(Some(origin)) => {
                // Whoever sends it chooses its length: the log gets the start.
                let origin: String = origin.chars().take(100).collect();
                write!(
                    f,
                    "a connection to the lane came from {origin:?}, not an extension"
                )
            }
            Self::NotAnExtension(None) => {
                f.write_str("a connection to the lane had no Origin (not a browser's extension)")
            }
        }
    }
}

impl LaneToken {
    /// A new token from `rng` (the OS's in the keeper).
    pub fn new(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let mut hex = String::with_capacity(64);
        for byte in bytes {
            let _ = write!(hex, "{byte:02x}");
        }
        Self(hex)
    }

    /// The address the extension opens: `ws://127.0.0.1:<port>/<token>`.
    pub fn url(&self, port: u16) -> String {
        format!("ws://127.0.0.1:{port}/{}", self.0)
    }

    /// The token as written where only its user reads it (the keeper's address file).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token.
    pub fn matches(&self, given: &str) -> bool {
        same_secret(given, &self.0)
    }

    /// Whether a WebSocket request with this path and `Origin` header may use the lane.
    ///
    /// # Errors
    /// The token is wrong, or the request is not from an extension.
    pub fn admit(&self, path: &str, origin: Option<&str>) -> Result<(), LaneRefusal> {
        if !self.matches(path.strip_prefix('/').unwrap_or_default()) {
            return Err(LaneRefusal::WrongToken);
        }
        match origin {
            Some(origin) if is_extension_origin(origin) => Ok(()),
            other => Err(LaneRefusal::NotAnExtension(other.map(str::to_owned))),
        }
    }
}

/// Whether `given` is `secret`, every byte compared whatever the first difference: the time
/// it takes says nothing of where they differ.
pub fn same_secret(given: &str, secret: &str) -> bool {
    given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// An extension's origin as browsers send it in `Origin`.
fn is_extension_origin(origin: &str) -> bool {
    ["chrome-extension://", "moz-extension://"]
        .iter()
        .any(|scheme| {
            origin
                .strip_prefix(scheme)
                .is_some_and(|rest| !rest.is_empty())
        })
}

/// What starts a binary frame on the lane: whose bytes they are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct LaneHeader {
    pub project: String,
    pub link: u32,
    /// Where the bytes start in the frame.
    pub data_start: usize,
}

/// The longest header: a project id of at most 255 bytes, its length and the link.
pub const MAX_LANE_HEADER: usize = 1 + 255 + 4;

/// The header of a binary frame for `project`'s bytes (the bytes follow it).
///
/// # Errors
/// The project id is longer than 255 bytes (no valid id is).
pub fn lane_header(project: &str, link: u32) -> Result<Vec<u8>, String> {
    let length = u8::try_from(project.len())
        .map_err(|_| format!("the project id {project:?} is too long for the lane"))?;
    let mut header = Vec::with_capacity(1 + project.len() + 4);
    header.push(length);
    header.extend_from_slice(project.as_bytes());
    header.extend_from_slice(&link.to_be_bytes());
    Ok(header)
}

/// A whole binary frame: header and bytes.
///
/// # Errors
/// As [`lane_header`].
pub fn lane_frame(project: &str, link: u32, data: &[u8]) -> Result<Vec<u8>, String> {
    let mut frame = lane_header(project, link)?;
    frame.extend_from_slice(data);
    Ok(frame)
}

/// Reads the header of a binary frame (the frame, or at least its first
/// [`MAX_LANE_HEADER`] bytes).
///
/// # Errors
/// The frame is shorter than its header says, or the project is not UTF-8.
pub fn read_lane_header(frame: &[u8]) -> Result<LaneHeader, String> {
    let (&length, rest) = frame.split_first().ok_or("an empty frame on the lane")?;
    let length = usize::from(length);
    if rest.len() < length + 4 {
        return Err(format!(
            "a frame on the lane of {} bytes, shorter than its header",
            frame.len()
        ));
    }
    let project = std::str::from_utf8(&rest[..length])
        .map_err(|_| "a frame on the lane names a project that is not UTF-8")?;
    let mut link = [0u8; 4];
    link.copy_from_slice(&rest[length..length + 4]);
    Ok(LaneHeader {
        project: project.to_owned(),
        link: u32::from_be_bytes(link),
        data_start: 1 + length + 4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn token() -> LaneToken {
        LaneToken::new(&mut ChaCha8Rng::seed_from_u64(7))
    }

    #[test]
    fn a_token_is_64_hex_digits_in_a_loopback_url() {
        let url = token().url(4711);
        let path = url.strip_prefix("ws://127.0.0.1:4711/").unwrap();
        assert_eq!(path.len(), 64);
        assert!(path
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(
            LaneToken::new(&mut ChaCha8Rng::seed_from_u64(8)).url(4711),
            url
        );
        assert_eq!(format!("{:?}", token()), "LaneToken(..)");
    }

    #[test]
    fn only_the_token_from_an_extension_is_admitted() {
        let token = token();
        let url = token.url(1);
        let path = &url["ws://127.0.0.1:1".len()..];
        let chrome = Some("chrome-extension://nfbfpekjfcnniobpegkajkakabpienla");
        assert_eq!(token.admit(path, chrome), Ok(()));
        assert_eq!(token.admit(path, Some("moz-extension://0f1e-77")), Ok(()));
        // A web page (it could have guessed nothing, but it cannot send an extension's Origin).
        assert_eq!(
            token.admit(path, Some("https://aistudio.baidu.com")),
            Err(LaneRefusal::NotAnExtension(Some(
                "https://aistudio.baidu.com".into()
            )))
        );
        assert_eq!(
            token.admit(path, Some("chrome-extension://")),
            Err(LaneRefusal::NotAnExtension(Some(
                "chrome-extension://".into()
            )))
        );
        assert_eq!(
            token.admit(path, None),
            Err(LaneRefusal::NotAnExtension(None))
        );
        let long = LaneRefusal::NotAnExtension(Some("x".repeat(70_000))).to_string();
        assert!(long.len() < 200, "{} bytes", long.len());
        // Wrong, short, long, or none.
        let mut wrong = path.to_owned();
        wrong.replace_range(64.., if path.ends_with('0') { "1" } else { "0" });
        for bad in [wrong.as_str(), &path[..64], &format!("{path}0"), "/", ""] {
            assert_eq!(
                token.admit(bad, chrome),
                Err(LaneRefusal::WrongToken),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_binary_frame_names_its_project_and_link() {
        let frame = lane_frame("7892508", 0x0102_0304, b"ssh bytes").unwrap();
        assert_eq!(
            frame,
            [b"\x077892508\x01\x02\x03\x04".as_slice(), b"ssh bytes"].concat()
        );
        let header = read_lane_header(&frame).unwrap();
        assert_eq!(
            header,
            LaneHeader {
                project: "7892508".into(),
                link: 0x0102_0304,
                data_start: 12
            }
        );
        assert_eq!(&frame[header.data_start..], b"ssh bytes");
        // Only the header's bytes are needed to read it.
        assert_eq!(read_lane_header(&frame[..12]).unwrap(), header);
        assert_eq!(
            read_lane_header(&lane_frame("P", 1, b"").unwrap())
                .unwrap()
                .data_start,
            6
        );
    }

    #[test]
    fn a_bad_binary_frame_is_an_error() {
        assert!(lane_header(&"p".repeat(256), 1).is_err());
        assert_eq!(
            lane_header(&"p".repeat(255), 1).unwrap().len(),
            MAX_LANE_HEADER
        );
        assert!(read_lane_header(b"").is_err());
        assert!(read_lane_header(b"\x07789250\x00\x00\x00").is_err());
        assert!(read_lane_header(b"\x01\xff\x00\x00\x00\x00").is_err());
    }
}
