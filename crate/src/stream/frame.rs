//! The wire format: frames, their binary encoding and a decoder that takes the byte stream in
//! pieces of any size.
//!
//! Every frame is an envelope `type: u8 | body_len: u32` (little-endian) and a body whose
//! layout the type fixes. Decoding is strict: an unknown type, a body longer than its type
//! allows (checked from the header, before the body is buffered), a truncated or overlong
//! body, unknown flag bits, stream id 0 or text that is not UTF-8 is a [`DecodeError`],
//! never a panic. The envelope, the first fields of `Hello` (magic and version) and the whole
//! `Error` frame never change between versions, so any two versions can tell each other why
//! they do not talk.

use core::fmt;

use super::{LinkId, StreamId, Version, VERSION};

/// Bytes before every body: the type and the body's length.
pub const HEADER_LEN: usize = 5;
/// The most bytes one `Data` frame carries (256 KiB).
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// The longest reason an `Error` or `Reset` carries, in bytes of UTF-8.
pub const MAX_REASON: usize = 1024;
/// The longest stream target (such as `ssh`), in bytes of UTF-8.
pub const MAX_TARGET: usize = 255;
/// The most per-stream entries a `Hello` carries.
pub const MAX_RESUME_ENTRIES: usize = 4096;
/// What a `Hello` body starts with, so a peer that is not ours fails at once.
pub const HELLO_MAGIC: [u8; 4] = *b"ASSH";

const T_HELLO: u8 = 0x01;
const T_ERROR: u8 = 0x02;
const T_OPEN: u8 = 0x03;
const T_DATA: u8 = 0x04;
const T_ACK: u8 = 0x05;
const T_CLOSE: u8 = 0x06;
const T_RESET: u8 = 0x07;
const T_PING: u8 = 0x08;
const T_PONG: u8 = 0x09;

/// Bytes of one `Ack` body, which is also one `Hello` resume entry.
const ACK_LEN: usize = 4 + 8 + 4 + 1;
/// Magic, major, minor, link id, entry count.
const HELLO_FIXED_LEN: usize = 4 + 1 + 1 + 16 + 2;
/// `Ack` flag: the sender has received the stream's `Close` and every byte before it.
const ACK_FIN: u8 = 0x01;

/// Why a link is closed, sent in an `Error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The peer speaks a major version we do not.
    pub const UNSUPPORTED_VERSION: Self = Self(1);
    /// A frame broke the protocol (malformed, or not allowed in this state).
    pub const PROTOCOL: Self = Self(2);
    /// The `Hello` names another link than the one this end holds.
    pub const LINK_MISMATCH: Self = Self(3);
}

/// Why a stream is reset, sent in a `Reset` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResetCode(pub u16);

impl ResetCode {
    /// The application ended the stream (for example its socket failed).
    pub const APPLICATION: Self = Self(1);
    /// The target could not be reached or is not offered.
    pub const REFUSED: Self = Self(2);
    /// The peer already holds as many streams as it takes.
    pub const TOO_MANY_STREAMS: Self = Self(3);
    /// The peer sent beyond the window it was given.
    pub const FLOW_CONTROL: Self = Self(4);
    /// The link stayed down longer than the grace period.
    pub const LINK_TIMEOUT: Self = Self(5);
    /// The other end no longer knows the stream (it reset it, or lost its state).
    pub const GONE: Self = Self(6);
    /// The peer broke the protocol on this stream (data past its `Close`, an `Ack` of bytes
    /// never sent).
    pub const PROTOCOL: Self = Self(7);
}

/// One `Hello` entry and one `Ack`: how much of a stream one end has received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The stream.
    pub stream: StreamId,
    /// Bytes received without a gap, from offset 0.
    pub received: u64,
    /// How many bytes past `received` the other end may send.
    pub window: u32,
    /// The stream's `Close` arrived and `received` is its final offset.
    pub fin: bool,
}

/// The first frame from each end of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version the sender speaks.
    pub version: Version,
    /// The link, chosen at random by the end that opens links.
    pub link_id: LinkId,
    /// Every stream the sender holds, with how much of it it has received.
    pub resume: Vec<Ack>,
}

/// One protocol frame (its variant name, `<&str>::from(&frame)`, names it in errors).
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
pub enum Frame {
    /// Starts a link (and every resumption of it).
    Hello(Hello),
    /// The link is closed, with the reason.
    Error { code: ErrorCode, reason: String },
    /// A new stream to `target` (such as `ssh`).
    Open { stream: StreamId, target: String },
    /// Stream bytes starting at `offset`.
    Data {
        stream: StreamId,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// Receipt and credit for a stream.
    Ack(Ack),
    /// The sender sends nothing past `final_offset` on this stream (half-close).
    Close { stream: StreamId, final_offset: u64 },
    /// The stream ends at once, both ways, with the reason.
    Reset {
        stream: StreamId,
        code: ResetCode,
        reason: String,
    },
    /// A keepalive that asks for a `Pong` with the same nonce.
    Ping { nonce: u64 },
    /// The answer to a `Ping`.
    Pong { nonce: u64 },
}

/// Why bytes are not a frame. The link that carried them is closed with an `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The type byte names no frame.
    UnknownType { frame_type: u8 },
    /// The header announces a body longer than this type ever has.
    Oversized {
        frame_type: u8,
        len: usize,
        max: usize,
    },
    /// The body ends before a field does.
    Truncated { frame_type: u8, len: usize },
    /// The body goes on after its last field.
    TrailingBytes { frame_type: u8, extra: usize },
    /// A `Hello` that does not start with [`HELLO_MAGIC`]: the peer is not this protocol.
    BadMagic,
    /// A `Hello` of a major version we do not speak.
    UnsupportedVersion { theirs: Version },
    /// Stream id 0, which no stream has.
    ZeroStream { frame_type: u8 },
    /// A text field that is not UTF-8.
    NotUtf8 { frame_type: u8 },
    /// A text field longer than its limit.
    TextTooLong {
        frame_type: u8,
        len: usize,
        max: usize,
    },
    /// Flag bits this version does not define.
    UnknownFlags { flags: u8 },
    /// A `Hello` with more resume entries than [`MAX_RESUME_ENTRIES`].
    TooManyEntries { count: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownType { frame_type } => write!(f, "unknown frame type 0x{frame_type:02x}"),
            Self::Oversized {
                frame_type,
                len,
                max,
            } => write!(
                f,
                "frame type 0x{frame_type:02x} announces {len} bytes, more than its {max}"
            ),
            Self::Truncated { frame_type, len } => write!(
                f,
                "frame type 0x{frame_type:02x} is cut off: its {len} bytes end inside a field"
            ),
            Self::TrailingBytes { frame_type, extra } => write!(
                f,
                "frame type 0x{frame_type:02x} has {extra} bytes after its last field"
            ),
            Self::BadMagic => write!(
                f,
                "the other end does not speak the AI Studio SSH stream protocol (no ASSH magic)"
            ),
            Self::UnsupportedVersion { theirs } => write!(
                f,
                "the other end speaks stream protocol {theirs} and this end {VERSION}; \
                 update the older of the extension, the helper (aistudio-ssh) and the bridge"
            ),
            Self::ZeroStream { frame_type } => {
                write!(f, "frame type 0x{frame_type:02x} names stream 0")
            }
            Self::NotUtf8 { frame_type } => {
                write!(
                    f,
                    "frame type 0x{frame_type:02x} carries text that is not UTF-8"
                )
            }
            Self::TextTooLong {
                frame_type,
                len,
                max,
            } => write!(
                f,
                "frame type 0x{frame_type:02x} carries {len} bytes of text, more than {max}"
            ),
            Self::UnknownFlags { flags } => write!(f, "unknown ack flags 0x{flags:02x}"),
            Self::TooManyEntries { count } => write!(
                f,
                "a Hello lists {count} streams, more than {MAX_RESUME_ENTRIES}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a frame built by hand cannot be encoded (the endpoint never builds one).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A `Data` frame above [`MAX_PAYLOAD`].
    PayloadTooLarge { len: usize },
    /// A reason or target above its limit.
    TextTooLong { len: usize, max: usize },
    /// A `Hello` above [`MAX_RESUME_ENTRIES`].
    TooManyEntries { count: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge { len } => {
                write!(f, "a Data frame of {len} bytes is above {MAX_PAYLOAD}")
            }
            Self::TextTooLong { len, max } => {
                write!(f, "text of {len} bytes is above the limit of {max}")
            }
            Self::TooManyEntries { count } => {
                write!(
                    f,
                    "a Hello of {count} streams is above {MAX_RESUME_ENTRIES}"
                )
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// The longest body a frame type may announce, or `None` for an unknown type.
fn max_body(frame_type: u8) -> Option<usize> {
    Some(match frame_type {
        T_HELLO => HELLO_FIXED_LEN + MAX_RESUME_ENTRIES * ACK_LEN,
        T_ERROR => 2 + 2 + MAX_REASON,
        T_OPEN => 4 + 1 + MAX_TARGET,
        T_DATA => 4 + 8 + MAX_PAYLOAD,
        T_ACK => ACK_LEN,
        T_CLOSE => 4 + 8,
        T_RESET => 4 + 2 + 2 + MAX_REASON,
        T_PING | T_PONG => 8,
        _ => return None,
    })
}

/// The most bytes any one frame takes on the wire.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + 4 + 8 + MAX_PAYLOAD;

impl Frame {
    fn frame_type(&self) -> u8 {
        match self {
            Self::Hello(_) => T_HELLO,
            Self::Error { .. } => T_ERROR,
            Self::Open { .. } => T_OPEN,
            Self::Data { .. } => T_DATA,
            Self::Ack(_) => T_ACK,
            Self::Close { .. } => T_CLOSE,
            Self::Reset { .. } => T_RESET,
            Self::Ping { .. } => T_PING,
            Self::Pong { .. } => T_PONG,
        }
    }

    /// The stream a frame is about, if any.
    pub fn stream(&self) -> Option<StreamId> {
        match self {
            Self::Open { stream, .. }
            | Self::Data { stream, .. }
            | Self::Close { stream, .. }
            | Self::Reset { stream, .. } => Some(*stream),
            Self::Ack(ack) => Some(ack.stream),
            Self::Hello(_) | Self::Error { .. } | Self::Ping { .. } | Self::Pong { .. } => None,
        }
    }

    /// Appends the frame's bytes to `out`.
    ///
    /// # Errors
    /// A payload, text or resume list above its limit; `out` is then unchanged.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.check_limits()?;
        let start = out.len();
        out.push(self.frame_type());
        out.extend_from_slice(&[0; 4]);
        match self {
            Self::Hello(hello) => {
                out.extend_from_slice(&HELLO_MAGIC);
                out.push(hello.version.major);
                out.push(hello.version.minor);
                out.extend_from_slice(&hello.link_id.0);
                // check_limits keeps the count within u16.
                out.extend_from_slice(&(hello.resume.len() as u16).to_le_bytes());
                for ack in &hello.resume {
                    put_ack(out, ack);
                }
            }
            Self::Error { code, reason } => {
                out.extend_from_slice(&code.0.to_le_bytes());
                put_text16(out, reason);
            }
            Self::Open { stream, target } => {
                out.extend_from_slice(&stream.0.to_le_bytes());
                out.push(target.len() as u8);
                out.extend_from_slice(target.as_bytes());
            }
            Self::Data {
                stream,
                offset,
                bytes,
            } => {
                out.extend_from_slice(&stream.0.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Self::Ack(ack) => put_ack(out, ack),
            Self::Close {
                stream,
                final_offset,
            } => {
                out.extend_from_slice(&stream.0.to_le_bytes());
                out.extend_from_slice(&final_offset.to_le_bytes());
            }
            Self::Reset {
                stream,
                code,
                reason,
            } => {
                out.extend_from_slice(&stream.0.to_le_bytes());
                out.extend_from_slice(&code.0.to_le_bytes());
                put_text16(out, reason);
            }
            Self::Ping { nonce } | Self::Pong { nonce } => {
                out.extend_from_slice(&nonce.to_le_bytes())
            }
        }
        // Every body is below max_body, itself far below u32::MAX.
        let body_len = (out.len() - start - HEADER_LEN) as u32;
        out[start + 1..start + HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
        Ok(())
    }

    /// The frame's bytes.
    ///
    /// # Errors
    /// As [`Frame::encode`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    fn check_limits(&self) -> Result<(), EncodeError> {
        let text = |len: usize, max: usize| {
            if len > max {
                Err(EncodeError::TextTooLong { len, max })
            } else {
                Ok(())
            }
        };
        match self {
            Self::Hello(hello) if hello.resume.len() > MAX_RESUME_ENTRIES => {
                Err(EncodeError::TooManyEntries {
                    count: hello.resume.len(),
                })
            }
            Self::Data { bytes, .. } if bytes.len() > MAX_PAYLOAD => {
                Err(EncodeError::PayloadTooLarge { len: bytes.len() })
            }
            Self::Error { reason, .. } | Self::Reset { reason, .. } => {
                text(reason.len(), MAX_REASON)
            }
            Self::Open { target, .. } => text(target.len(), MAX_TARGET),
            _ => Ok(()),
        }
    }

    /// Reads one frame from the front of `buf`: `Ok(None)` while `buf` holds only part of
    /// it, else the frame and how many bytes it took.
    ///
    /// # Errors
    /// Bytes that are not a frame; see [`DecodeError`]. A header that announces an unknown
    /// type or an oversized body fails as soon as its five bytes are there.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, DecodeError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let frame_type = header[0];
        let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let max = max_body(frame_type).ok_or(DecodeError::UnknownType { frame_type })?;
        if len > max {
            return Err(DecodeError::Oversized {
                frame_type,
                len,
                max,
            });
        }
        let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
            return Ok(None);
        };
        let frame = decode_body(frame_type, body)?;
        Ok(Some((frame, HEADER_LEN + len)))
    }
}

fn put_ack(out: &mut Vec<u8>, ack: &Ack) {
    out.extend_from_slice(&ack.stream.0.to_le_bytes());
    out.extend_from_slice(&ack.received.to_le_bytes());
    out.extend_from_slice(&ack.window.to_le_bytes());
    out.push(if ack.fin { ACK_FIN } else { 0 });
}

fn put_text16(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A cursor over one body; every read that runs past the end is `Truncated`.
struct Body<'a> {
    frame_type: u8,
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated {
                frame_type: self.frame_type,
                len: self.len,
            });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn stream(&mut self) -> Result<StreamId, DecodeError> {
        match self.u32()? {
            0 => Err(DecodeError::ZeroStream {
                frame_type: self.frame_type,
            }),
            id => Ok(StreamId(id)),
        }
    }

    fn text(&mut self, len: usize, max: usize) -> Result<String, DecodeError> {
        if len > max {
            return Err(DecodeError::TextTooLong {
                frame_type: self.frame_type,
                len,
                max,
            });
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8 {
            frame_type: self.frame_type,
        })
    }

    fn ack(&mut self) -> Result<Ack, DecodeError> {
        let stream = self.stream()?;
        let received = self.u64()?;
        let window = self.u32()?;
        let flags = self.u8()?;
        if flags & !ACK_FIN != 0 {
            return Err(DecodeError::UnknownFlags { flags });
        }
        Ok(Ack {
            stream,
            received,
            window,
            fin: flags & ACK_FIN != 0,
        })
    }

    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }

    fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                frame_type: self.frame_type,
                extra: self.bytes.len(),
            })
        }
    }
}

fn decode_body(frame_type: u8, bytes: &[u8]) -> Result<Frame, DecodeError> {
    let mut body = Body {
        frame_type,
        bytes,
        len: bytes.len(),
    };
    let frame = match frame_type {
        T_HELLO => {
            if body.array::<4>()? != HELLO_MAGIC {
                return Err(DecodeError::BadMagic);
            }
            let version = Version {
                major: body.u8()?,
                minor: body.u8()?,
            };
            // Past the version the layout is the major version's own.
            if version.major != VERSION.major {
                return Err(DecodeError::UnsupportedVersion { theirs: version });
            }
            let link_id = LinkId(body.array()?);
            let count = usize::from(body.u16()?);
            if count > MAX_RESUME_ENTRIES {
                return Err(DecodeError::TooManyEntries { count });
            }
            let resume = (0..count)
                .map(|_| body.ack())
                .collect::<Result<Vec<_>, _>>()?;
            Frame::Hello(Hello {
                version,
                link_id,
                resume,
            })
        }
        T_ERROR => {
            let code = ErrorCode(body.u16()?);
            let len = usize::from(body.u16()?);
            Frame::Error {
                code,
                reason: body.text(len, MAX_REASON)?,
            }
        }
        T_OPEN => {
            let stream = body.stream()?;
            let len = usize::from(body.u8()?);
            Frame::Open {
                stream,
                target: body.text(len, MAX_TARGET)?,
            }
        }
        T_DATA => Frame::Data {
            stream: body.stream()?,
            offset: body.u64()?,
            bytes: body.rest().to_vec(),
        },
        T_ACK => Frame::Ack(body.ack()?),
        T_CLOSE => Frame::Close {
            stream: body.stream()?,
            final_offset: body.u64()?,
        },
        T_RESET => {
            let stream = body.stream()?;
            let code = ResetCode(body.u16()?);
            let len = usize::from(body.u16()?);
            Frame::Reset {
                stream,
                code,
                reason: body.text(len, MAX_REASON)?,
            }
        }
        T_PING => Frame::Ping { nonce: body.u64()? },
        T_PONG => Frame::Pong { nonce: body.u64()? },
        _ => return Err(DecodeError::UnknownType { frame_type }),
    };
    body.finish()?;
    Ok(frame)
}

/// Frames from a byte stream that arrives in pieces of any size: a frame split across
/// reads, or several frames in one read.
///
/// It holds at most one partial frame ([`MAX_FRAME_LEN`]) beyond what was pushed in one
/// piece. After an error it returns that error for good: the link is to be closed.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    failed: Option<DecodeError>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the link.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, or `Ok(None)` until more bytes are pushed.
    ///
    /// # Errors
    /// The bytes are not a frame ([`DecodeError`]); every later call returns it again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match Frame::decode(&self.buf[self.start..]) {
            Ok(Some((frame, used))) => {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Bytes pushed and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_alone_rejects_an_unknown_type_and_an_oversized_body() {
        assert_eq!(
            Frame::decode(&[0x7f, 0, 0, 0, 0]),
            Err(DecodeError::UnknownType { frame_type: 0x7f })
        );
        let huge = (MAX_PAYLOAD as u32 + 13).to_le_bytes();
        assert_eq!(
            Frame::decode(&[T_DATA, huge[0], huge[1], huge[2], huge[3]]),
            Err(DecodeError::Oversized {
                frame_type: T_DATA,
                len: MAX_PAYLOAD + 13,
                max: MAX_PAYLOAD + 12
            })
        );
        assert_eq!(Frame::decode(&[T_DATA, 0, 0]), Ok(None));
    }

    #[test]
    fn unknown_ack_flags_are_refused() {
        let mut bytes = Frame::Ack(Ack {
            stream: StreamId(1),
            received: 5,
            window: 9,
            fin: true,
        })
        .to_bytes()
        .unwrap();
        *bytes.last_mut().unwrap() = 0x03;
        assert_eq!(
            Frame::decode(&bytes),
            Err(DecodeError::UnknownFlags { flags: 0x03 })
        );
    }

    #[test]
    fn the_decoder_compacts_and_stays_failed() {
        let ping = Frame::Ping { nonce: 7 }.to_bytes().unwrap();
        let mut decoder = Decoder::new();
        for _ in 0..10 {
            decoder.push(&ping);
            assert_eq!(decoder.next_frame(), Ok(Some(Frame::Ping { nonce: 7 })));
        }
        assert_eq!(decoder.buffered(), 0);
        decoder.push(&[0xee, 0, 0, 0, 0]);
        assert!(decoder.next_frame().is_err());
        decoder.push(&ping);
        assert!(decoder.next_frame().is_err());
    }
}
