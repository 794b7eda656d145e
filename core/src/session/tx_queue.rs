//! The transmit queue: this side's messages from `send` until the peer acknowledges
//! them (PROTOCOL.md §4.3 "Retention").

use crate::wire::frame::peek_header;
use crate::wire::{Frame, HEADER_LEN};

/// The caller's transmit buffer, `buf[start..end]` in use:
///
/// ```text
///   start          sent    boundary          end
///     | handed to the | frame in |  not yet     |
///     | transport     | progress |  handed out  |
/// ```
///
/// In binary mode it holds whole MSG frames, consecutive in sequence number, the
/// first being the oldest unacknowledged one; `start` moves only when an
/// acknowledgement drops frames. In plain text it holds lines, dropped once sent.
#[derive(Debug)]
pub(super) struct TxQueue<T> {
    buf: T,
    start: usize,
    sent: usize,
    end: usize,
    /// End of the frame (plain text: line) that a write stopped inside, or `sent` when
    /// the last write ended on a boundary. Control frames wait while
    /// `sent < boundary`: a frame already partly written is finished first, and then
    /// they go before the next one (PROTOCOL.md §4.3 "Batching").
    boundary: usize,
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TxQueue<T> {
    pub(super) fn new(buf: T) -> Self {
        TxQueue {
            buf,
            start: 0,
            sent: 0,
            end: 0,
            boundary: 0,
        }
    }

    /// Length of the caller's buffer.
    pub(super) fn capacity(&self) -> usize {
        self.buf.as_ref().len()
    }

    /// True when a write stopped inside a frame (plain text: line).
    pub(super) fn is_partial(&self) -> bool {
        self.sent < self.boundary
    }

    /// True when queued bytes wait for the transport.
    pub(super) fn has_unsent(&self) -> bool {
        self.sent < self.end
    }

    /// Room for `need` more bytes at the end, compacting first if that makes room;
    /// `None` when there is none. [`TxQueue::commit`] then counts them.
    pub(super) fn slot(&mut self, need: usize) -> Option<&mut [u8]> {
        if self.end.saturating_add(need) > self.capacity() {
            self.compact();
        }
        let end = self.end.checked_add(need)?;
        self.buf.as_mut().get_mut(self.end..end)
    }

    /// Counts `n` bytes written into the last [`TxQueue::slot`].
    pub(super) fn commit(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.capacity());
    }

    /// The queued bytes not yet handed to the transport.
    pub(super) fn unsent(&self) -> &[u8] {
        self.buf.as_ref().get(self.sent..self.end).unwrap_or(&[])
    }

    /// The rest of the frame (plain text: line) in progress, if a write stopped
    /// inside one: after the end only that goes out, so that an ERROR (or `ERR` line)
    /// after it starts on a boundary.
    pub(super) fn rest_of_frame(&self) -> &[u8] {
        self.buf.as_ref().get(self.sent..self.boundary).unwrap_or(&[])
    }

    /// Records that the transport took `n` bytes of [`TxQueue::rest_of_frame`] while
    /// a frame is in progress, else of [`TxQueue::unsent`] (more is not counted), and
    /// finds where the frame (plain text: line) they end in ends. Plain text is never
    /// acknowledged: its bytes are done with once sent.
    pub(super) fn advance(&mut self, n: usize, plain: bool) {
        let limit = if self.is_partial() { self.boundary } else { self.end };
        self.sent = self.sent.saturating_add(n).min(limit);
        while self.boundary < self.sent {
            let rest = self.buf.as_ref().get(self.boundary..self.end).unwrap_or(&[]);
            let len = if plain {
                rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1)
            } else {
                peek_header(rest).map_or(rest.len(), |(_, body_len)| HEADER_LEN + body_len as usize)
            };
            // At least one byte, so that this ends even on bytes that are no frame.
            self.boundary = self.boundary.saturating_add(len.max(1)).min(self.end);
        }
        if plain {
            self.start = self.sent;
        }
        if self.start == self.end {
            self.start = 0;
            self.sent = 0;
            self.end = 0;
            self.boundary = 0;
        }
    }

    /// Number of frames, from the oldest, that have completely left on this
    /// connection.
    pub(super) fn frames_sent(&self) -> u64 {
        let mut at = self.start;
        let mut n = 0;
        while let Some((_, body_len)) = self.buf.as_ref().get(at..self.sent).and_then(peek_header) {
            at = at.saturating_add(HEADER_LEN + body_len as usize);
            if at > self.sent {
                break;
            }
            n += 1;
        }
        n
    }

    /// Drops up to `n` frames from the front (acknowledged); returns how many it
    /// dropped.
    pub(super) fn drop_front(&mut self, n: u64) -> u64 {
        let mut dropped = 0;
        while dropped < n {
            let Some((_, body_len)) = self.buf.as_ref().get(self.start..self.end).and_then(peek_header) else {
                break;
            };
            self.start = self.start.saturating_add(HEADER_LEN + body_len as usize).min(self.end);
            dropped += 1;
        }
        // Only after a reconnect, where a resumed WELCOME acknowledges frames that
        // went out on the old connection and nothing is in flight.
        self.sent = self.sent.max(self.start);
        self.boundary = self.boundary.max(self.start);
        dropped
    }

    /// Starts over on a new connection: every queued frame goes out again.
    pub(super) fn rewind(&mut self) {
        self.sent = self.start;
        self.boundary = self.start;
    }

    /// Gives the queued frames the sequence numbers `first`, `first + 1`, ...
    /// (PROTOCOL.md §4.6); returns the number after the last.
    pub(super) fn renumber(&mut self, first: u64) -> u64 {
        let mut at = self.start;
        let mut seq = first;
        let end = self.end;
        while let Some(rest) = self.buf.as_mut().get_mut(at..end) {
            let Some((_, body_len)) = peek_header(rest) else { break };
            Frame::new_unchecked(rest).set_msg_seq(seq);
            at = at.saturating_add(HEADER_LEN + body_len as usize);
            seq += 1;
        }
        seq
    }

    /// Moves the queued bytes to the front of the buffer.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        super::move_to_front(self.buf.as_mut(), self.start, self.end);
        self.sent -= self.start;
        self.boundary -= self.start;
        self.end -= self.start;
        self.start = 0;
    }
}
