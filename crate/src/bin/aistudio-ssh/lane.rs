//! The keeper's end of the lane (see `aistudio_ssh::native_host::lane`): a WebSocket server
//! on loopback that admits the extension with the token it was given over native messaging.
//! An admitted connection is one more extension connection to the keeper's loop: text frames
//! are native messages, binary frames a link's bytes.
//!
//! One reader thread per connection owns the WebSocket; a writer thread of the loop writes
//! whole frames to a clone of its socket, as it writes native messages to a native host's.
//! After the handshake the reader writes nothing (see [`ReaderSide`]).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

use aistudio_ssh::native_host::{lane, LaneToken, ToExtension};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

use super::host::{log, next_connection, Input, EXTENSION_WRITE_TIMEOUT};

/// Larger than any message of the extension (a link's bytes come in pieces under 1 MiB).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Listens on a free loopback port; the address to give the extension.
pub fn listen() -> io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Handshakes under way at once: past this a new connection is closed at once (the port is
/// open to every local user, who must not be able to exhaust the keeper's threads).
const MAX_HANDSHAKES: usize = 8;
/// Lanes open at once: one per browser profile with the extension, and a few spare.
const MAX_LANES: usize = 16;
/// A handshake is done within this, however slowly its bytes come.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(3);
/// After this many refusals, one line in a thousand: whoever knocks cannot fill the log.
const REFUSALS_LOGGED: usize = 10;

static HANDSHAKES: AtomicUsize = AtomicUsize::new(0);
static LANES: AtomicUsize = AtomicUsize::new(0);
static REFUSALS: AtomicUsize = AtomicUsize::new(0);

/// One of `counter`'s places, given back when dropped; `None` when all `max` are taken.
struct Place(&'static AtomicUsize);

impl Place {
    fn take(counter: &'static AtomicUsize, max: usize) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(counter))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Admits connections with the token from an extension's origin, each with its own reader.
pub fn spawn_acceptor(listener: TcpListener, token: LaneToken, tx: Sender<Input>) {
    thread::spawn(move || {
        for connection in listener.incoming() {
            let socket = match connection {
                Ok(socket) => socket,
                // Out of descriptors, say: not a loop at full speed.
                Err(_) => {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let Some(place) = Place::take(&HANDSHAKES, MAX_HANDSHAKES) else {
                continue;
            };
            let (token, tx) = (token.clone(), tx.clone());
            // A thread that cannot start drops its connection (and its place) with it.
            let _ = thread::Builder::new()
                .name("lane reader".into())
                .spawn(move || serve(socket, place, &token, &tx));
        }
    });
}

/// The socket as the reader's WebSocket sees it: reads within the handshake's deadline, and,
/// once the handshake is answered, no writes (the loop's writer thread alone writes frames,
/// so nothing can come between a frame's parts; browsers send no pings, and a close needs
/// no answer: the connection ends).
struct ReaderSide {
    socket: TcpStream,
    deadline: Option<Instant>,
    writes: bool,
}

impl Read for ReaderSide {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.socket.set_read_timeout(Some(left))?;
        }
        self.socket.read(buf)
    }
}

impl Write for ReaderSide {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.writes {
            self.socket.write(buf)
        } else {
            Ok(buf.len())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

// The handshake's callback returns tungstenite's own (large) refusal type.
#[allow(clippy::result_large_err)]
fn serve(socket: TcpStream, handshake: Place, token: &LaneToken, tx: &Sender<Input>) {
    // Small frames (a keystroke's) go at once: the lane carries interactive sessions.
    let _ = socket.set_nodelay(true);
    let Ok(writer) = socket.try_clone() else {
        return;
    };
    // Taken when admitted, before the handshake is answered: a lane over the limit is
    // refused, not opened and closed (which the extension would retry).
    let mut lane_place = None;
    let check = |request: &Request, response: Response| {
        let origin = request
            .headers()
            .get("origin")
            .and_then(|value| value.to_str().ok());
        let refuse = |status, text: String| {
            let mut answer = ErrorResponse::new(Some(text));
            *answer.status_mut() = status;
            Err(answer)
        };
        if let Err(refusal) = token.admit(request.uri().path(), origin) {
            let n = REFUSALS.fetch_add(1, Ordering::Relaxed) + 1;
            if n <= REFUSALS_LOGGED || n.is_multiple_of(1000) {
                log(&format!("{refusal} (refusal {n})"));
            }
            return refuse(StatusCode::FORBIDDEN, refusal.to_string());
        }
        lane_place = Place::take(&LANES, MAX_LANES);
        if lane_place.is_none() {
            log("a lane was refused: too many open");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many lanes open".into(),
            );
        }
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let side = ReaderSide {
        socket,
        deadline: Some(Instant::now() + HANDSHAKE_DEADLINE),
        writes: true,
    };
    let Ok(mut socket) = tungstenite::accept_hdr_with_config(side, check, Some(config)) else {
        return;
    };
    drop(handshake);
    let Some(_lane) = lane_place else {
        return;
    };
    let side = socket.get_mut();
    side.deadline = None;
    side.writes = false;
    if side.socket.set_read_timeout(None).is_err()
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
