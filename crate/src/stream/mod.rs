//! The stream protocol of direct mode: many byte streams over one link that may drop at any
//! moment, resumed with no byte lost or repeated (sans-IO: frames in, frames out, time given).
//!
//! # Where it runs
//!
//! A byte of `ssh` goes `ProxyCommand aistudio-ssh proxy` -> the helper (the native messaging
//! host) -> the extension's worker -> the content script of the notebook tab -> a Jupyter
//! comm of the extension's own kernel -> the bridge in the container -> sshd. The protocol
//! runs end to end between two [`Endpoint`]s; everything between them forwards whole frames:
//!
//! - the **helper** (native, Rust: this module) is the [`Role::Initiator`]: it chooses the
//!   link id and opens the odd streams, one per `proxy` connection (target `ssh`);
//! - the **bridge** (Python 3.7 in the container) is the [`Role::Acceptor`]; it speaks this
//!   same format, and a test runs it against this endpoint;
//! - the **extension** (wasm) terminates nothing: it splits the native port's bytes into
//!   frames with [`Decoder`] so each comm message carries whole frames (binary buffers), reads
//!   `Hello` and `Error` frames for its status, and on any leg dropping tells both ends the
//!   link is lost ([`Endpoint::link_lost`]) and, once every leg is back, up again.
//!
//! A link is one such path from end to end; it is lost whenever any leg drops (a page
//! reload, the platform cutting the WebSocket about every 30 s, a worker restart). Each end
//! keeps every byte the other has not acknowledged, so on the next link the two `Hello`s
//! say how far each stream got and sending resumes from there.
//!
//! # Frames
//!
//! Every frame is `type: u8 | body_len: u32 | body`, integers little-endian:
//!
//! | type | frame | body |
//! |---|---|---|
//! | 0x01 | `Hello` | magic `ASSH`, major u8, minor u8, link id \[16\], count u16, count x ack entry |
//! | 0x02 | `Error` | code u16, reason len u16, reason (UTF-8, <= 1024) |
//! | 0x03 | `Open` | stream u32, target len u8, target (UTF-8, such as `ssh`) |
//! | 0x04 | `Data` | stream u32, offset u64, bytes (the rest, <= 256 KiB) |
//! | 0x05 | `Ack` | stream u32, received u64, window u32, flags u8 (bit 0: `Close` received) |
//! | 0x06 | `Close` | stream u32, final offset u64 |
//! | 0x07 | `Reset` | stream u32, code u16, reason len u16, reason |
//! | 0x08 | `Ping` | nonce u64 |
//! | 0x09 | `Pong` | nonce u64 |
//!
//! A `Hello` entry is an `Ack` body. The envelope, `Hello`'s magic and version and the whole
//! `Error` frame are frozen across versions, so a peer of another major version gets a
//! readable `Error` (code 1) before the link closes.
//!
//! # Rules the endpoint follows
//!
//! - **Link handshake.** The initiator sends `Hello` first; the acceptor answers with its
//!   own once it knows the link id (one acceptor endpoint serves one link id; the bridge
//!   routes `Hello`s by it). Nothing else is sent on a link before the peer's `Hello`, since
//!   only that says where to resend from. (The brief had both ends send `Hello` at once from
//!   `link_up`; the acceptor cannot name a link it has not heard of yet.)
//! - **Stream ids** are odd for the initiator and even for the acceptor, never reused.
//! - **Credit.** The receiver lets the sender go up to `read + window`, counted from what its
//!   application has read, so its memory stays within the window whatever the application
//!   does. Every new stream starts with [`INITIAL_WINDOW`] each way so the first bytes need no
//!   round trip; the first `Ack` (sent at once by both ends) gives the real window.
//! - **Resume.** `Hello` lists every stream the sender holds with what it received. For each
//!   stream it holds, the other end drops what was acknowledged and resends the rest. A stream
//!   the peer does not list was either never heard of by the peer (we opened it and heard
//!   nothing back: resend `Open` and everything) or finished or reset by it while the link was
//!   down (if our side also saw the end of both directions the stream is finished, else it is
//!   reset with [`ResetCode::GONE`]). A stream finished here stays listed as a tombstone
//!   (received = final, fin) until the peer's `Hello` no longer lists it, so a peer that
//!   missed our last `Ack` still learns that its `Close` arrived.
//! - **Finishing.** An end forgets a stream only when its own `Close` was acknowledged (an
//!   `Ack` with the fin flag), it received the peer's `Close` and every byte before it, the
//!   application read them all, and it sent its own fin `Ack`. So "the peer forgot it" means
//!   "the peer had everything", which is what the resume rule above relies on. A stream reset
//!   here is remembered too: if the peer's `Hello` still lists it (our `Reset` was lost), or
//!   its `Open` comes again, the `Reset` is sent again. At most 1024 such tombstones are kept.
//! - **Grace.** Streams of a link that stays down past the grace period (120 s by default,
//!   never meant below 60 s) are reset with [`ResetCode::LINK_TIMEOUT`].
//! - **Keepalive.** A `Ping` goes out after 10 s with nothing sent (every leg and the MV3
//!   worker stay awake); 40 s with nothing heard, the `Hello` awaited included, is
//!   [`Event::LinkSilent`]: the carrier drops the link and makes a new one.
//! - **Memory** per stream stays within its window (received) plus its send buffer (written,
//!   unacknowledged), 4 MiB each by default; a peer's `Open` past `max_streams` is refused.
//! - **Receive side.** Data may arrive reordered, duplicated, overlapping or split: ranges past
//!   a gap wait within the window, bytes already received are dropped, and the application
//!   reads each byte once and in order.
//!
//! A link itself is taken to be an ordered byte stream (each leg is one); the endpoint still
//! tolerates reordered `Data`, because after a resume old and new copies of bytes meet.

mod endpoint;
mod frame;
mod window;

use core::fmt;

pub use endpoint::{Config, Endpoint, Event, LinkError, StreamError, StreamInfo};
pub use frame::{
    Ack, DecodeError, Decoder, EncodeError, ErrorCode, Frame, Hello, ResetCode, HEADER_LEN,
    HELLO_MAGIC, MAX_FRAME_LEN, MAX_PAYLOAD, MAX_REASON, MAX_RESUME_ENTRIES, MAX_TARGET,
};

/// The protocol version this end speaks. Peers of the same major version talk; the minor
/// version only adds what an older peer may ignore.
pub const VERSION: Version = Version { major: 1, minor: 0 };

/// The credit each end gives a new stream before its first `Ack` (64 KiB); a configured
/// window is never below it.
pub const INITIAL_WINDOW: u32 = 64 * 1024;

/// The target of the SSH stream: the bridge connects it to the container's sshd.
pub const TARGET_SSH: &str = "ssh";

/// A protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    /// Changes whenever a frame's layout or meaning changes.
    pub major: u8,
    /// Changes for additions an older peer may ignore.
    pub minor: u8,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A stream within a link: odd when the initiator opened it, even for the acceptor, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u32);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {}", self.0)
    }
}

/// A link: 16 random bytes the initiator chose, the same over every resumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(pub [u8; 16]);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// Which end of a link an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Chooses the link id, speaks first, opens odd streams: the helper.
    Initiator,
    /// Answers, adopts the link id, opens even streams: the bridge.
    Acceptor,
}

impl Role {
    /// The first stream id this role opens.
    fn first_stream(self) -> u32 {
        match self {
            Self::Initiator => 1,
            Self::Acceptor => 2,
        }
    }

    /// Whether `id` is one this role opens.
    fn opens(self, id: StreamId) -> bool {
        (id.0 % 2 == 1) == (self == Self::Initiator)
    }
}
