//! The carrier of direct mode in the notebook tab: the stream protocol's bytes between the
//! helper and the container's bridge, as Jupyter comm messages of a kernel of the extension's
//! own (`api/kernels/<id>/channels`, no subprotocol asked, so every Jupyter Server, 1.x and
//! 2.x, speaks its legacy binary framing to us).
//!
//! Down (to the bridge), each chunk is one `comm_msg` whose first binary buffer holds the
//! bytes. The messages of one attachment differ only in their `msg_id` (the kernel's session
//! refuses a message whose signature it has seen, and the signature covers the header), so
//! [`Attachment`] makes the head once with a fixed-width number in the `msg_id`: the content
//! script writes the message's number there and sends the head followed by the bytes,
//! nothing to decide.
//! Up, the kernel side of the comm (`crate/src/scripts/attach.py`) sends the bridge's bytes
//! the same way; [`bytes_in_binary`] and [`read_text`] say what a frame from the kernel means.
//!
//! An attachment is one comm on one WebSocket; any leg dropping ends it (the bytes in flight
//! with it), and the next one starts the link over with the helper's `Hello`. So a frame of an
//! older attachment (jupyter_server may still deliver some) is never taken for the current
//! one: each attachment has a comm id of its own.

use std::ops::Range;

use base64ct::{Base64, Encoding};

use serde::Serialize;
use serde_json::{json, Value};

use crate::kernel::shell_message as message;

/// The comm target the kernel side registers (`attach.py`).
pub const COMM_TARGET: &str = "aistudio_ssh_bridge";

/// What the content script sends for one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub comm_id: String,
    /// The `comm_open` as a text frame.
    pub comm_open: String,
    /// The `comm_close` as a text frame (the kernel side closes its bridge connection).
    pub comm_close: String,
    /// Base64 of the legacy binary frame's head for a `comm_msg` with one buffer: the bytes to
    /// carry follow it directly (its offsets do not depend on the buffer's length).
    pub data_head: String,
    /// Where in the decoded head the message's number goes: [`COUNTER_DIGITS`] lowercase hex
    /// digits, a new number for every message of the attachment.
    pub counter_at: u32,
    /// [`COUNTER_DIGITS`].
    pub counter_digits: u32,
}

/// The width of the message number in a `comm_msg`'s `msg_id`.
pub const COUNTER_DIGITS: usize = 16;

impl Attachment {
    /// The messages of one attachment: `comm_id` and `session` random per attachment (the
    /// browser's `crypto.randomUUID()`), `date` its ISO time.
    pub fn new(comm_id: &str, session: &str, date: &str) -> Self {
        let open = message(
            "comm_open",
            &format!("{comm_id}-open"),
            session,
            date,
            json!({"comm_id": comm_id, "target_name": COMM_TARGET, "data": {}}),
        );
        let close = message(
            "comm_close",
            &format!("{comm_id}-close"),
            session,
            date,
            json!({"comm_id": comm_id, "data": {}}),
        );
        let counter = format!("{:0width$x}", 0, width = COUNTER_DIGITS);
        let msg_id = format!("{comm_id}-data-{counter}");
        let data = message(
            "comm_msg",
            &msg_id,
            session,
            date,
            json!({"comm_id": comm_id, "data": {}}),
        );
        let head = binary_head(&data.to_string());
        let counter_at = find(&head, msg_id.as_bytes()).expect("the head holds its msg_id")
            + msg_id.len()
            - COUNTER_DIGITS;
        Self {
            comm_id: comm_id.to_owned(),
            comm_open: with_buffers(open, 0).to_string(),
            comm_close: with_buffers(close, 0).to_string(),
            data_head: Base64::encode_string(&head),
            counter_at: u32::try_from(counter_at).expect("a message head is small"),
            counter_digits: COUNTER_DIGITS as u32,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn with_buffers(mut message: Value, count: usize) -> Value {
    message["buffers"] = json!(vec![Value::Null; count]);
    message
}

/// jupyter_server's legacy binary framing, up to the first buffer: the part count (the JSON
/// and one buffer), each part's offset, then the JSON. All big-endian `u32`.
fn binary_head(json: &str) -> Vec<u8> {
    let parts: u32 = 2;
    let first = 4 * (parts + 1);
    let json_len = u32::try_from(json.len()).expect("a message head is small");
    let mut head = Vec::with_capacity(first as usize + json.len());
    for word in [parts, first, first + json_len] {
        head.extend_from_slice(&word.to_be_bytes());
    }
    head.extend_from_slice(json.as_bytes());
    head
}

/// What a text frame from the kernel's WebSocket means for the attachment `comm_id` (the
/// bridge's bytes come in binary frames: [`bytes_in_binary`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CarrierEvent {
    /// The kernel side closed the comm: it could not reach the bridge, or the bridge closed.
    Closed { reason: String },
    /// The kernel restarted or died: the comm is gone with it.
    KernelGone { state: String },
    /// Nothing for the carrier (the kernel's busy/idle, an older attachment's frames).
    Other,
}

/// Where the bridge's bytes are in a binary frame from the kernel: the range of its first
/// buffer, if the frame is a `comm_msg` of the attachment `comm_id` with bytes (else nothing
/// for the carrier). A range, not the bytes: the caller sends them on from where they are.
pub fn bytes_in_binary(frame: &[u8], comm_id: &str) -> Option<Range<usize>> {
    let (json, buffers) = split_binary(frame)?;
    let message = serde_json::from_slice::<Value>(json).ok()?;
    if msg_type(&message) != "comm_msg" || message["content"]["comm_id"] != comm_id {
        return None;
    }
    let bytes = buffers.first().filter(|bytes| !bytes.is_empty())?;
    // A slice of `frame`: its place there.
    let start = bytes.as_ptr() as usize - frame.as_ptr() as usize;
    Some(start..start + bytes.len())
}

/// The JSON part and the buffers of a legacy binary frame.
fn split_binary(frame: &[u8]) -> Option<(&[u8], Vec<&[u8]>)> {
    let word = |at: usize| -> Option<usize> {
        let bytes = frame.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?) as usize)
    };
    let parts = word(0)?;
    if parts == 0 || parts > 1024 {
        return None;
    }
    let mut offsets = (0..parts)
        .map(|i| word(4 + 4 * i))
        .collect::<Option<Vec<_>>>()?;
    offsets.push(frame.len());
    if offsets.windows(2).any(|pair| pair[0] > pair[1]) || offsets[0] < 4 * (parts + 1) {
        return None;
    }
    let slices: Vec<&[u8]> = offsets
        .windows(2)
        .map(|pair| &frame[pair[0]..pair[1]])
        .collect();
    let (json, buffers) = slices.split_first()?;
    Some((json, buffers.to_vec()))
}

/// Reads a text frame: a `comm_close` of the attachment, or the kernel restarting or dead.
pub fn read_text(frame: &str, comm_id: &str) -> CarrierEvent {
    let Ok(message) = serde_json::from_str::<Value>(frame) else {
        return CarrierEvent::Other;
    };
    match msg_type(&message) {
        "comm_close" if message["content"]["comm_id"] == comm_id => CarrierEvent::Closed {
            reason: message["content"]["data"]["error"]
                .as_str()
                .unwrap_or("the kernel closed the channel")
                .to_owned(),
        },
        "status" => match message["content"]["execution_state"].as_str() {
            Some(state @ ("restarting" | "autorestarting" | "dead")) => CarrierEvent::KernelGone {
                state: state.to_owned(),
            },
            _ => CarrierEvent::Other,
        },
        _ => CarrierEvent::Other,
    }
}

/// Older servers put `msg_type` only in the header.
fn msg_type(message: &Value) -> &str {
    message["msg_type"]
        .as_str()
        .or_else(|| message["header"]["msg_type"].as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as jupyter_server's `serialize_binary_message` makes it.
    fn server_frame(message: &Value, buffers: &[&[u8]]) -> Vec<u8> {
        let json = message.to_string();
        let mut parts: Vec<&[u8]> = vec![json.as_bytes()];
        parts.extend_from_slice(buffers);
        let count = parts.len() as u32;
        let mut offsets = vec![4 * (count + 1)];
        for part in &parts[..parts.len() - 1] {
            offsets.push(offsets.last().unwrap() + part.len() as u32);
        }
        let mut frame: Vec<u8> = count.to_be_bytes().to_vec();
        for offset in offsets {
            frame.extend_from_slice(&offset.to_be_bytes());
        }
        for part in parts {
            frame.extend_from_slice(part);
        }
        frame
    }

    #[test]
    fn the_data_head_and_the_bytes_make_the_frame_the_server_expects() {
        let attachment = Attachment::new("c1", "s1", "2026-11-29T00:00:00Z");
        let mut frame = Base64::decode_vec(&attachment.data_head).unwrap();
        // The content script's part: the message's number, then the bytes.
        let at = attachment.counter_at as usize;
        frame[at..at + COUNTER_DIGITS].copy_from_slice(format!("{:016x}", 0x2a).as_bytes());
        frame.extend_from_slice(b"\x01\x02ssh bytes");
        let (json, buffers) = split_binary(&frame).unwrap();
        let message: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(message["header"]["msg_id"], "c1-data-000000000000002a");
        assert_eq!(message["header"]["msg_type"], "comm_msg");
        assert_eq!(message["content"]["comm_id"], "c1");
        assert_eq!(message["channel"], "shell");
        assert_eq!(buffers, [&b"\x01\x02ssh bytes"[..]]);
        let open: Value = serde_json::from_str(&attachment.comm_open).unwrap();
        assert_eq!(open["content"]["target_name"], COMM_TARGET);
        assert_eq!(open["header"]["session"], "s1");
    }

    #[test]
    fn only_the_attachments_own_comm_messages_carry_bytes() {
        let ours =
            json!({"msg_type": "comm_msg", "header": {}, "content": {"comm_id": "c2", "data": {}}});
        let frame = server_frame(&ours, &[b"abc", b"second"]);
        let at = bytes_in_binary(&frame, "c2").unwrap();
        assert_eq!(&frame[at], b"abc");
        // An older attachment's bytes, a frame that is no frame, a buffer-less message.
        assert_eq!(bytes_in_binary(&frame, "c3"), None);
        assert_eq!(bytes_in_binary(b"\0\0\0", "c2"), None);
        assert_eq!(bytes_in_binary(&[0; 16], "c2"), None);
        assert_eq!(bytes_in_binary(&server_frame(&ours, &[]), "c2"), None);
        assert_eq!(bytes_in_binary(&server_frame(&ours, &[b""]), "c2"), None);
        // Offsets that point backwards or past the end.
        let mut broken = server_frame(&ours, &[b"abc"]);
        broken[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(bytes_in_binary(&broken, "c2"), None);
    }

    #[test]
    fn a_close_or_a_kernel_restart_ends_the_attachment() {
        let close = json!({"header": {"msg_type": "comm_close"},
            "content": {"comm_id": "c4", "data": {"error": "no bridge at /tmp/aistudio-ssh/bridge.sock"}}});
        assert_eq!(
            read_text(&close.to_string(), "c4"),
            CarrierEvent::Closed {
                reason: "no bridge at /tmp/aistudio-ssh/bridge.sock".into()
            }
        );
        assert_eq!(read_text(&close.to_string(), "c5"), CarrierEvent::Other);
        for state in ["restarting", "dead"] {
            let status = json!({"msg_type": "status", "content": {"execution_state": state}});
            assert_eq!(
                read_text(&status.to_string(), "c4"),
                CarrierEvent::KernelGone {
                    state: state.into()
                }
            );
        }
        let idle = json!({"msg_type": "status", "content": {"execution_state": "idle"}});
        assert_eq!(read_text(&idle.to_string(), "c4"), CarrierEvent::Other);
    }
}
