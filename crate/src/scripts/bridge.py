"""The container bridge of direct mode: the acceptor end of the stream protocol.

The helper on the user's computer is the initiator; every byte of `ssh` reaches this process
as frames of the protocol that crate/src/stream/ owns (read its mod.rs for the rules: this
file follows them, and crate/tests/bridge.rs runs it against the Rust endpoint). Each stream
with target `ssh` becomes a TCP connection to the container's sshd on 127.0.0.1.

Python 3.7 standard library only: AI Studio images are that old.

Two halves: a frame codec with an incremental `Decoder`, and `Acceptor`, a sans-IO state
machine (bytes in with `feed`, bytes out with `transmit`, time given as `now_ms`) serving one
link id. `Bridge` does the I/O with `selectors`: `main()` serves one link on stdin/stdout, or
with `--listen` links on a user-only Unix socket. A new connection's first frame, the helper's
Hello, names its link id: the connection becomes the link of that id's Acceptor (a new id gets
a new one; a newer connection for an id replaces the older), so its streams resume where the
last connection left them. sshd connections outlive links; an Acceptor whose link stays down
past the grace period is dropped with them. The kernel-side attach client (attach.py) makes
one such connection per comm.
"""

import argparse
import os
import selectors
import socket
import struct
import sys
import time
from collections import namedtuple

VERSION_MAJOR = 1
VERSION_MINOR = 0
HELLO_MAGIC = b"ASSH"
HEADER_LEN = 5
MAX_PAYLOAD = 256 * 1024
MAX_REASON = 1024
MAX_TARGET = 255
MAX_RESUME_ENTRIES = 4096
INITIAL_WINDOW = 64 * 1024
TARGET_SSH = "ssh"
MAX_TOMBSTONES = 1024

T_HELLO, T_ERROR, T_OPEN, T_DATA, T_ACK, T_CLOSE, T_RESET, T_PING, T_PONG = range(1, 10)
ACK_LEN = 4 + 8 + 4 + 1
HELLO_FIXED_LEN = 4 + 1 + 1 + 16 + 2
ACK_FIN = 0x01

ERROR_UNSUPPORTED_VERSION = 1
ERROR_PROTOCOL = 2
ERROR_LINK_MISMATCH = 3

RESET_APPLICATION = 1
RESET_REFUSED = 2
RESET_TOO_MANY_STREAMS = 3
RESET_FLOW_CONTROL = 4
RESET_LINK_TIMEOUT = 5
RESET_GONE = 6
RESET_PROTOCOL = 7

Hello = namedtuple("Hello", "major minor link_id resume")
Error = namedtuple("Error", "code reason")
Open = namedtuple("Open", "stream target")
Data = namedtuple("Data", "stream offset data")
Ack = namedtuple("Ack", "stream received window fin")
Close = namedtuple("Close", "stream final_offset")
Reset = namedtuple("Reset", "stream code reason")
Ping = namedtuple("Ping", "nonce")
Pong = namedtuple("Pong", "nonce")

# The longest body each type may announce: checked from the header, before buffering it.
MAX_BODY = {
    T_HELLO: HELLO_FIXED_LEN + MAX_RESUME_ENTRIES * ACK_LEN,
    T_ERROR: 2 + 2 + MAX_REASON,
    T_OPEN: 4 + 1 + MAX_TARGET,
    T_DATA: 4 + 8 + MAX_PAYLOAD,
    T_ACK: ACK_LEN,
    T_CLOSE: 4 + 8,
    T_RESET: 4 + 2 + 2 + MAX_REASON,
    T_PING: 8,
    T_PONG: 8,
}

_ACK = struct.Struct("<IQIB")
_HEADER = struct.Struct("<BI")


class DecodeError(Exception):
    """Bytes that are not a frame: the link is closed with an Error frame."""

    def __init__(self, message, code=ERROR_PROTOCOL):
        Exception.__init__(self, message)
        self.code = code


def _text(text, limit):
    raw = text.encode("utf-8")
    if len(raw) > limit:
        raise ValueError("text of %d bytes is over its limit of %d" % (len(raw), limit))
    return raw


def clip(text, limit):
    """`text` cut to at most `limit` UTF-8 bytes on a character boundary (a reason that is
    too long is shortened, as the Rust endpoint does, never refused by `encode`)."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def encode(frame):
    """The frame's bytes, exactly as frame.rs writes them."""
    kind = type(frame)
    if kind is Data:
        if len(frame.data) > MAX_PAYLOAD:
            raise ValueError("payload of %d bytes is over %d" % (len(frame.data), MAX_PAYLOAD))
        body = struct.pack("<IQ", frame.stream, frame.offset) + bytes(frame.data)
        return _HEADER.pack(T_DATA, len(body)) + body
    if kind is Ack:
        body = _ACK.pack(frame.stream, frame.received, frame.window, ACK_FIN if frame.fin else 0)
        return _HEADER.pack(T_ACK, len(body)) + body
    if kind is Hello:
        if len(frame.resume) > MAX_RESUME_ENTRIES:
            raise ValueError("%d resume entries are over %d" % (len(frame.resume), MAX_RESUME_ENTRIES))
        parts = [HELLO_MAGIC, struct.pack("<BB", frame.major, frame.minor), bytes(frame.link_id),
                 struct.pack("<H", len(frame.resume))]
        for ack in frame.resume:
            parts.append(_ACK.pack(ack.stream, ack.received, ack.window, ACK_FIN if ack.fin else 0))
        body = b"".join(parts)
        return _HEADER.pack(T_HELLO, len(body)) + body
    if kind is Error:
        raw = _text(frame.reason, MAX_REASON)
        body = struct.pack("<HH", frame.code, len(raw)) + raw
        return _HEADER.pack(T_ERROR, len(body)) + body
    if kind is Open:
        raw = _text(frame.target, MAX_TARGET)
        body = struct.pack("<IB", frame.stream, len(raw)) + raw
        return _HEADER.pack(T_OPEN, len(body)) + body
    if kind is Close:
        body = struct.pack("<IQ", frame.stream, frame.final_offset)
        return _HEADER.pack(T_CLOSE, len(body)) + body
    if kind is Reset:
        raw = _text(frame.reason, MAX_REASON)
        body = struct.pack("<IHH", frame.stream, frame.code, len(raw)) + raw
        return _HEADER.pack(T_RESET, len(body)) + body
    if kind is Ping:
        return _HEADER.pack(T_PING, 8) + struct.pack("<Q", frame.nonce)
    if kind is Pong:
        return _HEADER.pack(T_PONG, 8) + struct.pack("<Q", frame.nonce)
    raise TypeError("not a frame: %r" % (frame,))


class _Body(object):
    """A cursor over one body; reading past its end is a truncated frame."""

    def __init__(self, kind, body):
        self.kind = kind
        self.body = body
        self.at = 0

    def take(self, n):
        if self.at + n > len(self.body):
            raise DecodeError("frame type 0x%02x: body of %d bytes is truncated" % (self.kind, len(self.body)))
        piece = self.body[self.at:self.at + n]
        self.at += n
        return piece

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def stream(self):
        (stream,) = self.unpack("<I")
        if stream == 0:
            raise DecodeError("frame type 0x%02x names stream 0" % self.kind)
        return stream

    def text(self, length, limit):
        if length > limit:
            raise DecodeError("frame type 0x%02x: text of %d bytes is over %d" % (self.kind, length, limit))
        try:
            return self.take(length).decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("frame type 0x%02x: text is not UTF-8" % self.kind)

    def ack(self):
        stream = self.stream()
        received, window, flags = self.unpack("<QIB")
        if flags & ~ACK_FIN:
            raise DecodeError("unknown Ack flags 0x%02x" % flags)
        return Ack(stream, received, window, bool(flags & ACK_FIN))

    def rest(self):
        piece = self.body[self.at:]
        self.at = len(self.body)
        return piece

    def finish(self):
        if self.at != len(self.body):
            raise DecodeError("frame type 0x%02x: %d bytes after its last field" % (self.kind, len(self.body) - self.at))


def decode_body(kind, body):
    """One frame from its type and whole body; strict like frame.rs."""
    b = _Body(kind, body)
    if kind == T_HELLO:
        if b.take(4) != HELLO_MAGIC:
            raise DecodeError("the other end does not speak this protocol (no ASSH magic)")
        major, minor = b.unpack("<BB")
        # Past the version the layout is the major version's own.
        if major != VERSION_MAJOR:
            raise DecodeError("the other end speaks protocol %d.%d, this end %d.%d"
                              % (major, minor, VERSION_MAJOR, VERSION_MINOR), ERROR_UNSUPPORTED_VERSION)
        link_id = bytes(b.take(16))
        (count,) = b.unpack("<H")
        if count > MAX_RESUME_ENTRIES:
            raise DecodeError("Hello with %d resume entries" % count)
        frame = Hello(major, minor, link_id, [b.ack() for _ in range(count)])
    elif kind == T_ERROR:
        code, length = b.unpack("<HH")
        frame = Error(code, b.text(length, MAX_REASON))
    elif kind == T_OPEN:
        stream = b.stream()
        (length,) = b.unpack("<B")
        frame = Open(stream, b.text(length, MAX_TARGET))
    elif kind == T_DATA:
        stream = b.stream()
        (offset,) = b.unpack("<Q")
        frame = Data(stream, offset, bytes(b.rest()))
    elif kind == T_ACK:
        frame = b.ack()
    elif kind == T_CLOSE:
        stream = b.stream()
        (final_offset,) = b.unpack("<Q")
        frame = Close(stream, final_offset)
    elif kind == T_RESET:
        stream = b.stream()
        code, length = b.unpack("<HH")
        frame = Reset(stream, code, b.text(length, MAX_REASON))
    elif kind == T_PING:
        frame = Ping(b.unpack("<Q")[0])
    elif kind == T_PONG:
        frame = Pong(b.unpack("<Q")[0])
    else:
        raise DecodeError("unknown frame type 0x%02x" % kind)
    b.finish()
    return frame


class Decoder(object):
    """Frames from bytes that arrive in pieces of any size; after an error, always that error."""

    def __init__(self):
        self.buf = bytearray()
        self.failed = None

    def push(self, data):
        self.buf += data

    def next_frame(self):
        """The next whole frame, or None until more bytes are pushed."""
        if self.failed is not None:
            raise self.failed
        try:
            if len(self.buf) < HEADER_LEN:
                return None
            kind, length = _HEADER.unpack_from(self.buf)
            limit = MAX_BODY.get(kind)
            if limit is None:
                raise DecodeError("unknown frame type 0x%02x" % kind)
            if length > limit:
                raise DecodeError("frame type 0x%02x announces %d bytes, over its %d" % (kind, length, limit))
            if len(self.buf) < HEADER_LEN + length:
                return None
            frame = decode_body(kind, bytes(self.buf[HEADER_LEN:HEADER_LEN + length]))
            del self.buf[:HEADER_LEN + length]
            return frame
        except DecodeError as error:
            self.failed = error
            raise


class _SendBuf(object):
    """Bytes written and not acknowledged, kept to resend after a resume."""

    def __init__(self):
        self.acked = 0
        self.sent = 0
        self.data = bytearray()

    def written(self):
        return self.acked + len(self.data)

    def next_chunk(self, limit, most):
        end = min(limit, self.written(), self.sent + most)
        if end <= self.sent:
            return None
        offset = self.sent
        chunk = bytes(self.data[offset - self.acked:end - self.acked])
        self.sent = end
        return offset, chunk

    def acknowledge(self, received):
        """False, changing nothing, when the peer acknowledges bytes never written."""
        if received > self.written():
            return False
        if received > self.acked:
            del self.data[:received - self.acked]
            self.acked = received
            self.sent = max(self.sent, received)
        return True


class _RecvBuf(object):
    """Bytes received, in order; ranges past a gap wait (after a resume copies may cross)."""

    def __init__(self, window):
        self.read = 0
        self.ready = bytearray()
        self.pending = {}
        self.window = window

    def received(self):
        return self.read + len(self.ready)

    def limit(self):
        # Counted from what was read, so memory stays within the window.
        return self.read + self.window

    def highest(self):
        ends = [start + len(piece) for start, piece in self.pending.items()]
        return max([self.received()] + ends)

    def insert(self, offset, data, final):
        """How far `received` advanced; raises ValueError naming the reset code when refused."""
        end = offset + len(data)
        if final is not None and end > final:
            raise ValueError(RESET_PROTOCOL)
        if end > self.limit():
            raise ValueError(RESET_FLOW_CONTROL)
        before = self.received()
        if end <= before:
            return 0
        if offset > before:
            if len(data) > len(self.pending.get(offset, b"")):
                self.pending[offset] = data
            return 0
        self.ready += data[before - offset:]
        while self.pending:
            here = self.received()
            fits = [start for start in self.pending if start <= here]
            if not fits:
                break
            for start in fits:
                piece = self.pending.pop(start)
                if start + len(piece) > here:
                    self.ready += piece[here - start:]
                    here = self.received()
        return self.received() - before

    def take(self):
        data = bytes(self.ready)
        self.read += len(data)
        del self.ready[:]
        return data


class _Stream(object):
    def __init__(self, target, window):
        self.target = target
        self.send = _SendBuf()
        self.peer_limit = INITIAL_WINDOW
        self.close_requested = False
        self.close_sent = False
        self.fin_acked = False
        self.write_blocked = False
        self.recv = _RecvBuf(window)
        self.peer_final = None
        self.readable_reported = False
        self.closed_reported = False
        self.advertised = None
        self.ack_owed_since = None

    def fin_received(self):
        return self.peer_final == self.recv.received()

    def ack(self, stream_id):
        received = self.recv.received()
        window = min(self.recv.limit() - received, 0xFFFFFFFF)
        return Ack(stream_id, received, window, self.fin_received())

    def sendable(self):
        return self.send.sent < min(self.send.written(), self.peer_limit)

    def done(self):
        return (self.fin_acked and self.fin_received() and not self.recv.ready
                and self.advertised is not None and self.advertised[2])


DOWN, HANDSHAKE, UP, FAILED = "down", "handshake", "up", "failed"


class Acceptor(object):
    """The acceptor end of one link id, sans IO: `feed` link bytes, `transmit` the answer,
    `events` for the application (tuples whose first item names them, as Event in endpoint.rs:
    link_up, link_failed, link_silent, link_timed_out, opened, readable, writable, closed,
    finished, reset), and `read`/`write`/`close`/`reset` for stream bytes."""

    def __init__(self, now_ms, window=4 * 1024 * 1024, send_buffer=4 * 1024 * 1024,
                 max_chunk=64 * 1024, max_streams=256, grace_ms=120000, ack_delay_ms=50,
                 ping_interval_ms=10000, silence_ms=40000):
        self.window = max(window, INITIAL_WINDOW)
        self.send_buffer = max(send_buffer, 1)
        self.max_chunk = min(max(max_chunk, 1), MAX_PAYLOAD)
        self.max_streams = min(max_streams, MAX_RESUME_ENTRIES - MAX_TOMBSTONES)
        self.grace_ms = grace_ms
        self.ack_delay_ms = ack_delay_ms
        self.ping_interval_ms = ping_interval_ms
        self.silence_ms = silence_ms
        self.link_id = None
        self.phase = DOWN
        self.down_since = now_ms
        self.timed_out = False
        self.hello_due = False
        self.error_due = None
        self.control = []
        self.streams = {}
        # id -> ("done", final_offset) or ("reset", code, reason); dicts keep insertion order.
        self.tombstones = {}
        self.highest_peer_stream = 0
        self.last_data = 0
        self.pending_events = []
        self.last_sent_ms = now_ms
        self.last_heard_ms = now_ms
        self.silence_reported = False
        self.next_nonce = 1
        self.decoder = Decoder()

    # The link.

    def link_up(self, now_ms):
        if self.phase != DOWN:
            self.link_lost(now_ms)
        self.phase = HANDSHAKE
        self.decoder = Decoder()
        self.last_heard_ms = now_ms
        self.last_sent_ms = now_ms
        self.silence_reported = False

    def link_lost(self, now_ms):
        """Unacknowledged bytes stay for the next link, up to the grace period."""
        self.phase = DOWN
        if self.down_since is None:
            self.down_since = now_ms
        self.hello_due = False
        self.error_due = None
        self.control = []

    def feed(self, data, now_ms):
        """Takes in bytes from the link, in pieces of any size."""
        self.decoder.push(data)
        while self.phase in (HANDSHAKE, UP):
            try:
                frame = self.decoder.next_frame()
            except DecodeError as error:
                self._fail(error.code, str(error), now_ms, True)
                return
            if frame is None:
                return
            self.handle(frame, now_ms)

    def transmit(self, now_ms, most=1024 * 1024):
        """Bytes to send on the link now, about `most` at most."""
        out = bytearray()
        while len(out) < most:
            self.handle_timeout(now_ms)
            frame = self._next_frame(now_ms)
            if frame is None:
                break
            self.last_sent_ms = now_ms
            out += encode(frame)
        return bytes(out)

    def events(self):
        taken, self.pending_events = self.pending_events, []
        return taken

    def is_up(self):
        return self.phase == UP

    # Streams, for the application.

    def write(self, stream_id, data):
        """How many of `data` the send buffer took; a `writable` event says when to retry."""
        s = self.streams[stream_id]
        if s.close_requested:
            raise ValueError("stream %d was closed for writing" % stream_id)
        n = min(len(data), self.room(stream_id))
        s.send.data += data[:n]
        if n < len(data):
            s.write_blocked = True
        return n

    def room(self, stream_id):
        s = self.streams[stream_id]
        return max(self.send_buffer - len(s.send.data), 0)

    def read(self, stream_id):
        s = self.streams[stream_id]
        data = s.recv.take()
        s.readable_reported = False
        self._finish_if_done(stream_id)
        return data

    def close(self, stream_id):
        self.streams[stream_id].close_requested = True

    def reset(self, stream_id, code, reason):
        if stream_id in self.streams:
            self._drop(stream_id, code, reason, True)

    # Frames from the peer.

    def handle(self, frame, now_ms):
        self.handle_timeout(now_ms)
        if self.phase in (DOWN, FAILED):
            return
        self.last_heard_ms = now_ms
        self.silence_reported = False
        kind = type(frame)
        if kind is Error:
            self._fail(frame.code, frame.reason, now_ms, False)
        elif self.phase == HANDSHAKE:
            if kind is Hello:
                self._on_hello(frame, now_ms)
            else:
                self._fail(ERROR_PROTOCOL, "a %s frame came before Hello" % kind.__name__, now_ms, True)
        elif kind is Hello:
            self._fail(ERROR_PROTOCOL, "a second Hello on one link", now_ms, True)
        elif kind is Ping:
            self.control.append(Pong(frame.nonce))
        elif kind is Pong:
            pass
        elif kind is Open:
            self._on_open(frame, now_ms)
        elif kind is Data:
            self._on_data(frame)
        elif kind is Ack:
            self._on_ack(frame)
        elif kind is Close:
            self._on_close(frame)
        elif kind is Reset:
            if self.streams.pop(frame.stream, None) is not None:
                self.pending_events.append(("reset", frame.stream, frame.code, frame.reason))

    def _fail(self, code, reason, now_ms, tell):
        if self.phase in (DOWN, FAILED):
            return
        if tell:
            self.error_due = Error(code, clip(reason, MAX_REASON))
        self.phase = FAILED
        if self.down_since is None:
            self.down_since = now_ms
        self.control = []
        self.pending_events.append(("link_failed", code, reason))

    def _on_hello(self, hello, now_ms):
        if self.link_id is None:
            self.link_id = hello.link_id
        elif self.link_id != hello.link_id:
            return self._fail(ERROR_LINK_MISMATCH, "the other end resumes link %s, this end holds link %s"
                              % (hello.link_id.hex(), self.link_id.hex()), now_ms, True)
        self.phase = UP
        self.down_since = None
        self.timed_out = False
        self.hello_due = True
        listed = dict((ack.stream, ack) for ack in hello.resume)
        for stream_id in list(self.streams):
            s = self.streams[stream_id]
            ack = listed.get(stream_id)
            if ack is not None:
                if not s.send.acknowledge(ack.received):
                    self._protocol_reset(stream_id, "its Hello acknowledges bytes never sent")
                    continue
                s.peer_limit = max(s.peer_limit, ack.received + ack.window)
                if ack.fin and s.close_requested and ack.received == s.send.written():
                    s.fin_acked = True
                # Resend from what the peer has.
                s.send.sent = s.send.acked
                s.close_sent = s.fin_acked
                self._finish_if_done(stream_id)
            elif s.close_requested and s.fin_received():
                # The peer forgot it after it had everything, Close included.
                s.send.acknowledge(s.send.written())
                s.fin_acked = True
                s.advertised = (s.recv.received(), s.recv.limit(), True)
                self._finish_if_done(stream_id)
            else:
                reason = "the other end dropped this stream while the link was down"
                self._drop(stream_id, RESET_GONE, reason, False)
                self.pending_events.append(("reset", stream_id, RESET_GONE, reason))
        for stream_id in listed:
            tomb = self.tombstones.get(stream_id)
            if tomb is not None and tomb[0] == "reset":
                self.control.append(Reset(stream_id, tomb[1], tomb[2]))
        # A tombstone the peer no longer lists has nothing left to tell it.
        self.tombstones = dict((k, v) for k, v in self.tombstones.items() if k in listed)
        self.last_sent_ms = now_ms
        self.pending_events.append(("link_up",))

    def _on_open(self, frame, now_ms):
        sid = frame.stream
        if sid % 2 == 0:
            return self._fail(ERROR_PROTOCOL, "the other end opened stream %d, an id of this end" % sid, now_ms, True)
        if sid in self.streams:
            return  # sent again after a resume
        tomb = self.tombstones.get(sid)
        if tomb is not None and tomb[0] == "reset":
            return self.control.append(Reset(sid, tomb[1], tomb[2]))
        if sid <= self.highest_peer_stream:
            return self.control.append(Reset(sid, RESET_GONE, "stream %d already ended here" % sid))
        self.highest_peer_stream = sid
        if len(self.streams) >= self.max_streams:
            reason = "this end already holds %d streams, its limit" % len(self.streams)
            self._remember(sid, ("reset", RESET_TOO_MANY_STREAMS, reason))
            return self.control.append(Reset(sid, RESET_TOO_MANY_STREAMS, reason))
        self.streams[sid] = _Stream(frame.target, self.window)
        self.pending_events.append(("opened", sid, frame.target))

    def _on_data(self, frame):
        s = self.streams.get(frame.stream)
        if s is None:
            return  # finished or reset here; a copy sent before the peer knew
        try:
            advanced = s.recv.insert(frame.offset, frame.data, s.peer_final)
        except ValueError as refused:
            if refused.args[0] == RESET_FLOW_CONTROL:
                self._drop(frame.stream, RESET_FLOW_CONTROL, "data past the window this end gave", True)
                self.pending_events.append(("reset", frame.stream, RESET_FLOW_CONTROL,
                                            "the other end sent past the window"))
            else:
                self._protocol_reset(frame.stream, "data past its Close")
            return
        if advanced:
            if not s.readable_reported:
                s.readable_reported = True
                self.pending_events.append(("readable", frame.stream))
            self._report_closed(frame.stream)

    def _on_ack(self, ack):
        s = self.streams.get(ack.stream)
        if s is None:
            return
        if not s.send.acknowledge(ack.received):
            return self._protocol_reset(ack.stream, "it acknowledges bytes never sent")
        s.peer_limit = max(s.peer_limit, ack.received + ack.window)
        if ack.fin and s.close_requested and ack.received == s.send.written():
            s.fin_acked = True
        if s.write_blocked and len(s.send.data) < self.send_buffer:
            s.write_blocked = False
            self.pending_events.append(("writable", ack.stream))
        self._finish_if_done(ack.stream)

    def _on_close(self, frame):
        s = self.streams.get(frame.stream)
        if s is None:
            return
        consistent = ((s.peer_final is None or s.peer_final == frame.final_offset)
                      and s.recv.highest() <= frame.final_offset <= s.recv.limit())
        if not consistent:
            return self._protocol_reset(frame.stream, "its Close contradicts the data it sent")
        s.peer_final = frame.final_offset
        self._report_closed(frame.stream)

    def _report_closed(self, sid):
        s = self.streams.get(sid)
        if s is not None and s.fin_received() and not s.closed_reported:
            s.closed_reported = True
            self.pending_events.append(("closed", sid))

    def _protocol_reset(self, sid, what):
        reason = "the other end broke the protocol on stream %d: %s" % (sid, what)
        self._drop(sid, RESET_PROTOCOL, reason, True)
        self.pending_events.append(("reset", sid, RESET_PROTOCOL, reason))

    def _drop(self, sid, code, reason, tell):
        if self.streams.pop(sid, None) is None:
            return
        # Every reset reason passes here: the wire allows MAX_REASON bytes of it.
        reason = clip(reason, MAX_REASON)
        if tell and self.phase == UP:
            self.control.append(Reset(sid, code, reason))
        self._remember(sid, ("reset", code, reason))

    def _finish_if_done(self, sid):
        s = self.streams.get(sid)
        if s is not None and s.done():
            del self.streams[sid]
            self._remember(sid, ("done", s.recv.received()))
            self.pending_events.append(("finished", sid))

    def _remember(self, sid, tomb):
        self.tombstones.pop(sid, None)
        self.tombstones[sid] = tomb
        while len(self.tombstones) > MAX_TOMBSTONES:
            del self.tombstones[next(iter(self.tombstones))]

    # Time.

    def handle_timeout(self, now_ms):
        """The grace period of a lost link, and the silence of an up one."""
        if self.down_since is not None and self.phase != UP and now_ms >= self.down_since + self.grace_ms:
            reason = "the link to the other end was down for more than %d s" % (self.grace_ms // 1000)
            for sid in list(self.streams):
                self._drop(sid, RESET_LINK_TIMEOUT, reason, False)
                self.pending_events.append(("reset", sid, RESET_LINK_TIMEOUT, reason))
            if not self.timed_out:
                self.timed_out = True
                self.pending_events.append(("link_timed_out",))
            self.down_since = now_ms
        if (self.phase in (UP, HANDSHAKE) and not self.silence_reported
                and now_ms >= self.last_heard_ms + self.silence_ms):
            self.silence_reported = True
            self.pending_events.append(("link_silent",))

    def next_timeout(self):
        """When `transmit` or `handle_timeout` next has work with nothing arriving (ms)."""
        times = []
        if self.phase == UP:
            times.append(self.last_sent_ms + self.ping_interval_ms)
            if not self.silence_reported:
                times.append(self.last_heard_ms + self.silence_ms)
            for s in self.streams.values():
                if s.ack_owed_since is not None:
                    times.append(s.ack_owed_since + self.ack_delay_ms)
        else:
            if self.down_since is not None:
                times.append(self.down_since + self.grace_ms)
            if self.phase == HANDSHAKE and not self.silence_reported:
                times.append(self.last_heard_ms + self.silence_ms)
        return min(times) if times else None

    # Frames to the peer.

    def _next_frame(self, now_ms):
        if self.phase == DOWN:
            return None
        if self.phase == FAILED:
            frame, self.error_due = self.error_due, None
            return frame
        if self.phase == HANDSHAKE and not self.hello_due:
            return None
        if self.hello_due:
            self.hello_due = False
            return self._hello()
        if self.control:
            return self.control.pop(0)
        frame = self._owed_ack(now_ms)
        if frame is not None:
            return frame
        frame = self._next_data()
        if frame is not None:
            return frame
        for sid in sorted(self.streams):
            s = self.streams[sid]
            if s.close_requested and not s.close_sent and s.send.sent == s.send.written():
                s.close_sent = True
                return Close(sid, s.send.written())
        if now_ms >= self.last_sent_ms + self.ping_interval_ms:
            self.next_nonce += 1
            return Ping(self.next_nonce - 1)
        return None

    def _hello(self):
        resume = []
        for sid in sorted(self.streams):
            s = self.streams[sid]
            ack = s.ack(sid)
            s.advertised = (ack.received, s.recv.limit(), ack.fin)
            s.ack_owed_since = None
            resume.append(ack)
        for sid in sorted(self.tombstones):
            tomb = self.tombstones[sid]
            if tomb[0] == "done":
                resume.append(Ack(sid, tomb[1], 0, True))
        return Hello(VERSION_MAJOR, VERSION_MINOR, self.link_id, resume[:MAX_RESUME_ENTRIES])

    def _owed_ack(self, now_ms):
        quarter = self.window // 4
        # Data goes out now anyway: owed Acks ride along in the same write (a separate small
        # write before data makes a leg without nodelay hold the data for a delayed ACK).
        delay = 0 if any(s.sendable() for s in self.streams.values()) else self.ack_delay_ms
        for sid in sorted(self.streams):
            s = self.streams[sid]
            ack = s.ack(sid)
            limit = s.recv.limit()
            now = (ack.received, limit, ack.fin)
            if s.advertised == now:
                s.ack_owed_since = None
                continue
            # The first Ack gives the real window; a quarter of it moved is worth a frame now.
            urgent = (s.advertised is None or (ack.fin and not s.advertised[2])
                      or limit - s.advertised[1] >= quarter or ack.received - s.advertised[0] >= quarter)
            if s.ack_owed_since is None:
                s.ack_owed_since = now_ms
            if urgent or now_ms >= s.ack_owed_since + delay:
                s.advertised = now
                s.ack_owed_since = None
                self._finish_if_done(sid)
                return ack
        return None

    def _next_data(self):
        # Streams take turns after the one that sent last.
        order = sorted(self.streams)
        later = [sid for sid in order if sid > self.last_data]
        for sid in later + [sid for sid in order if sid <= self.last_data]:
            s = self.streams[sid]
            if s.sendable():
                offset, chunk = s.send.next_chunk(s.peer_limit, self.max_chunk)
                self.last_data = sid
                return Data(sid, offset, chunk)
        return None


def _now_ms():
    return int(time.monotonic() * 1000)


class _Conn(object):
    """One stream's TCP connection to sshd and the bytes waiting for it."""

    def __init__(self, sock):
        self.sock = sock
        self.out = bytearray()
        self.eof_read = False
        self.shut = False


# Bytes held for a socket or the link before we stop taking more: bounds memory.
_HIGH_WATER = 1024 * 1024
_READ_SIZE = 256 * 1024
# Link ids served at once (a browser has one per notebook tab); more are refused.
MAX_LINKS = 64
# Link ids whose acceptor the grace period ended, remembered so a late return is told why.
MAX_EXPIRED = 64
# How long a new connection may take to send its whole Hello.
HELLO_TIMEOUT_MS = 40000


class _Session(object):
    """One link id: its Acceptor, its streams' sshd connections, and the connection that is
    its current link (None while the link is down)."""

    def __init__(self, io, link_id, grace_ms):
        self.io = io
        self.link_id = link_id
        self.acceptor = Acceptor(_now_ms(), grace_ms=grace_ms)
        self.conns = {}
        self.link = None  # (fd in, fd out, close) of the current link
        self.link_buf = bytearray()
        self.timed_out = False

    def attach(self, link, first_bytes):
        """`link` becomes this link id's link; a link still attached is taken as lost."""
        self.detach()
        self.link = link
        self.acceptor.link_up(_now_ms())
        self.acceptor.feed(first_bytes, _now_ms())

    def detach(self):
        if self.link is None:
            return
        link_in, link_out, close = self.link
        self.link = None
        # What the old link did not take is resent from the peer's next Hello.
        self.link_buf = bytearray()
        self.io.want(link_in, 0)
        self.io.want(link_out, 0)
        self.acceptor.link_lost(_now_ms())
        close()

    def drop(self):
        """Ends everything: the link and every sshd connection."""
        self.detach()
        for sid in list(self.conns):
            self._drop_conn(sid)

    def _drop_conn(self, sid):
        conn = self.conns.pop(sid, None)
        if conn is not None:
            self.io.want(conn.sock, 0)
            conn.sock.close()

    def _connect(self, sid, target):
        if target != TARGET_SSH:
            return self.acceptor.reset(sid, RESET_REFUSED, "this bridge offers only the target ssh")
        port = self.io.sshd_port
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError as error:
            return self.acceptor.reset(sid, RESET_REFUSED, "sshd on 127.0.0.1:%d: %s" % (port, error))
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conns[sid] = _Conn(sock)

    def pump(self):
        """Acts on events and moves bytes between the acceptor and the buffers."""
        failed = False
        for event in self.acceptor.events():
            name = event[0]
            if name == "opened":
                self._connect(event[1], event[2])
            elif name in ("reset", "finished"):
                self._drop_conn(event[1])
            elif name in ("link_failed", "link_silent"):
                failed = True
            elif name == "link_timed_out":
                self.timed_out = True
        for sid, conn in list(self.conns.items()):
            s = self.acceptor.streams.get(sid)
            if s is None:
                if not conn.out:
                    self._drop_conn(sid)
                continue
            # Read from the acceptor only what the socket will soon take, so the receive
            # window (counted from what was read) is what bounds memory.
            if len(conn.out) < _HIGH_WATER:
                conn.out += self.acceptor.read(sid)
            if not conn.out and not conn.shut and s.fin_received() and not s.recv.ready:
                conn.shut = True
                try:
                    conn.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            mask = 0
            if not conn.eof_read and self.acceptor.room(sid) > 0:
                mask |= selectors.EVENT_READ
            if conn.out:
                mask |= selectors.EVENT_WRITE
            self.io.want(conn.sock, mask, lambda m, sid=sid: self._on_conn(sid, m))
        if self.link is None:
            return
        if len(self.link_buf) < _HIGH_WATER:
            self.link_buf += self.acceptor.transmit(_now_ms())
        if failed and not self.link_buf:
            return self.detach()
        link_in, link_out, _ = self.link
        masks = {link_in: 0 if failed else selectors.EVENT_READ}
        masks[link_out] = masks.get(link_out, 0) | (selectors.EVENT_WRITE if self.link_buf else 0)
        for fd, mask in masks.items():
            self.io.want(fd, mask, self._on_link)

    def _on_link(self, mask):
        if self.link is None:
            return
        link_in, link_out, _ = self.link
        if mask & selectors.EVENT_WRITE and self.link_buf:
            try:
                del self.link_buf[:os.write(link_out, self.link_buf)]
            except BlockingIOError:
                pass
            except OSError:
                return self.detach()
        if mask & selectors.EVENT_READ:
            try:
                data = os.read(link_in, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                return self.detach()
            self.acceptor.feed(data, _now_ms())

    def _on_conn(self, sid, mask):
        conn = self.conns.get(sid)
        if conn is None:
            return
        try:
            if mask & selectors.EVENT_WRITE and conn.out:
                del conn.out[:conn.sock.send(conn.out)]
            if mask & selectors.EVENT_READ:
                data = conn.sock.recv(min(self.acceptor.room(sid), _READ_SIZE))
                if data:
                    self.acceptor.write(sid, data)
                else:
                    conn.eof_read = True
                    self.acceptor.close(sid)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as error:
            self.acceptor.reset(sid, RESET_APPLICATION, "the connection to sshd failed: %s" % error)
            self._drop_conn(sid)


class _Pending(object):
    """A new connection whose first frame, the Hello that names its link, is still coming."""

    def __init__(self, link):
        self.link = link
        self.raw = bytearray()
        self.decoder = Decoder()
        self.since = _now_ms()


class Bridge(object):
    """The I/O around one Acceptor per link id. Every new connection (a listener's, or
    stdin/stdout) is a link whose first frame, a Hello, names its link id: it becomes the
    link of that id's acceptor (a new id gets a new one), replacing the connection that was
    (as a reloaded page does). sshd connections outlive links; an acceptor whose link stays
    down past the grace period is dropped with them."""

    def __init__(self, sshd_port, grace_ms=120000):
        self.sshd_port = sshd_port
        self.grace_ms = grace_ms
        self.sel = selectors.DefaultSelector()
        self.masks = {}
        self.sessions = {}  # link id -> _Session
        self.pending = {}  # fd in -> _Pending
        # link id -> (tombstones, highest peer stream) of an acceptor the grace period ended.
        self.expired = {}

    def want(self, fileobj, mask, handler=None):
        """Watches `fileobj` for `mask` (0: not at all), calling `handler(mask)` when ready."""
        # A file keeps its handler while it is watched (its fd is not reused before then).
        if self.masks.get(fileobj, 0) == mask:
            return
        if mask and fileobj in self.masks:
            self.sel.modify(fileobj, mask, self.sel.get_key(fileobj).data)
        elif mask:
            self.sel.register(fileobj, mask, handler)
        elif fileobj in self.masks:
            self.sel.unregister(fileobj)
        if mask:
            self.masks[fileobj] = mask
        else:
            self.masks.pop(fileobj, None)

    def add_link(self, link_in, link_out, close):
        """A new connection; its Hello will say which link it is."""
        os.set_blocking(link_in, False)
        os.set_blocking(link_out, False)
        pending = _Pending((link_in, link_out, close))
        self.pending[link_in] = pending
        self.want(link_in, selectors.EVENT_READ, lambda mask: self._on_pending(pending))

    def _end_pending(self, pending):
        link_in, link_out, close = pending.link
        self.pending.pop(link_in, None)
        self.want(link_in, 0)
        self.want(link_out, 0)

    def _refuse(self, pending, code, reason):
        """Tells a connection why, as the acceptor would, and closes it."""
        self._end_pending(pending)
        try:
            os.write(pending.link[1], encode(Error(code, clip(reason, MAX_REASON))))
        except OSError:
            pass
        pending.link[2]()

    def _on_pending(self, pending):
        link_in = pending.link[0]
        try:
            data = os.read(link_in, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._end_pending(pending)
            return pending.link[2]()
        pending.raw += data
        pending.decoder.push(data)
        try:
            frame = pending.decoder.next_frame()
        except DecodeError as error:
            return self._refuse(pending, error.code, str(error))
        if frame is None:
            return
        if type(frame) is not Hello:
            return self._refuse(pending, ERROR_PROTOCOL, "a %s frame came before Hello" % type(frame).__name__)
        session = self.sessions.get(frame.link_id)
        if session is None:
            if len(self.sessions) >= MAX_LINKS:
                return self._refuse(pending, ERROR_LINK_MISMATCH,
                                    "this bridge already serves %d links, its limit" % MAX_LINKS)
            session = _Session(self, frame.link_id, self.grace_ms)
            old = self.expired.pop(frame.link_id, None)
            if old is not None:
                session.acceptor.tombstones, session.acceptor.highest_peer_stream = old
            self.sessions[frame.link_id] = session
        self._end_pending(pending)
        # The acceptor reads the Hello again, and whatever came after it.
        session.attach(pending.link, bytes(pending.raw))

    def _expire(self, session):
        """The grace period ended this link id: its acceptor goes, its reset streams are
        remembered so that a late return of the link hears Reset, not silence."""
        session.drop()
        del self.sessions[session.link_id]
        self.expired[session.link_id] = (session.acceptor.tombstones, session.acceptor.highest_peer_stream)
        while len(self.expired) > MAX_EXPIRED:
            del self.expired[next(iter(self.expired))]

    def _attached(self):
        return bool(self.pending) or any(s.link is not None for s in self.sessions.values())

    def run(self, listener=None):
        """Serves until no link is left when there is no listener; forever otherwise."""
        if listener is not None:
            listener.setblocking(False)
            self.want(listener, selectors.EVENT_READ, lambda mask: self._accept(listener))
        while listener is not None or self._attached():
            for session in list(self.sessions.values()):
                session.pump()
                if session.timed_out:
                    self._expire(session)
            if listener is None and not self._attached():
                break
            deadlines = [s.acceptor.next_timeout() for s in self.sessions.values()]
            deadlines += [p.since + HELLO_TIMEOUT_MS for p in self.pending.values()]
            deadlines = [d for d in deadlines if d is not None]
            timeout = None if not deadlines else max(min(deadlines) - _now_ms(), 0) / 1000.0
            for key, mask in self.sel.select(timeout):
                # An earlier handler in this batch may have closed it (or its fd's new owner
                # is called for nothing: every handler takes a spurious wake-up).
                if key.fileobj in self.masks:
                    self.sel.get_key(key.fileobj).data(mask)
            now = _now_ms()
            for session in self.sessions.values():
                session.acceptor.handle_timeout(now)
            for pending in list(self.pending.values()):
                if now >= pending.since + HELLO_TIMEOUT_MS:
                    self._refuse(pending, ERROR_PROTOCOL, "no Hello within %d s" % (HELLO_TIMEOUT_MS // 1000))
        for session in list(self.sessions.values()):
            session.drop()

    def _accept(self, listener):
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        # The socket object stays referenced by its close until the link ends.
        self.add_link(sock.fileno(), sock.fileno(), sock.close)


def listen_unix(path):
    """A Unix socket only this user may open; a stale one from an earlier run is replaced."""
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(16)
    return listener


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sshd-port", type=int, required=True, help="the container's sshd on 127.0.0.1")
    parser.add_argument("--listen", metavar="PATH",
                        help="serve links on this Unix socket, each new connection resuming the "
                             "link its Hello names, instead of one link on stdin/stdout")
    parser.add_argument("--grace-ms", type=int, default=120000,
                        help="how long streams wait for a lost link to come back (tests shorten it)")
    args = parser.parse_args(argv)
    bridge = Bridge(args.sshd_port, args.grace_ms)
    if args.listen:
        bridge.run(listen_unix(args.listen))
    else:
        # One link: its end is the end of this process, so nothing resumes.
        bridge.add_link(sys.stdin.fileno(), sys.stdout.fileno(), lambda: None)
        bridge.run()


if __name__ == "__main__":
    main()
