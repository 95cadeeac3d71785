//! One stream's two buffers: bytes written and not yet acknowledged (kept for resending after
//! a resume), and bytes received, reassembled in order from Data frames that may come
//! reordered, duplicated, overlapping or split.

use std::collections::{BTreeMap, VecDeque};

/// Bytes the application wrote, from the first one the peer has not acknowledged.
#[derive(Debug, Default)]
pub(crate) struct SendBuf {
    /// Offset of `data[0]`: everything before it is acknowledged and dropped.
    acked: u64,
    /// Offset of the next byte to send; `acked <= sent <= written()`.
    sent: u64,
    data: VecDeque<u8>,
}

impl SendBuf {
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    pub(crate) fn written(&self) -> u64 {
        self.acked + self.data.len() as u64
    }

    /// Bytes held (written and not acknowledged).
    pub(crate) fn held(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.data.extend(bytes.iter().copied());
    }

    /// Up to `max` bytes from `sent`, not past `limit`; advances `sent`.
    pub(crate) fn next_chunk(&mut self, limit: u64, max: usize) -> Option<(u64, Vec<u8>)> {
        let end = limit.min(self.written()).min(self.sent + max as u64);
        if end <= self.sent {
            return None;
        }
        let from = (self.sent - self.acked) as usize;
        let to = (end - self.acked) as usize;
        // Two slice copies rather than one per byte: this is the bulk path.
        let (head, tail) = self.data.as_slices();
        let mut chunk = Vec::with_capacity(to - from);
        if from < head.len() {
            chunk.extend_from_slice(&head[from..to.min(head.len())]);
        }
        if to > head.len() {
            chunk.extend_from_slice(&tail[from.saturating_sub(head.len())..to - head.len()]);
        }
        let offset = self.sent;
        self.sent = end;
        Some((offset, chunk))
    }

    /// The peer has everything before `received`. Returns `false` (and changes nothing) if
    /// that is more than was ever written: the peer is confused or lying.
    pub(crate) fn acknowledge(&mut self, received: u64) -> bool {
        if received > self.written() {
            return false;
        }
        if received > self.acked {
            self.data.drain(..(received - self.acked) as usize);
            self.acked = received;
            self.sent = self.sent.max(received);
        }
        true
    }

    /// After a resume: send again from what the peer acknowledged.
    pub(crate) fn rewind(&mut self) {
        self.sent = self.acked;
    }
}

/// Why received data is refused; the stream is reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Data past the window the receiver gave.
    BeyondWindow,
    /// Data past the final offset of a `Close`.
    BeyondFinal,
}

/// Bytes received: the contiguous part ready for the application, and ranges past a gap.
#[derive(Debug)]
pub(crate) struct RecvBuf {
    /// Offset of `ready[0]`: bytes the application has read.
    read: u64,
    /// Contiguous bytes `[read, received)`.
    ready: VecDeque<u8>,
    /// Ranges past `received`, by start offset, never overlapping each other.
    pending: BTreeMap<u64, Vec<u8>>,
    /// How far past `read` the peer may send.
    window: u64,
}

impl RecvBuf {
    pub(crate) fn new(window: u32) -> Self {
        Self {
            read: 0,
            ready: VecDeque::new(),
            pending: BTreeMap::new(),
            window: u64::from(window),
        }
    }

    pub(crate) fn received(&self) -> u64 {
        self.read + self.ready.len() as u64
    }

    pub(crate) fn read_offset(&self) -> u64 {
        self.read
    }

    /// The first offset the peer may not send: the window counts from what the application
    /// read, so memory stays within the window whatever the application does.
    pub(crate) fn limit(&self) -> u64 {
        self.read + self.window
    }

    /// Bytes buffered, in order and past gaps.
    pub(crate) fn buffered(&self) -> usize {
        self.ready.len() + self.pending.values().map(Vec::len).sum::<usize>()
    }

    /// The end of the furthest byte held, past gaps included.
    pub(crate) fn highest(&self) -> u64 {
        self.pending
            .iter()
            .next_back()
            .map_or(self.received(), |(&start, bytes)| {
                start + bytes.len() as u64
            })
    }

    pub(crate) fn readable(&self) -> usize {
        self.ready.len()
    }

    /// Takes in `bytes` at `offset`. What is below `received` (already there) is dropped,
    /// and so is every part of a pending range already held, so no byte is ever delivered
    /// twice. Returns how far `received` advanced.
    pub(crate) fn insert(
        &mut self,
        offset: u64,
        bytes: &[u8],
        final_offset: Option<u64>,
    ) -> Result<u64, Refused> {
        let end = offset.saturating_add(bytes.len() as u64);
        if final_offset.is_some_and(|fin| end > fin) {
            return Err(Refused::BeyondFinal);
        }
        if end > self.limit() {
            return Err(Refused::BeyondWindow);
        }
        let before = self.received();
        let mut start = offset.max(before);
        // Store the parts of [start, end) no pending range covers.
        while start < end {
            let covering = self
                .pending
                .range(..=start)
                .next_back()
                .map(|(&s, v)| s + v.len() as u64)
                .filter(|&covered_to| covered_to > start);
            if let Some(covered_to) = covering {
                start = covered_to;
                continue;
            }
            let gap_end = self
                .pending
                .range(start..)
                .next()
                .map_or(end, |(&next, _)| next.min(end));
            let from = (start - offset) as usize;
            let to = (gap_end - offset) as usize;
            self.pending.insert(start, bytes[from..to].to_vec());
            start = gap_end;
        }
        // Move what is now contiguous to `ready`.
        loop {
            let received = self.received();
            match self.pending.first_entry() {
                Some(entry) if *entry.key() == received => self.ready.extend(entry.remove()),
                _ => break,
            }
        }
        Ok(self.received() - before)
    }

    /// Moves every ready byte to `out`; returns how many.
    pub(crate) fn read_into(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.ready.len();
        let (head, tail) = self.ready.as_slices();
        out.extend_from_slice(head);
        out.extend_from_slice(tail);
        self.ready.clear();
        self.read += n as u64;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_repeated_ranges_deliver_each_byte_once() {
        let whole: Vec<u8> = (0..100).collect();
        let mut recv = RecvBuf::new(1000);
        assert_eq!(recv.insert(50, &whole[50..60], None), Ok(0));
        assert_eq!(recv.insert(55, &whole[55..80], None), Ok(0));
        assert_eq!(recv.insert(40, &whole[40..90], None), Ok(0));
        assert_eq!(recv.insert(0, &whole[0..10], None), Ok(10));
        assert_eq!(recv.insert(5, &whole[5..40], None), Ok(80));
        assert_eq!(recv.insert(0, &whole[0..100], None), Ok(10));
        let mut out = Vec::new();
        assert_eq!(recv.read_into(&mut out), 100);
        assert_eq!(out, whole);
        assert_eq!(recv.buffered(), 0);
    }

    #[test]
    fn the_window_counts_from_what_was_read() {
        let mut recv = RecvBuf::new(10);
        assert_eq!(recv.insert(0, &[1; 10], None), Ok(10));
        assert_eq!(recv.insert(10, &[1], None), Err(Refused::BeyondWindow));
        recv.read_into(&mut Vec::new());
        assert_eq!(recv.limit(), 20);
        assert_eq!(recv.insert(10, &[1; 10], Some(20)), Ok(10));
        assert_eq!(recv.insert(20, &[], Some(20)), Ok(0));
        assert_eq!(
            recv.insert(19, &[1, 2], Some(20)),
            Err(Refused::BeyondFinal)
        );
    }

    #[test]
    fn chunks_match_what_was_written_when_the_ring_buffer_wraps() {
        let mut send = SendBuf::default();
        let mut model: Vec<u8> = Vec::new();
        let mut next = 0u8;
        for round in 0..200usize {
            let n = (round * 7) % 23;
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            send.push(&bytes);
            model.extend(&bytes);
            while let Some((offset, chunk)) = send.next_chunk(u64::MAX, 5 + round % 9) {
                let at = offset as usize;
                assert_eq!(chunk, model[at..at + chunk.len()]);
            }
            let ack = send.acked() + (send.held() as u64 * 2) / 3;
            assert!(send.acknowledge(ack));
            if round % 5 == 0 {
                send.rewind();
            }
        }
    }

    #[test]
    fn the_send_buffer_resends_from_the_acknowledged_offset() {
        let mut send = SendBuf::default();
        send.push(b"abcdefgh");
        assert_eq!(send.next_chunk(5, 3), Some((0, b"abc".to_vec())));
        assert_eq!(send.next_chunk(5, 3), Some((3, b"de".to_vec())));
        assert_eq!(send.next_chunk(5, 3), None);
        assert!(send.acknowledge(2));
        assert!(!send.acknowledge(9));
        send.rewind();
        assert_eq!(send.next_chunk(100, 100), Some((2, b"cdefgh".to_vec())));
        assert_eq!(send.held(), 6);
    }
}
