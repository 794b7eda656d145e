//! The receive buffer: bytes from the transport until their frame or line is handled.

/// The caller's receive buffer. `buf[start..end]` holds received bytes not yet
/// consumed; the bytes before `start` are free once compacted to the front. The
/// session never resizes `buf`; the caller may swap it ([`RxBuffer::replace`]).
#[derive(Debug)]
pub(super) struct RxBuffer<R> {
    buf: R,
    start: usize,
    end: usize,
    /// Length of the frame at `start` once its header is in and its body is not (0
    /// otherwise), or the full `min_rx_len` for a plain-text line that fills `buf`.
    pub(super) want: usize,
    /// Length and sequence number of the message last returned by `poll_event`: its
    /// bytes stay (the event borrows them) until the next call consumes them.
    pub(super) held: Option<(usize, u64)>,
}

impl<R: AsRef<[u8]> + AsMut<[u8]>> RxBuffer<R> {
    pub(super) fn new(buf: R) -> Self {
        RxBuffer {
            buf,
            start: 0,
            end: 0,
            want: 0,
            held: None,
        }
    }

    /// Length of the caller's buffer.
    pub(super) fn capacity(&self) -> usize {
        self.buf.as_ref().len()
    }

    /// The caller's buffer, all of it.
    pub(super) fn whole(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Where the unconsumed bytes start.
    pub(super) fn start(&self) -> usize {
        self.start
    }

    /// The unconsumed bytes.
    pub(super) fn avail(&self) -> &[u8] {
        self.buf.as_ref().get(self.start..self.end).unwrap_or(&[])
    }

    /// `len` bytes at `at` (empty if out of range).
    pub(super) fn get(&self, at: usize, len: usize) -> &[u8] {
        self.buf.as_ref().get(at..at.saturating_add(len)).unwrap_or(&[])
    }

    /// Number of unconsumed bytes.
    pub(super) fn buffered(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Consumes `n` bytes; an empty buffer starts again at the front.
    pub(super) fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops everything buffered, also a held message.
    pub(super) fn discard(&mut self) {
        self.start = 0;
        self.end = 0;
        self.want = 0;
        self.held = None;
    }

    /// The free space after the buffered bytes, compacted to the front first unless a
    /// message is held (its event borrows its bytes where they are).
    pub(super) fn free_space(&mut self) -> &mut [u8] {
        if self.start > 0 && self.held.is_none() {
            super::move_to_front(self.buf.as_mut(), self.start, self.end);
            self.end -= self.start;
            self.start = 0;
        }
        let end = self.end;
        self.buf.as_mut().get_mut(end..).unwrap_or(&mut [])
    }

    /// Records `n` bytes written into [`RxBuffer::free_space`], clamped to the room
    /// there is; returns how many count.
    pub(super) fn fill(&mut self, n: usize) -> usize {
        let n = n.min(self.capacity().saturating_sub(self.end));
        self.end += n;
        n
    }

    /// Moves the buffered bytes to the front of `new` and keeps it, handing back the
    /// old buffer; `Err(new)`, nothing changed, when `new` is shorter than `min` or
    /// than what is buffered.
    pub(super) fn replace(&mut self, mut new: R, min: usize) -> Result<R, R> {
        let held = self.buffered();
        if new.as_ref().len() < held.max(min) {
            return Err(new);
        }
        if let Some(dst) = new.as_mut().get_mut(..held) {
            dst.copy_from_slice(self.avail());
        }
        // A held message moves with the bytes: its length counts from `start`.
        self.start = 0;
        self.end = held;
        Ok(core::mem::replace(&mut self.buf, new))
    }
}
