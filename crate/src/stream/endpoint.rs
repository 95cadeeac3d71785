//! One end of a link: its streams, what to send next, and what happened for the application.

use std::collections::{BTreeMap, VecDeque};

use core::fmt;

use super::frame::{Ack, DecodeError, ErrorCode, Frame, Hello, ResetCode, MAX_PAYLOAD, MAX_REASON};
use super::window::{RecvBuf, Refused, SendBuf};
use super::{LinkId, Role, StreamId, Version, INITIAL_WINDOW, MAX_RESUME_ENTRIES, VERSION};

/// Finished or reset streams remembered for the peer's next `Hello`.
const MAX_TOMBSTONES: usize = 1024;

/// Tunables of an endpoint; [`Config::default`] suits SSH over a browser tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Credit per stream, in bytes: at least bandwidth x round trip (4 MiB carries 100 MB/s
    /// over a 40 ms path). Never below [`INITIAL_WINDOW`].
    pub window: u32,
    /// Bytes per stream the application may write ahead of the peer's acknowledgement.
    pub send_buffer: usize,
    /// Largest `Data` payload sent (at most [`MAX_PAYLOAD`]).
    pub max_chunk: usize,
    /// Streams held at once; the peer's `Open` past it is refused.
    pub max_streams: usize,
    /// How long a lost link may stay down before its streams are reset.
    pub grace_ms: u64,
    /// How long an acknowledgement may wait to be combined with later ones (or with data,
    /// which takes every owed one along at once).
    pub ack_delay_ms: u64,
    /// A `Ping` goes out when nothing was sent for this long (keeps every leg and the
    /// extension's worker awake).
    pub ping_interval_ms: u64,
    /// With nothing heard for this long, [`Event::LinkSilent`] says to drop the link.
    pub silence_ms: u64,
    /// While at least this many bytes are sent and not acknowledged (the link is busy: what
    /// was sent is still on its way), `Data` waits until this many are ready to go, for at
    /// most [`Config::coalesce_ms`]: every message costs each leg of the path (a kernel,
    /// a Jupyter Server) the same whatever its size, and a busy link loses no time by it.
    /// A link with little in flight (typing) sends at once. 0: never wait.
    pub coalesce_bytes: usize,
    /// The longest `Data` waits for more (see [`Config::coalesce_bytes`]).
    pub coalesce_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            window: 4 * 1024 * 1024,
            send_buffer: 4 * 1024 * 1024,
            max_chunk: 64 * 1024,
            max_streams: 256,
            grace_ms: 120_000,
            ack_delay_ms: 50,
            ping_interval_ms: 10_000,
            silence_ms: 40_000,
            // Under the helper's largest message to the extension (512 KiB of frames) with room
            // for the frames' headers, so that a batch goes as one message and not one and a
            // small rest. 8 ms is 240 KiB at 30 MB/s, and a link with this much in flight has
            // more than that queued ahead on its way.
            coalesce_bytes: 448 * 1024,
            coalesce_ms: 8,
        }
    }
}

impl Config {
    /// The same, within what the protocol allows.
    fn normalized(mut self) -> Self {
        self.window = self.window.max(INITIAL_WINDOW);
        self.send_buffer = self.send_buffer.max(1);
        self.max_chunk = self.max_chunk.clamp(1, MAX_PAYLOAD);
        // Held streams and finished ones still to report must fit one Hello.
        self.max_streams = self.max_streams.min(MAX_RESUME_ENTRIES - MAX_TOMBSTONES);
        self
    }
}

/// What happened, for the application and the code that carries the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Both `Hello`s crossed: the link carries streams again.
    LinkUp,
    /// The link broke the protocol or the peer closed it: send what
    /// [`Endpoint::poll_transmit`] still gives (an `Error`), close the link, then call
    /// [`Endpoint::link_lost`].
    LinkFailed { error: LinkError },
    /// Nothing came from the peer for [`Config::silence_ms`] (its `Hello` included): close the
    /// link and open a new one.
    LinkSilent,
    /// The link stayed down past the grace period; its streams were reset.
    LinkTimedOut,
    /// The peer opened a stream.
    StreamOpened { stream: StreamId, target: String },
    /// New bytes to [`Endpoint::read`].
    Readable { stream: StreamId },
    /// A stream whose buffer was full takes bytes again.
    Writable { stream: StreamId },
    /// The peer sends nothing more: after what [`Endpoint::read`] still gives, end of file.
    Closed { stream: StreamId },
    /// Every byte both ways arrived and was read; the stream is gone.
    Finished { stream: StreamId },
    /// The stream ended at once; unread bytes are gone.
    Reset {
        stream: StreamId,
        code: ResetCode,
        reason: String,
    },
}

/// Why a link is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkError {
    /// The peer speaks a major version this end does not.
    UnsupportedVersion { theirs: Version },
    /// The peer's `Hello` names another link than this endpoint's.
    LinkMismatch { ours: LinkId, theirs: LinkId },
    /// A frame that is not allowed where it came.
    Protocol { detail: String },
    /// Bytes that are not frames.
    Decode(DecodeError),
    /// The peer closed the link with an `Error` frame.
    Peer { code: ErrorCode, reason: String },
}

impl LinkError {
    fn code(&self) -> ErrorCode {
        match self {
            // handle_decode_error turns a decoded UnsupportedVersion into this variant.
            Self::UnsupportedVersion { .. } => ErrorCode::UNSUPPORTED_VERSION,
            Self::LinkMismatch { .. } => ErrorCode::LINK_MISMATCH,
            Self::Protocol { .. } | Self::Decode(_) => ErrorCode::PROTOCOL,
            Self::Peer { code, .. } => *code,
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedVersion { theirs } => {
                write!(f, "{}", DecodeError::UnsupportedVersion { theirs: *theirs })
            }
            Self::LinkMismatch { ours, theirs } => write!(
                f,
                "the other end resumes link {theirs}, this end holds link {ours}"
            ),
            Self::Protocol { detail } => write!(f, "stream protocol broken: {detail}"),
            Self::Decode(error) => write!(f, "stream protocol broken: {error}"),
            Self::Peer { reason, .. } => write!(f, "the other end closed the link: {reason}"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Why a stream call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// No such stream here (never opened, finished or reset).
    Unknown { stream: StreamId },
    /// Writing after [`Endpoint::close`].
    WriteAfterClose { stream: StreamId },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { stream } => write!(f, "{stream} is not open (finished or reset)"),
            Self::WriteAfterClose { stream } => write!(f, "{stream} was closed for writing"),
        }
    }
}

impl std::error::Error for StreamError {}

/// Counters of one stream, for tests and the popup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// What it connects to.
    pub target: String,
    /// Bytes the application wrote.
    pub written: u64,
    /// Highest offset sent on this link.
    pub sent: u64,
    /// Bytes the peer acknowledged.
    pub acked: u64,
    /// The peer's credit: sending stops below this offset.
    pub peer_limit: u64,
    /// Bytes received without a gap.
    pub received: u64,
    /// Bytes the application read.
    pub read: u64,
    /// Bytes received and not yet read, past gaps included.
    pub buffered: usize,
    /// The peer has spoken of the stream (an `Ack`, data, a `Close`, or its `Hello`): it
    /// took the `Open`. The helper waits for this before telling `ssh` it is connected, so
    /// a target the bridge refuses is an error `ssh` can show.
    pub confirmed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No link.
    Down,
    /// A link, before the peer's `Hello`.
    Handshake,
    /// Both `Hello`s crossed.
    Up,
    /// The link broke; only the `Error` frame goes out.
    Failed,
}

#[derive(Debug, Clone)]
enum Tombstone {
    /// Finished: what the peer may still need is that its `Close` arrived.
    Done { final_offset: u64 },
    /// Reset here: said again if the peer still holds the stream.
    Reset { code: ResetCode, reason: String },
}

#[derive(Debug)]
struct Stream {
    target: String,
    /// The peer knows the stream (we heard of it from the peer).
    confirmed: bool,
    /// The `Open` went out on this link (always true for the peer's streams).
    open_sent: bool,
    send: SendBuf,
    peer_limit: u64,
    close_requested: bool,
    close_sent: bool,
    fin_acked: bool,
    write_blocked: bool,
    recv: RecvBuf,
    peer_final: Option<u64>,
    readable_reported: bool,
    closed_reported: bool,
    /// What the last `Ack` (or `Hello` entry) told the peer; `None` before the first.
    advertised: Option<(u64, u64, bool)>,
    /// Since when an acknowledgement is owed.
    ack_owed_since: Option<u64>,
}

impl Stream {
    fn new(target: String, local: bool, window: u32) -> Self {
        Self {
            target,
            confirmed: !local,
            open_sent: !local,
            send: SendBuf::default(),
            peer_limit: u64::from(INITIAL_WINDOW),
            close_requested: false,
            close_sent: false,
            fin_acked: false,
            write_blocked: false,
            recv: RecvBuf::new(window),
            peer_final: None,
            readable_reported: false,
            closed_reported: false,
            advertised: None,
            ack_owed_since: None,
        }
    }

    fn fin_received(&self) -> bool {
        self.peer_final == Some(self.recv.received())
    }

    fn ack(&self, id: StreamId) -> Ack {
        let received = self.recv.received();
        Ack {
            stream: id,
            received,
            window: u32::try_from(self.recv.limit() - received).unwrap_or(u32::MAX),
            fin: self.fin_received(),
        }
    }

    fn sendable(&self) -> bool {
        self.open_sent && self.send.sent() < self.send.written().min(self.peer_limit)
    }

    fn done(&self) -> bool {
        self.fin_acked
            && self.fin_received()
            && self.recv.readable() == 0
            && self.advertised.is_some_and(|(_, _, fin)| fin)
    }
}

/// One end of a link, without I/O: feed it frames and time, send what it gives.
///
/// The carrier loop: on bytes from the link, [`crate::stream::Decoder`] then
/// [`Endpoint::handle`] per frame; then [`Endpoint::poll_transmit`] until `None`, sending each
/// frame; [`Endpoint::poll_event`] until `None`; and again at [`Endpoint::poll_timeout`].
#[derive(Debug)]
pub struct Endpoint {
    role: Role,
    config: Config,
    link_id: Option<LinkId>,
    phase: Phase,
    /// Since when the link has been down (grace counts from here).
    down_since: Option<u64>,
    timed_out: bool,
    hello_due: bool,
    error_due: Option<Frame>,
    control: VecDeque<Frame>,
    streams: BTreeMap<StreamId, Stream>,
    tombstones: BTreeMap<StreamId, Tombstone>,
    tombstone_order: VecDeque<StreamId>,
    next_stream: u32,
    highest_peer_stream: u32,
    /// The stream that sent data last, for round robin.
    last_data: StreamId,
    events: VecDeque<Event>,
    last_sent_ms: u64,
    last_heard_ms: u64,
    silence_reported: bool,
    next_nonce: u64,
    ping_in_flight: Option<(u64, u64)>,
    rtt_ms: Option<u64>,
    /// Since when ready `Data` waits for more (see [`Config::coalesce_bytes`]).
    coalescing_since: Option<u64>,
    /// Ready `Data` goes out until none is left (a batch is not cut where it shrinks).
    flushing: bool,
}

impl Endpoint {
    /// An initiator (the helper) of link `link_id` (16 random bytes), with no link yet.
    pub fn initiator(link_id: LinkId, config: Config, now_ms: u64) -> Self {
        Self::new(Role::Initiator, Some(link_id), config, now_ms)
    }

    /// An acceptor (the bridge): it takes the link id of the first `Hello` it gets.
    pub fn acceptor(config: Config, now_ms: u64) -> Self {
        Self::new(Role::Acceptor, None, config, now_ms)
    }

    fn new(role: Role, link_id: Option<LinkId>, config: Config, now_ms: u64) -> Self {
        Self {
            role,
            config: config.normalized(),
            link_id,
            phase: Phase::Down,
            down_since: Some(now_ms),
            timed_out: false,
            hello_due: false,
            error_due: None,
            control: VecDeque::new(),
            streams: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            tombstone_order: VecDeque::new(),
            next_stream: role.first_stream(),
            highest_peer_stream: 0,
            last_data: StreamId(0),
            events: VecDeque::new(),
            last_sent_ms: now_ms,
            last_heard_ms: now_ms,
            silence_reported: false,
            next_nonce: 1,
            ping_in_flight: None,
            rtt_ms: None,
            coalescing_since: None,
            flushing: false,
        }
    }

    /// The link id, once known.
    pub fn link_id(&self) -> Option<LinkId> {
        self.link_id
    }

    /// Whether both `Hello`s crossed on the current link.
    pub fn is_up(&self) -> bool {
        self.phase == Phase::Up
    }

    /// The last round trip a `Ping` measured.
    pub fn rtt_ms(&self) -> Option<u64> {
        self.rtt_ms
    }

    /// Streams held.
    pub fn streams(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.streams.keys().copied()
    }

    /// Counters of a stream, or `None` if it is not held.
    pub fn stream_info(&self, id: StreamId) -> Option<StreamInfo> {
        self.streams.get(&id).map(|s| StreamInfo {
            target: s.target.clone(),
            written: s.send.written(),
            sent: s.send.sent(),
            acked: s.send.acked(),
            peer_limit: s.peer_limit,
            received: s.recv.received(),
            read: s.recv.read_offset(),
            buffered: s.recv.buffered(),
            confirmed: s.confirmed,
        })
    }

    /// Opens a stream to `target` (such as [`super::TARGET_SSH`]); it may be written at once
    /// and goes out when the link is up.
    pub fn open_stream(&mut self, target: &str) -> StreamId {
        let id = StreamId(self.next_stream);
        self.next_stream += 2;
        let target = truncate(target, super::MAX_TARGET);
        self.streams
            .insert(id, Stream::new(target, true, self.config.window));
        id
    }

    /// Takes up to the free room of the stream's send buffer from `bytes`; returns how many.
    /// When that is fewer than given, [`Event::Writable`] says when to write again.
    ///
    /// # Errors
    /// The stream is not held, or was closed for writing.
    pub fn write(&mut self, id: StreamId, bytes: &[u8]) -> Result<usize, StreamError> {
        let room = self.config.send_buffer;
        let s = self.stream_mut(id)?;
        if s.close_requested {
            return Err(StreamError::WriteAfterClose { stream: id });
        }
        let n = bytes.len().min(room.saturating_sub(s.send.held()));
        s.send.push(&bytes[..n]);
        if n < bytes.len() {
            s.write_blocked = true;
        }
        Ok(n)
    }

    /// Appends every byte received in order and not yet read to `out`; returns how many.
    ///
    /// # Errors
    /// The stream is not held.
    pub fn read(&mut self, id: StreamId, out: &mut Vec<u8>) -> Result<usize, StreamError> {
        let s = self.stream_mut(id)?;
        let n = s.recv.read_into(out);
        s.readable_reported = false;
        self.finish_if_done(id);
        Ok(n)
    }

    /// Sends nothing more on the stream after what was written (half-close).
    ///
    /// # Errors
    /// The stream is not held.
    pub fn close(&mut self, id: StreamId) -> Result<(), StreamError> {
        self.stream_mut(id)?.close_requested = true;
        Ok(())
    }

    /// Ends the stream at once, both ways, telling the peer why.
    ///
    /// # Errors
    /// The stream is not held.
    pub fn reset(
        &mut self,
        id: StreamId,
        code: ResetCode,
        reason: &str,
    ) -> Result<(), StreamError> {
        self.stream_mut(id)?;
        self.drop_stream(id, code, truncate(reason, MAX_REASON), true);
        Ok(())
    }

    fn stream_mut(&mut self, id: StreamId) -> Result<&mut Stream, StreamError> {
        self.streams
            .get_mut(&id)
            .ok_or(StreamError::Unknown { stream: id })
    }

    /// A link is there (new or again): the `Hello` goes out through `poll_transmit`, the
    /// initiator's at once, the acceptor's in answer.
    pub fn link_up(&mut self, now_ms: u64) {
        if self.phase != Phase::Down {
            self.link_lost(now_ms);
        }
        self.phase = Phase::Handshake;
        self.hello_due = self.role == Role::Initiator;
        self.last_heard_ms = now_ms;
        self.last_sent_ms = now_ms;
        self.silence_reported = false;
    }

    /// The link is gone. Every unacknowledged byte stays for the next link; streams wait
    /// for it up to the grace period.
    pub fn link_lost(&mut self, now_ms: u64) {
        self.phase = Phase::Down;
        self.down_since.get_or_insert(now_ms);
        self.hello_due = false;
        self.error_due = None;
        self.control.clear();
        self.ping_in_flight = None;
    }

    /// Bytes from the link were not a frame: the link is closed with an `Error` saying why.
    pub fn handle_decode_error(&mut self, error: DecodeError, now_ms: u64) {
        let error = match error {
            DecodeError::UnsupportedVersion { theirs } => LinkError::UnsupportedVersion { theirs },
            other => LinkError::Decode(other),
        };
        self.fail(error, now_ms);
    }

    fn fail(&mut self, error: LinkError, now_ms: u64) {
        if matches!(self.phase, Phase::Down | Phase::Failed) {
            return;
        }
        if !matches!(error, LinkError::Peer { .. }) {
            self.error_due = Some(Frame::Error {
                code: error.code(),
                reason: truncate(&error.to_string(), MAX_REASON),
            });
        }
        self.phase = Phase::Failed;
        self.down_since.get_or_insert(now_ms);
        self.control.clear();
        self.events.push_back(Event::LinkFailed { error });
    }

    /// Takes in one frame from the peer.
    pub fn handle(&mut self, frame: Frame, now_ms: u64) {
        self.handle_timeout(now_ms);
        if matches!(self.phase, Phase::Down | Phase::Failed) {
            return;
        }
        self.last_heard_ms = now_ms;
        self.silence_reported = false;
        match (self.phase, frame) {
            (_, Frame::Error { code, reason }) => {
                self.fail(LinkError::Peer { code, reason }, now_ms)
            }
            (Phase::Handshake, Frame::Hello(hello)) => self.on_hello(hello, now_ms),
            (Phase::Handshake, other) => self.fail(
                LinkError::Protocol {
                    detail: format!("a {} frame came before Hello", <&str>::from(&other)),
                },
                now_ms,
            ),
            (_, Frame::Hello(_)) => self.fail(
                LinkError::Protocol {
                    detail: "a second Hello on one link".into(),
                },
                now_ms,
            ),
            (_, Frame::Ping { nonce }) => self.control.push_back(Frame::Pong { nonce }),
            (_, Frame::Pong { nonce }) => {
                if let Some((sent_nonce, sent_at)) = self.ping_in_flight {
                    if sent_nonce == nonce {
                        self.rtt_ms = Some(now_ms.saturating_sub(sent_at));
                        self.ping_in_flight = None;
                    }
                }
            }
            (_, Frame::Open { stream, target }) => self.on_open(stream, target, now_ms),
            (
                _,
                Frame::Data {
                    stream,
                    offset,
                    bytes,
                },
            ) => self.on_data(stream, offset, &bytes),
            (_, Frame::Ack(ack)) => self.on_ack(ack),
            (
                _,
                Frame::Close {
                    stream,
                    final_offset,
                },
            ) => self.on_close(stream, final_offset),
            (
                _,
                Frame::Reset {
                    stream,
                    code,
                    reason,
                },
            ) => {
                if self.streams.remove(&stream).is_some() {
                    self.events.push_back(Event::Reset {
                        stream,
                        code,
                        reason,
                    });
                }
            }
        }
    }

    fn on_hello(&mut self, hello: Hello, now_ms: u64) {
        if hello.version.major != VERSION.major {
            return self.fail(
                LinkError::UnsupportedVersion {
                    theirs: hello.version,
                },
                now_ms,
            );
        }
        match self.link_id {
            Some(ours) if ours != hello.link_id => {
                return self.fail(
                    LinkError::LinkMismatch {
                        ours,
                        theirs: hello.link_id,
                    },
                    now_ms,
                )
            }
            Some(_) => {}
            None => self.link_id = Some(hello.link_id),
        }
        self.phase = Phase::Up;
        self.down_since = None;
        self.timed_out = false;
        self.hello_due |= self.role == Role::Acceptor;
        let listed: BTreeMap<StreamId, Ack> =
            hello.resume.iter().map(|ack| (ack.stream, *ack)).collect();

        let held: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in held {
            let Some(s) = self.streams.get_mut(&id) else {
                continue;
            };
            if let Some(ack) = listed.get(&id) {
                s.confirmed = true;
                s.open_sent = true;
                if !s.send.acknowledge(ack.received) {
                    self.protocol_reset(id, "its Hello acknowledges bytes never sent");
                    continue;
                }
                s.peer_limit = s.peer_limit.max(ack.received + u64::from(ack.window));
                if ack.fin && s.close_requested && ack.received == s.send.written() {
                    s.fin_acked = true;
                }
                s.send.rewind();
                s.close_sent = s.fin_acked;
                // Its entry may carry the last thing this end waited for.
                self.finish_if_done(id);
            } else if !s.confirmed {
                // We opened it and never heard back: the Open itself may be what was lost.
                s.open_sent = false;
                s.send.rewind();
                s.close_sent = false;
            } else if s.close_requested && s.fin_received() {
                // The peer forgot it after it had everything, Close included.
                s.send.acknowledge(s.send.written());
                s.fin_acked = true;
                s.advertised = Some((s.recv.received(), s.recv.limit(), true));
                self.finish_if_done(id);
            } else {
                self.drop_stream(
                    id,
                    ResetCode::GONE,
                    "the other end dropped this stream while the link was down".into(),
                    false,
                );
                self.events.push_back(Event::Reset {
                    stream: id,
                    code: ResetCode::GONE,
                    reason: "the other end dropped this stream while the link was down".into(),
                });
            }
        }
        for id in listed.keys() {
            if let Some(Tombstone::Reset { code, reason }) = self.tombstones.get(id) {
                self.control.push_back(Frame::Reset {
                    stream: *id,
                    code: *code,
                    reason: reason.clone(),
                });
            }
        }
        // A tombstone the peer no longer lists has nothing left to tell it.
        self.tombstones.retain(|id, _| listed.contains_key(id));
        let tombstones = &self.tombstones;
        self.tombstone_order
            .retain(|id| tombstones.contains_key(id));
        self.last_sent_ms = now_ms;
        self.events.push_back(Event::LinkUp);
    }

    fn on_open(&mut self, id: StreamId, target: String, now_ms: u64) {
        if self.role.opens(id) {
            return self.fail(
                LinkError::Protocol {
                    detail: format!("the other end opened {id}, an id of this end"),
                },
                now_ms,
            );
        }
        if self.streams.contains_key(&id) {
            return; // sent again after a resume
        }
        if let Some(Tombstone::Reset { code, reason }) = self.tombstones.get(&id) {
            self.control.push_back(Frame::Reset {
                stream: id,
                code: *code,
                reason: reason.clone(),
            });
            return;
        }
        if id.0 <= self.highest_peer_stream {
            return self.control.push_back(Frame::Reset {
                stream: id,
                code: ResetCode::GONE,
                reason: format!("{id} already ended here"),
            });
        }
        self.highest_peer_stream = id.0;
        if self.streams.len() >= self.config.max_streams {
            let reason = format!(
                "this end already holds {} streams, its limit",
                self.streams.len()
            );
            self.remember(
                id,
                Tombstone::Reset {
                    code: ResetCode::TOO_MANY_STREAMS,
                    reason: reason.clone(),
                },
            );
            return self.control.push_back(Frame::Reset {
                stream: id,
                code: ResetCode::TOO_MANY_STREAMS,
                reason,
            });
        }
        self.streams
            .insert(id, Stream::new(target.clone(), false, self.config.window));
        self.events
            .push_back(Event::StreamOpened { stream: id, target });
    }

    fn on_data(&mut self, id: StreamId, offset: u64, bytes: &[u8]) {
        let Some(s) = self.streams.get_mut(&id) else {
            return; // finished or reset here; a copy sent before the peer knew
        };
        s.confirmed = true;
        match s.recv.insert(offset, bytes, s.peer_final) {
            Ok(0) => {}
            Ok(_) => {
                if !s.readable_reported {
                    s.readable_reported = true;
                    self.events.push_back(Event::Readable { stream: id });
                }
                self.report_closed(id);
            }
            Err(Refused::BeyondWindow) => {
                self.drop_stream(
                    id,
                    ResetCode::FLOW_CONTROL,
                    "data past the window this end gave".into(),
                    true,
                );
                self.events.push_back(Event::Reset {
                    stream: id,
                    code: ResetCode::FLOW_CONTROL,
                    reason: "the other end sent past the window".into(),
                });
            }
            Err(Refused::BeyondFinal) => self.protocol_reset(id, "data past its Close"),
        }
    }

    fn on_ack(&mut self, ack: Ack) {
        let config_room = self.config.send_buffer;
        let Some(s) = self.streams.get_mut(&ack.stream) else {
            return;
        };
        s.confirmed = true;
        if !s.send.acknowledge(ack.received) {
            return self.protocol_reset(ack.stream, "it acknowledges bytes never sent");
        }
        s.peer_limit = s.peer_limit.max(ack.received + u64::from(ack.window));
        if ack.fin && s.close_requested && ack.received == s.send.written() {
            s.fin_acked = true;
        }
        if s.write_blocked && s.send.held() < config_room {
            s.write_blocked = false;
            self.events
                .push_back(Event::Writable { stream: ack.stream });
        }
        self.finish_if_done(ack.stream);
    }

    fn on_close(&mut self, id: StreamId, final_offset: u64) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.confirmed = true;
        let consistent = s.peer_final.is_none_or(|known| known == final_offset)
            && final_offset >= s.recv.highest()
            && final_offset <= s.recv.limit();
        if !consistent {
            return self.protocol_reset(id, "its Close contradicts the data it sent");
        }
        s.peer_final = Some(final_offset);
        self.report_closed(id);
    }

    fn report_closed(&mut self, id: StreamId) {
        if let Some(s) = self.streams.get_mut(&id) {
            if s.fin_received() && !s.closed_reported {
                s.closed_reported = true;
                self.events.push_back(Event::Closed { stream: id });
            }
        }
    }

    /// Resets a stream the peer misused.
    fn protocol_reset(&mut self, id: StreamId, what: &str) {
        let reason = format!("the other end broke the protocol on {id}: {what}");
        self.drop_stream(id, ResetCode::PROTOCOL, reason.clone(), true);
        self.events.push_back(Event::Reset {
            stream: id,
            code: ResetCode::PROTOCOL,
            reason,
        });
    }

    /// Forgets a stream as reset, tells the peer if `tell` and the link is up.
    fn drop_stream(&mut self, id: StreamId, code: ResetCode, reason: String, tell: bool) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        // An Open on its way is enough for the peer to hold the stream.
        if tell && (s.confirmed || s.open_sent) && self.phase == Phase::Up {
            self.control.push_back(Frame::Reset {
                stream: id,
                code,
                reason: reason.clone(),
            });
        }
        self.remember(id, Tombstone::Reset { code, reason });
    }

    fn finish_if_done(&mut self, id: StreamId) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        if s.done() {
            let final_offset = s.recv.received();
            self.streams.remove(&id);
            self.remember(id, Tombstone::Done { final_offset });
            self.events.push_back(Event::Finished { stream: id });
        }
    }

    fn remember(&mut self, id: StreamId, tombstone: Tombstone) {
        if self.tombstones.insert(id, tombstone).is_none() {
            self.tombstone_order.push_back(id);
        }
        while self.tombstone_order.len() > MAX_TOMBSTONES {
            if let Some(old) = self.tombstone_order.pop_front() {
                self.tombstones.remove(&old);
            }
        }
    }

    /// Runs the clocks: the grace period of a lost link, and the silence of an up one.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if let Some(since) = self.down_since {
            if self.phase != Phase::Up && now_ms >= since.saturating_add(self.config.grace_ms) {
                let reason = format!(
                    "the link to the other end was down for more than {} s",
                    self.config.grace_ms / 1000
                );
                let ids: Vec<StreamId> = self.streams.keys().copied().collect();
                for id in ids {
                    self.drop_stream(id, ResetCode::LINK_TIMEOUT, reason.clone(), false);
                    self.events.push_back(Event::Reset {
                        stream: id,
                        code: ResetCode::LINK_TIMEOUT,
                        reason: reason.clone(),
                    });
                }
                if !self.timed_out {
                    self.timed_out = true;
                    self.events.push_back(Event::LinkTimedOut);
                }
                // Streams opened from now on get a grace period of their own.
                self.down_since = Some(now_ms);
            }
        }
        // A peer that never answers our Hello is as silent as one that stopped talking.
        if matches!(self.phase, Phase::Up | Phase::Handshake)
            && !self.silence_reported
            && now_ms >= self.last_heard_ms.saturating_add(self.config.silence_ms)
        {
            self.silence_reported = true;
            self.events.push_back(Event::LinkSilent);
        }
    }

    /// When [`Endpoint::poll_transmit`] or [`Endpoint::handle_timeout`] next has something to
    /// do with no frame arriving: a delayed acknowledgement, a ping, the grace period's end.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut at = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        match self.phase {
            Phase::Up => {
                at(self
                    .last_sent_ms
                    .saturating_add(self.config.ping_interval_ms));
                if !self.silence_reported {
                    at(self.last_heard_ms.saturating_add(self.config.silence_ms));
                }
                for s in self.streams.values() {
                    if let Some(since) = s.ack_owed_since {
                        at(since.saturating_add(self.config.ack_delay_ms));
                    }
                }
                if let Some(since) = self.coalescing_since {
                    at(since.saturating_add(self.config.coalesce_ms));
                }
            }
            Phase::Down | Phase::Handshake | Phase::Failed => {
                if let Some(since) = self.down_since {
                    at(since.saturating_add(self.config.grace_ms));
                }
                if self.phase == Phase::Handshake && !self.silence_reported {
                    at(self.last_heard_ms.saturating_add(self.config.silence_ms));
                }
            }
        }
        next
    }

    /// What happened, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next frame to send on the link, or `None` for now: control frames, then owed
    /// acknowledgements, then data within the peer's credit (streams in turn), then closes,
    /// then a ping when the link was idle.
    pub fn poll_transmit(&mut self, now_ms: u64) -> Option<Frame> {
        self.handle_timeout(now_ms);
        let frame = self.next_frame(now_ms)?;
        self.last_sent_ms = now_ms;
        Some(frame)
    }

    fn next_frame(&mut self, now_ms: u64) -> Option<Frame> {
        match self.phase {
            Phase::Down => return None,
            Phase::Failed => return self.error_due.take(),
            Phase::Handshake if !self.hello_due => return None,
            Phase::Handshake | Phase::Up => {}
        }
        if self.hello_due {
            self.hello_due = false;
            return Some(Frame::Hello(self.hello()));
        }
        if let Some(frame) = self.control.pop_front() {
            return Some(frame);
        }
        if let Some((&id, s)) = self.streams.iter_mut().find(|(_, s)| !s.open_sent) {
            s.open_sent = true;
            return Some(Frame::Open {
                stream: id,
                target: s.target.clone(),
            });
        }
        let holding = self.holds_data(now_ms);
        if let Some(frame) = self.owed_ack(now_ms, holding) {
            return Some(frame);
        }
        if !holding {
            if let Some(frame) = self.next_data() {
                return Some(frame);
            }
            self.flushing = false;
        }
        if let Some((&id, s)) = self.streams.iter_mut().find(|(_, s)| {
            s.open_sent && s.close_requested && !s.close_sent && s.send.sent() == s.send.written()
        }) {
            s.close_sent = true;
            return Some(Frame::Close {
                stream: id,
                final_offset: s.send.written(),
            });
        }
        if now_ms
            >= self
                .last_sent_ms
                .saturating_add(self.config.ping_interval_ms)
        {
            let nonce = self.next_nonce;
            self.next_nonce += 1;
            self.ping_in_flight.get_or_insert((nonce, now_ms));
            return Some(Frame::Ping { nonce });
        }
        None
    }

    fn hello(&mut self) -> Hello {
        let mut resume = Vec::new();
        for (&id, s) in &mut self.streams {
            let ack = s.ack(id);
            s.advertised = Some((ack.received, s.recv.limit(), ack.fin));
            s.ack_owed_since = None;
            resume.push(ack);
        }
        for (&id, tombstone) in &self.tombstones {
            if let Tombstone::Done { final_offset } = tombstone {
                resume.push(Ack {
                    stream: id,
                    received: *final_offset,
                    window: 0,
                    fin: true,
                });
            }
        }
        resume.truncate(MAX_RESUME_ENTRIES);
        Hello {
            version: VERSION,
            // An acceptor sends its Hello only after adopting the initiator's link id.
            link_id: self.link_id.unwrap_or(LinkId([0; 16])),
            resume,
        }
    }

    /// Whether ready `Data` waits for more now (see [`Config::coalesce_bytes`]); once it
    /// stops waiting, everything ready goes.
    fn holds_data(&mut self, now_ms: u64) -> bool {
        if self.config.coalesce_ms == 0 || self.flushing {
            return false;
        }
        let (mut ready, mut in_flight, mut closing) = (0, 0, false);
        for s in self.streams.values().filter(|s| s.sendable()) {
            ready += s.send.written().min(s.peer_limit) - s.send.sent();
            closing |= s.close_requested;
        }
        for s in self.streams.values() {
            in_flight += s.send.sent() - s.send.acked();
        }
        if ready == 0 {
            self.coalescing_since = None;
            return false;
        }
        let batch = self.config.coalesce_bytes as u64;
        let since = *self.coalescing_since.get_or_insert(now_ms);
        // The last bytes of a stream have no more coming to wait for.
        if ready >= batch
            || in_flight < batch
            || closing
            || now_ms >= since.saturating_add(self.config.coalesce_ms)
        {
            self.coalescing_since = None;
            self.flushing = true;
            return false;
        }
        true
    }

    fn owed_ack(&mut self, now_ms: u64, holding: bool) -> Option<Frame> {
        let quarter = u64::from(self.config.window / 4);
        // Data goes out now anyway: owed Acks ride along in the same write. A separate small
        // write just before data makes a TCP leg without nodelay hold the data back until
        // the other side's delayed ACK (jupyter_server's kernel WebSocket is one).
        let sending = !holding && self.streams.values().any(|s| s.sendable());
        let delay = if sending { 0 } else { self.config.ack_delay_ms };
        let mut owed = None;
        for (&id, s) in &mut self.streams {
            let ack = s.ack(id);
            let limit = s.recv.limit();
            let urgent = match s.advertised {
                None => true,
                Some((received, adv_limit, fin)) => {
                    (ack.fin && !fin)
                        || limit - adv_limit >= quarter
                        || ack.received - received >= quarter
                }
            };
            let changed = s.advertised != Some((ack.received, limit, ack.fin));
            if !changed {
                s.ack_owed_since = None;
                continue;
            }
            let since = *s.ack_owed_since.get_or_insert(now_ms);
            if urgent || now_ms >= since.saturating_add(delay) {
                s.advertised = Some((ack.received, limit, ack.fin));
                s.ack_owed_since = None;
                owed = Some(ack);
                break;
            }
        }
        let ack = owed?;
        self.finish_if_done(ack.stream);
        Some(Frame::Ack(ack))
    }

    fn next_data(&mut self) -> Option<Frame> {
        let after = self.last_data;
        let id = self
            .streams
            .range(StreamId(after.0.saturating_add(1))..)
            .chain(self.streams.range(..=after))
            .find(|(_, s)| s.sendable())
            .map(|(&id, _)| id)?;
        let max_chunk = self.config.max_chunk;
        let s = self.streams.get_mut(&id)?;
        let (offset, bytes) = s.send.next_chunk(s.peer_limit, max_chunk)?;
        self.last_data = id;
        Some(Frame::Data {
            stream: id,
            offset,
            bytes,
        })
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
