//! The keeper's end of the lane (see `aistudio_ssh::native_host::lane`): a WebSocket server
//! on loopback that admits the extension with the token it was given over native messaging.
//! An admitted connection is one more extension connection to the keeper's loop: text frames
//! are native messages, binary frames a link's bytes.
//!
//! One reader thread per connection owns the WebSocket; the loop writes whole frames to a
//! clone of its socket, as it writes native messages to a native host's. The reader writes
//! only to answer a ping or a close (browsers send no pings; a close ends the connection).

use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::mpsc::Sender;
use std::thread;

use aistudio_ssh::native_host::{lane, LaneToken, ToExtension};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

use super::host::{log, next_connection, Input, EXTENSION_WRITE_TIMEOUT, REQUEST_TIMEOUT};

/// Larger than any message of the extension (a link's bytes come in pieces under 1 MiB).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Listens on a free loopback port; the address to give the extension.
pub fn listen() -> io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Admits connections with the token from an extension's origin, each with its own reader.
pub fn spawn_acceptor(listener: TcpListener, token: LaneToken, tx: Sender<Input>) {
    thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(socket) = connection else { continue };
            let (token, tx) = (token.clone(), tx.clone());
            thread::spawn(move || serve(socket, &token, &tx));
        }
    });
}

// The handshake's callback returns tungstenite's own (large) refusal type.
#[allow(clippy::result_large_err)]
fn serve(socket: TcpStream, token: &LaneToken, tx: &Sender<Input>) {
    // Small frames (a keystroke's) go at once: the lane carries interactive sessions.
    let _ = socket.set_nodelay(true);
    // A client that never finishes its handshake is not kept.
    let _ = socket.set_read_timeout(Some(REQUEST_TIMEOUT));
    let Ok(writer) = socket.try_clone() else {
        return;
    };
    let check = |request: &Request, response: Response| {
        let origin = request
            .headers()
            .get("origin")
            .and_then(|value| value.to_str().ok());
        match token.admit(request.uri().path(), origin) {
            Ok(()) => Ok(response),
            Err(refusal) => {
                log(&refusal.to_string());
                let mut answer = ErrorResponse::new(Some(refusal.to_string()));
                *answer.status_mut() = tungstenite::http::StatusCode::FORBIDDEN;
                Err(answer)
            }
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let Ok(mut socket) = tungstenite::accept_hdr_with_config(socket, check, Some(config)) else {
        return;
    };
    if socket.get_ref().set_read_timeout(None).is_err()
        || writer
            .set_write_timeout(Some(EXTENSION_WRITE_TIMEOUT))
            .is_err()
    {
        return;
    }
    let connection = next_connection();
    if tx.send(Input::LaneCame(connection, writer)).is_err() {
        return;
    }
    loop {
        let input = match socket.read() {
            Ok(Message::Text(text)) => match serde_json::from_str(text.as_str()) {
                Ok(message) => Input::FromBrowser(connection, message),
                Err(error) => Input::BrowserGone(
                    connection,
                    Some(format!(
                        "the lane carried a text frame that is not JSON: {error}"
                    )),
                ),
            },
            Ok(Message::Binary(frame)) => match lane::read_lane_header(&frame) {
                Ok(header) => Input::LaneBytes(
                    connection,
                    header.project,
                    frame[header.data_start..].to_vec(),
                ),
                Err(error) => Input::BrowserGone(connection, Some(error)),
            },
            Ok(Message::Close(_)) => Input::BrowserGone(connection, None),
            Ok(_) => continue,
            Err(error) => Input::BrowserGone(connection, Some(format!("the lane broke: {error}"))),
        };
        let last = matches!(input, Input::BrowserGone(..));
        if tx.send(input).is_err() || last {
            return;
        }
    }
}

/// Writes a message to the extension on its lane: a link's bytes as a binary frame, the
/// others as JSON text.
pub fn send(mut socket: &TcpStream, message: &ToExtension) -> Result<(), String> {
    let frame = match message {
        ToExtension::Bytes {
            project,
            link,
            data,
        } => Frame::message(
            lane::lane_frame(project, *link, &data.0)?,
            OpCode::Data(Data::Binary),
            true,
        ),
        message => Frame::message(
            serde_json::to_vec(message).map_err(|error| error.to_string())?,
            OpCode::Data(Data::Text),
            true,
        ),
    };
    let mut bytes = Vec::new();
    frame
        .format(&mut bytes)
        .map_err(|error| error.to_string())?;
    // One write of the whole frame: no other frame can come between its parts.
    socket.write_all(&bytes).map_err(|error| error.to_string())
}
