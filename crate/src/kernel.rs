//! Jupyter kernel messages over the server's WebSocket (`api/kernels/<id>/channels`, the
//! JSON protocol every Jupyter Server speaks when no subprotocol is asked for): the
//! `execute_request` the extension sends and what it reads back for that request.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Messaging protocol version we speak (5.0 and later understand these fields).
const PROTOCOL_VERSION: &str = "5.3";

/// A message of ours on the shell channel (no buffers: the caller adds them if any).
pub(crate) fn shell_message(
    msg_type: &str,
    msg_id: &str,
    session: &str,
    date: &str,
    content: Value,
) -> Value {
    json!({
        "header": {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": "aistudio-ssh",
            "session": session,
            "date": date,
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": "shell",
    })
}

/// An `execute_request` on the shell channel. `msg_id` and `session` come from the caller
/// (random in the browser); the code runs without history and without stdin.
pub fn execute_request(msg_id: &str, session: &str, code: &str, date: &str) -> Value {
    let mut message = shell_message(
        "execute_request",
        msg_id,
        session,
        date,
        json!({
            "code": code,
            "silent": false,
            "store_history": false,
            "user_expressions": {},
            "allow_stdin": false,
            "stop_on_error": true,
        }),
    );
    message["buffers"] = json!([]);
    message
}

/// What a message from the kernel means for a request we sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum KernelEvent {
    /// Output on stdout or stderr.
    Stream { name: String, text: String },
    /// The request failed in the kernel (for `%%bash`, IPython 8 raises on a non-zero exit).
    Error { ename: String, evalue: String },
    /// The shell's answer: `status` is `ok`, `error` or `aborted`.
    Reply { status: String },
    /// The kernel went idle after the request: all its output has been sent. Output and
    /// the reply travel on different channels, so a request is over when both arrived.
    Idle,
    /// Not about our request, or nothing we act on.
    Other,
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(default)]
    parent_header: Value,
    #[serde(default)]
    header: Value,
    #[serde(default)]
    msg_type: Option<String>,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    channel: Option<String>,
}

fn text(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Reads one WebSocket text frame from the kernel as it concerns `request_id`.
pub fn read_kernel_message(frame: &str, request_id: &str) -> KernelEvent {
    let Ok(message) = serde_json::from_str::<Incoming>(frame) else {
        return KernelEvent::Other;
    };
    if message.parent_header.get("msg_id").and_then(Value::as_str) != Some(request_id) {
        return KernelEvent::Other;
    }
    // Older servers put msg_type only in the header.
    let msg_type = message
        .msg_type
        .clone()
        .unwrap_or_else(|| text(&message.header, "msg_type"));
    let content = &message.content;
    match (message.channel.as_deref(), msg_type.as_str()) {
        (_, "stream") => KernelEvent::Stream {
            name: text(content, "name"),
            text: text(content, "text"),
        },
        (_, "error") => KernelEvent::Error {
            ename: text(content, "ename"),
            evalue: text(content, "evalue"),
        },
        (Some("shell") | None, "execute_reply") => KernelEvent::Reply {
            status: text(content, "status"),
        },
        (_, "status") if text(content, "execution_state") == "idle" => KernelEvent::Idle,
        _ => KernelEvent::Other,
    }
}
