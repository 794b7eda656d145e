//! The transmit queue: this side's messages from `send` until the peer acknowledges
//! them (PROTOCOL.md §4.3 "Retention").

use crate::wire::{HEADER_LEN, MSG_OVERHEAD};

/// The caller's transmit buffer as a ring: the bytes from `start` to `end` are in use.
///
/// ```text
///   start          sent    boundary          end
///     | handed to the | frame in |  not yet     |
///     | transport     | progress |  handed out  |
/// ```
///
/// The four positions count bytes, not indices: a position `p` is at index `p` or,
/// past the buffer's end, `p - capacity` (the queue wraps around). `start` is always
/// below the capacity and `end - start` at most the capacity, so no position reaches
/// twice the capacity. A frame may wrap too: nothing queued ever moves, so room freed
/// at the front by an acknowledgement is room for the next message at once, however
/// large the buffer and however much it still holds.
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
    /// Frames from `start` to `counted` have completely left (`counted <= sent`), and
    /// there are `out` of them: ACKs are checked against it (PROTOCOL.md §4.3), and
    /// counting on from where it stopped keeps that check from walking the whole
    /// window at every ACK. Binary mode only: in plain text both stay 0 (lines are
    /// never acknowledged) and `counted` may be behind `start`.
    counted: usize,
    out: usize,
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TxQueue<T> {
    pub(super) fn new(buf: T) -> Self {
        TxQueue {
            buf,
            start: 0,
            sent: 0,
            end: 0,
            boundary: 0,
            counted: 0,
            out: 0,
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

    /// Queues `head` then `body` (a frame, or a line and its newline) if the buffer has
    /// room for both (wherever it is: the room may wrap around the buffer's end);
    /// false, with nothing written, if not.
    pub(super) fn push(&mut self, head: &[u8], body: &[u8]) -> bool {
        let free = self.capacity().saturating_sub(self.end.saturating_sub(self.start));
        if head.len().saturating_add(body.len()) > free {
            return false;
        }
        self.write_at(self.end, head);
        self.write_at(self.end.saturating_add(head.len()), body);
        self.end = self.end.saturating_add(head.len()).saturating_add(body.len());
        true
    }

    /// The queued bytes not yet handed to the transport, up to the buffer's end (the
    /// rest, if they wrap, once these are taken).
    pub(super) fn unsent(&self) -> &[u8] {
        self.piece(self.sent, self.end)
    }

    /// The rest of the frame (plain text: line) in progress, if a write stopped
    /// inside one: after the end only that goes out, so that an ERROR (or `ERR` line)
    /// after it starts on a boundary. Up to the buffer's end, like [`TxQueue::unsent`].
    pub(super) fn rest_of_frame(&self) -> &[u8] {
        self.piece(self.sent, self.boundary)
    }

    /// Records that the transport took `n` bytes of [`TxQueue::rest_of_frame`] while
    /// a frame is in progress, else of [`TxQueue::unsent`] (more is not counted), and
    /// finds where the frame (plain text: line) they end in ends. Plain text is never
    /// acknowledged: its bytes are done with once sent.
    pub(super) fn advance(&mut self, n: usize, plain: bool) {
        let limit = if self.is_partial() { self.boundary } else { self.end };
        self.sent = self.sent.saturating_add(n).min(limit);
        while self.boundary < self.sent {
            let len = if plain {
                self.line_len_at(self.boundary, self.end)
            } else {
                self.frame_len_at(self.boundary, self.end)
                    .unwrap_or(self.end.saturating_sub(self.boundary))
            };
            // At least one byte, so that this ends even on bytes that are no frame.
            self.boundary = self.boundary.saturating_add(len.max(1)).min(self.end);
        }
        if plain {
            self.start = self.sent;
            self.rebase();
        } else {
            self.count_sent();
        }
        if self.start == self.end {
            self.start = 0;
            self.sent = 0;
            self.end = 0;
            self.boundary = 0;
            self.counted = 0;
            self.out = 0;
        }
    }

    /// Number of frames, from the oldest, that have completely left on this
    /// connection.
    pub(super) fn frames_sent(&self) -> u64 {
        self.out as u64
    }

    /// Counts the frames that completely left since the last count.
    fn count_sent(&mut self) {
        while let Some(len) = self.frame_len_at(self.counted, self.sent) {
            let next = self.counted.saturating_add(len);
            if next > self.sent {
                break;
            }
            self.counted = next;
            self.out += 1;
        }
    }

    /// Drops up to `n` frames from the front (acknowledged); returns how many it
    /// dropped.
    pub(super) fn drop_front(&mut self, n: u64) -> u64 {
        let mut dropped: usize = 0;
        while (dropped as u64) < n {
            let Some(len) = self.frame_len_at(self.start, self.end) else {
                break;
            };
            self.start = self.start.saturating_add(len).min(self.end);
            dropped += 1;
        }
        // The dropped frames were the oldest: those counted as sent go first.
        self.out = self.out.saturating_sub(dropped);
        if self.counted < self.start {
            self.counted = self.start;
            self.out = 0;
        }
        // Only after a reconnect, where a resumed WELCOME acknowledges frames that
        // went out on the old connection and nothing is in flight.
        self.sent = self.sent.max(self.start);
        self.boundary = self.boundary.max(self.start);
        self.rebase();
        dropped as u64
    }

    /// Starts over on a new connection: every queued frame goes out again.
    pub(super) fn rewind(&mut self) {
        self.sent = self.start;
        self.boundary = self.start;
        self.counted = self.start;
        self.out = 0;
    }

    /// Gives the queued frames the sequence numbers `first`, `first + 1`, ...
    /// (PROTOCOL.md §4.6); returns the number after the last.
    pub(super) fn renumber(&mut self, first: u64) -> u64 {
        let mut at = self.start;
        let mut seq = first;
        let end = self.end;
        while let Some(len) = self.frame_len_at(at, end) {
            // A MSG's sequence number follows its header (PROTOCOL.md §3.5).
            if at.saturating_add(MSG_OVERHEAD) <= end {
                self.write_at(at.saturating_add(HEADER_LEN), &seq.to_be_bytes());
            }
            at = at.saturating_add(len);
            seq += 1;
        }
        seq
    }

    /// The index of position `at` (below twice the capacity).
    fn index(&self, at: usize) -> usize {
        let cap = self.capacity();
        if at >= cap {
            at - cap
        } else {
            at
        }
    }

    /// The bytes from position `from` to `to`, up to the buffer's end: the first of at
    /// most two pieces.
    fn piece(&self, from: usize, to: usize) -> &[u8] {
        let i = self.index(from);
        let len = to.saturating_sub(from).min(self.capacity().saturating_sub(i));
        self.buf.as_ref().get(i..i.saturating_add(len)).unwrap_or(&[])
    }

    /// Writes `data` from position `at` on, wrapping around the buffer's end.
    // Called from `push` twice and from `renumber`: one copy of it (flash).
    #[inline(never)]
    fn write_at(&mut self, at: usize, data: &[u8]) {
        let i = self.index(at);
        let room = self.capacity().saturating_sub(i);
        let (first, rest) = data.split_at(data.len().min(room));
        let buf = self.buf.as_mut();
        if let Some(dst) = buf.get_mut(i..i.saturating_add(first.len())) {
            dst.copy_from_slice(first);
        }
        if let Some(dst) = buf.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
    }

    /// Length of the frame at position `at`, header included, if its header is
    /// queued before `limit` (PROTOCOL.md §3.1: a type byte, then the body's length,
    /// big-endian; read byte by byte, as it may wrap around the buffer's end).
    fn frame_len_at(&self, at: usize, limit: usize) -> Option<usize> {
        if limit.saturating_sub(at) < HEADER_LEN {
            return None;
        }
        let buf = self.buf.as_ref();
        let mut i = self.index(at);
        let mut body_len = 0usize;
        for _ in 1..HEADER_LEN {
            i += 1;
            if i >= buf.len() {
                i = 0;
            }
            body_len = body_len << 8 | usize::from(*buf.get(i)?);
        }
        Some(HEADER_LEN.saturating_add(body_len))
    }

    /// Length of the line at position `at`, its newline included, or of the bytes up
    /// to `limit` if it has none yet.
    fn line_len_at(&self, at: usize, limit: usize) -> usize {
        let first = self.piece(at, limit);
        if let Some(i) = first.iter().position(|&b| b == b'\n') {
            return i + 1;
        }
        let wrapped = limit.saturating_sub(at).saturating_sub(first.len());
        let second = self.buf.as_ref().get(..wrapped).unwrap_or(&[]);
        first.len() + second.iter().position(|&b| b == b'\n').map_or(second.len(), |i| i + 1)
    }

    /// Keeps every position below twice the capacity: once `start` has gone round,
    /// all four go back by one capacity.
    fn rebase(&mut self) {
        let cap = self.capacity();
        if cap > 0 && self.start >= cap {
            self.start -= cap;
            self.sent -= cap;
            self.boundary -= cap;
            self.end -= cap;
            self.counted = self.counted.saturating_sub(cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::msg_head;
    use crate::wire::{Frame, Repr};

    /// A MSG frame of `payload` as `send` queues it.
    fn push_msg<T: AsRef<[u8]> + AsMut<[u8]>>(q: &mut TxQueue<T>, seq: u64, payload: &[u8]) -> bool {
        q.push(&msg_head(seq, payload.len()).unwrap(), payload)
    }

    /// Everything the transport would take, piece by piece, as `poll_transmit` hands
    /// it out (the rest of a frame in progress first).
    fn send_all<T: AsRef<[u8]> + AsMut<[u8]>>(q: &mut TxQueue<T>, plain: bool) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::new();
        for _ in 0..8 {
            let piece = if q.is_partial() { q.rest_of_frame() } else { q.unsent() };
            let n = piece.len();
            out.extend_from_slice(piece);
            q.advance(n, plain);
        }
        out
    }

    fn frame_bytes(seq: u64, payload: &[u8]) -> std::vec::Vec<u8> {
        let mut b = std::vec![0u8; MSG_OVERHEAD + payload.len()];
        Repr::Msg { seq, payload }.emit(&mut b).unwrap();
        b
    }

    /// Frames from `start` that completely left, counted from scratch.
    fn walked<T: AsRef<[u8]> + AsMut<[u8]>>(q: &TxQueue<T>) -> u64 {
        let mut at = q.start;
        let mut n = 0;
        while let Some(len) = q.frame_len_at(at, q.sent) {
            at += len;
            if at > q.sent {
                break;
            }
            n += 1;
        }
        n
    }

    /// Pseudo-random numbers below `n` (xorshift), the same for the same seed.
    fn numbers(mut state: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        }
    }

    /// Random sends, partial writes, acknowledgements and reconnects against a model
    /// of the frames in flight: the bytes that leave are the frames in order, each
    /// once per connection, and the count of frames sent is always the walked one.
    #[test]
    fn random_schedules_keep_frames_whole_and_in_order() {
        let mut next = numbers(0x2545_f491_4f6c_dd1d);
        for _ in 0..200 {
            let mut q = TxQueue::new([0u8; 97]);
            // Frames queued and not yet dropped, oldest first, and their bytes sent on
            // this connection so far.
            let mut queued: std::collections::VecDeque<std::vec::Vec<u8>> = Default::default();
            let mut wire = std::vec::Vec::new();
            let mut seq = 1;
            for _ in 0..300 {
                match next(4) {
                    0 => {
                        let len = next(40) as usize;
                        let payload = std::vec![seq as u8; len];
                        if push_msg(&mut q, seq, &payload) {
                            queued.push_back(frame_bytes(seq, &payload));
                            seq += 1;
                        }
                    }
                    1 => {
                        let piece = if q.is_partial() { q.rest_of_frame() } else { q.unsent() };
                        let n = (next(60) as usize).min(piece.len());
                        wire.extend_from_slice(&piece[..n]);
                        q.advance(n, false);
                    }
                    2 => {
                        let k = next(3).min(q.frames_sent());
                        assert_eq!(q.drop_front(k), k);
                        for _ in 0..k {
                            let f = queued.pop_front().unwrap();
                            assert!(wire.starts_with(&f), "a dropped frame had left whole");
                            wire.drain(..f.len());
                        }
                    }
                    _ => {
                        if next(8) == 0 {
                            q.rewind();
                            wire.clear();
                            // A resumed WELCOME may acknowledge frames that left only
                            // on the old connection (PROTOCOL.md §4.6).
                            let k = next(3).min(queued.len() as u64);
                            assert_eq!(q.drop_front(k), k);
                            queued.drain(..k as usize);
                        }
                    }
                }
                assert_eq!(q.frames_sent(), walked(&q));
                let expected: std::vec::Vec<u8> = queued.iter().flatten().copied().collect();
                assert!(expected.starts_with(&wire), "the bytes sent are the frames in order");
                assert!(q.start < q.capacity() && q.end - q.start <= q.capacity());
            }
        }
    }

    /// Plain text: random lines and partial writes; what leaves is the lines in
    /// order, each once, and the queue frees what it sent.
    #[test]
    fn random_plain_lines_leave_in_order() {
        let mut next = numbers(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let mut q = TxQueue::new([0u8; 61]);
            let mut pushed = std::vec::Vec::new();
            let mut wire = std::vec::Vec::new();
            for i in 0..300u32 {
                if next(2) == 0 {
                    let line = std::vec![b'a' + (i % 26) as u8; next(20) as usize];
                    if q.push(&line, b"\n") {
                        pushed.extend_from_slice(&line);
                        pushed.push(b'\n');
                    }
                } else {
                    let piece = if q.is_partial() { q.rest_of_frame() } else { q.unsent() };
                    let n = (next(30) as usize).min(piece.len());
                    wire.extend_from_slice(&piece[..n]);
                    q.advance(n, true);
                }
                assert!(pushed.starts_with(&wire));
                assert_eq!(q.end - q.start, pushed.len() - wire.len(), "sent lines are freed");
                assert!(q.start < q.capacity());
            }
        }
    }

    #[test]
    fn msg_head_is_the_start_of_the_frame() {
        let payload = b"hello";
        let head = msg_head(7, payload.len()).unwrap();
        assert_eq!(&frame_bytes(7, payload)[..MSG_OVERHEAD], head);
    }

    #[test]
    fn room_freed_at_the_front_is_used_at_once_and_nothing_moves() {
        // Ten 100-byte frames (87 bytes of payload) fill 1,000 bytes.
        let mut q = TxQueue::new([0u8; 1000]);
        for seq in 1..=10 {
            assert!(push_msg(&mut q, seq, &[seq as u8; 87]));
        }
        assert!(!push_msg(&mut q, 11, &[11; 87]), "full");
        let sent = send_all(&mut q, false);
        assert_eq!(sent.len(), 1000);
        assert_eq!(q.frames_sent(), 10);
        // One acknowledged: its 100 bytes take the next frame, which wraps.
        assert_eq!(q.drop_front(1), 1);
        let before: std::vec::Vec<u8> = q.buf[100..].to_vec();
        assert!(push_msg(&mut q, 11, &[11; 87]));
        assert_eq!(&q.buf[100..], &before[..], "nothing queued moved");
        assert_eq!(send_all(&mut q, false), frame_bytes(11, &[11; 87]));
        assert_eq!(q.frames_sent(), 10);
    }

    #[test]
    fn a_frame_can_wrap_around_the_end() {
        let mut q = TxQueue::new([0u8; 256]);
        assert!(push_msg(&mut q, 1, &[1; 87])); // 0..100
        assert!(push_msg(&mut q, 2, &[2; 87])); // 100..200
        send_all(&mut q, false);
        assert_eq!(q.drop_front(1), 1);
        // 100 bytes from 200: 56 at the end, 44 at the front.
        assert!(push_msg(&mut q, 3, &[3; 87]));
        assert_eq!(q.unsent().len(), 56, "the first piece ends at the buffer's end");
        assert_eq!(send_all(&mut q, false), frame_bytes(3, &[3; 87]));
        assert_eq!(q.frames_sent(), 2);
        // Renumbered (a resumed session), the wrapped frame's number changes too.
        q.rewind();
        assert_eq!(q.renumber(41), 43);
        let again = send_all(&mut q, false);
        assert_eq!(again, [frame_bytes(41, &[2; 87]), frame_bytes(42, &[3; 87])].concat());
        assert_eq!(Frame::new_checked(&again[100..]).unwrap().msg_seq(), 42);
        // Acknowledging both goes round: positions come back below the capacity.
        assert_eq!(q.drop_front(2), 2);
        assert!(q.start < q.capacity() && q.end == q.start);
    }

    #[test]
    fn a_write_that_stops_inside_a_wrapped_frame_finishes_it_first() {
        let mut q = TxQueue::new([0u8; 256]);
        assert!(push_msg(&mut q, 1, &[1; 187])); // 0..200
        send_all(&mut q, false);
        assert_eq!(q.drop_front(1), 1);
        assert!(push_msg(&mut q, 2, &[2; 87])); // 200..300: wraps after 56
        q.advance(30, false);
        assert!(q.is_partial());
        assert_eq!(q.rest_of_frame().len(), 26, "to the buffer's end");
        q.advance(26, false);
        assert!(q.is_partial());
        assert_eq!(q.rest_of_frame().len(), 44, "then from its start");
        q.advance(44, false);
        assert!(!q.is_partial() && !q.has_unsent());
        assert_eq!(q.frames_sent(), 1);
    }

    #[test]
    fn plain_lines_wrap_and_are_dropped_once_sent() {
        let mut q = TxQueue::new([0u8; 16]);
        assert!(q.push(b"abcdefghij", b"\n"));
        q.advance(11, true);
        assert_eq!((q.start, q.end), (0, 0), "sent and empty: back to the start");
        assert!(q.push(b"0123456789", b"\n"));
        q.advance(4, true);
        assert!(q.push(b"klm", b"\n")); // 11..15
        assert!(q.push(b"nopq", b"\n")); // 15..20: wraps
        assert!(!q.push(b"x", b"\n"), "full: 4..20 in use");
        let out = send_all(&mut q, true);
        assert_eq!(out, b"456789\nklm\nnopq\n");
        assert!(!q.is_partial());
        assert_eq!(q.start, q.end);
    }
}
