//! The lines the event loop appends between two hand-overs to the output thread: text,
//! with long runs of received bytes left in the receive buffers they arrived in.
//!
//! A message's line is its head, its payload (escaped, or JSON-escaped, by the
//! printer) and its end. The escaper writes each run of the payload that prints as it
//! is as one slice of the payload itself. When that slice lies in the receive buffer
//! named with [`Lines::splice_from`] and is at least [`SPLICE_MIN`] bytes long, it is
//! not copied: [`Lines`] notes where it goes, and the output thread writes it from the
//! receive buffer with `write_vectored`. The connection then hands that buffer over
//! ([`Lines::attach`]) before it reads again, and takes a fresh one from the
//! [`Sink`](super::Sink)'s pool; the output thread returns the buffer once written.

use std::io::{self, IoSlice, Write};

/// Runs of received bytes at least this long are written from their receive buffer;
/// shorter ones are copied (a copy of a few KiB costs less than handing a buffer over).
pub const SPLICE_MIN: usize = 4096;

/// A receive buffer goes with the lines only if it is at most this many times the
/// bytes written from it; otherwise its runs are copied after all (a 16 MiB buffer
/// grown for a long line is not held for a 5 KB one).
pub const HELD_PER_SPLICED: usize = 4;

/// What a chunk of output is made of: text, with runs of receive buffers in it.
#[derive(Debug, Default)]
pub struct Lines {
    text: Vec<u8>,
    /// Runs written from receive buffers, in order.
    pieces: Vec<Piece>,
    /// The receive buffers the pieces come from. A piece whose `buf` is `bufs.len()`
    /// is in the buffer named by `source`, not handed over yet.
    bufs: Vec<Vec<u8>>,
    /// Bytes in pieces.
    spliced: usize,
    /// Capacity of `bufs` (attached receive buffers) in all.
    held: usize,
    /// Where the receive buffer of the messages being printed lies, while they are.
    source: Option<Source>,
}

/// A run of a receive buffer, written at offset `at` of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    at: usize,
    buf: usize,
    start: usize,
    len: usize,
}

/// A receive buffer's address and length.
#[derive(Clone, Copy, Debug)]
struct Source {
    addr: usize,
    len: usize,
}

impl Lines {
    /// Empty, with room for `text` bytes of text.
    pub fn with_capacity(text: usize) -> Self {
        Lines {
            text: Vec::with_capacity(text),
            ..Lines::default()
        }
    }

    /// Bytes of output in all: text and runs.
    pub fn len(&self) -> usize {
        self.text.len() + self.spliced
    }

    /// No output.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory the attached receive buffers hold beyond the runs written from them.
    pub fn overhead(&self) -> usize {
        self.held.saturating_sub(self.spliced)
    }

    /// The text so far, without the runs (for tests).
    #[cfg(test)]
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Long runs of `rx` written from now on are left in it, until [`Lines::end_splice`].
    pub fn splice_from(&mut self, rx: &[u8]) {
        self.source = Some(Source {
            addr: rx.as_ptr().addr(),
            len: rx.len(),
        });
    }

    /// Stops taking runs from `rx`, the receive buffer named by [`Lines::splice_from`]
    /// (unchanged since). True if runs were left in it: hand it over with
    /// [`Lines::attach`] before anything changes its bytes (before the next read into
    /// it). If they are too few for its size ([`HELD_PER_SPLICED`]), they are copied
    /// now instead, and the answer is false.
    #[must_use]
    pub fn end_splice(&mut self, rx: &[u8]) -> bool {
        let same = self
            .source
            .take()
            .is_some_and(|s| s.addr == rx.as_ptr().addr() && s.len == rx.len());
        let next = self.bufs.len();
        let loose = self.pieces.iter().rev().take_while(|p| p.buf == next).count();
        if loose == 0 {
            return false;
        }
        let spliced: usize = self.pieces.iter().rev().take(loose).map(|p| p.len).sum();
        if same && spliced.saturating_mul(HELD_PER_SPLICED) < rx.len() {
            self.copy_loose(loose, rx);
            return false;
        }
        true
    }

    /// Copies the last `loose` pieces, runs of `rx`, into the text where they go.
    fn copy_loose(&mut self, loose: usize, rx: &[u8]) {
        let Lines {
            text, pieces, spliced, ..
        } = self;
        let first = pieces.len() - loose;
        let Some(base) = pieces.get(first).map(|p| p.at) else {
            return;
        };
        let tail = text.split_off(base);
        let mut from = 0;
        for piece in pieces.drain(first..) {
            let at = piece.at - base;
            text.extend_from_slice(tail.get(from..at).unwrap_or_default());
            text.extend_from_slice(rx.get(piece.start..piece.start + piece.len).unwrap_or_default());
            *spliced -= piece.len;
            from = at;
        }
        text.extend_from_slice(tail.get(from..).unwrap_or_default());
    }

    /// Takes the receive buffer that [`Lines::end_splice`] asked for.
    pub fn attach(&mut self, rx: Vec<u8>) {
        self.held += rx.capacity();
        self.bufs.push(rx);
    }

    /// Writes everything, runs from their buffers, with as few `write_vectored`
    /// calls as `out` allows.
    ///
    /// # Errors
    /// Those of `out`; `InvalidData` if a run's buffer was never attached (a bug:
    /// nothing is written then).
    pub fn write_to<W: Write + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        if self.pieces.is_empty() {
            return out.write_all(&self.text);
        }
        let mut slices = Vec::with_capacity(2 * self.pieces.len() + 1);
        let mut from = 0;
        for piece in &self.pieces {
            debug_assert!(from <= piece.at && piece.at <= self.text.len(), "pieces out of order");
            let text = self.text.get(from..piece.at).unwrap_or_default();
            let run = self
                .bufs
                .get(piece.buf)
                .and_then(|b| b.get(piece.start..piece.start + piece.len))
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a receive buffer was not handed over"))?;
            if !text.is_empty() {
                slices.push(IoSlice::new(text));
            }
            slices.push(IoSlice::new(run));
            from = piece.at;
        }
        let tail = self.text.get(from..).unwrap_or_default();
        if !tail.is_empty() {
            slices.push(IoSlice::new(tail));
        }
        write_all_vectored(out, &mut slices)
    }

    /// Empties it for the next chunk; returns the receive buffers it held.
    pub fn clear(&mut self) -> std::vec::Drain<'_, Vec<u8>> {
        self.text.clear();
        self.pieces.clear();
        self.spliced = 0;
        self.held = 0;
        self.source = None;
        self.bufs.drain(..)
    }

    fn put(&mut self, bytes: &[u8]) {
        if bytes.len() >= SPLICE_MIN {
            if let Some(start) = self.source.and_then(|s| s.offset_of(bytes)) {
                self.pieces.push(Piece {
                    at: self.text.len(),
                    buf: self.bufs.len(),
                    start,
                    len: bytes.len(),
                });
                self.spliced += bytes.len();
                return;
            }
        }
        self.text.extend_from_slice(bytes);
    }
}

impl Source {
    /// Where `bytes` start in this buffer, if they lie in it.
    fn offset_of(self, bytes: &[u8]) -> Option<usize> {
        let start = bytes.as_ptr().addr().checked_sub(self.addr)?;
        (start.checked_add(bytes.len())? <= self.len).then_some(start)
    }
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.put(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `write_all` for a list of slices: `write_vectored` until every byte is taken.
fn write_all_vectored<W: Write + ?Sized>(out: &mut W, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use soquete_text::escape::write_escaped;
    use soquete_text::{Format, Printer};

    use super::*;

    /// A writer that takes at most `max` bytes per call, as a pipe may.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.max - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                if n == self.max {
                    break;
                }
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn written(lines: &Lines, max: usize) -> Vec<u8> {
        let mut out = Trickle {
            out: Vec::new(),
            max,
            calls: 0,
        };
        lines.write_to(&mut out).unwrap();
        out.out
    }

    #[test]
    fn long_runs_of_the_receive_buffer_are_left_in_it_and_written_in_place() {
        let rx: Vec<u8> = (0..3 * SPLICE_MIN).map(|i| b'a' + (i % 26) as u8).collect();
        let mut lines = Lines::with_capacity(64);
        lines.splice_from(&rx);
        lines.write_all(b"#1 head: ").unwrap();
        lines.write_all(&rx[10..10 + SPLICE_MIN]).unwrap();
        lines.write_all(b"\\n").unwrap();
        // Short runs of it, and long runs of other memory, are copied.
        lines.write_all(&rx[..SPLICE_MIN - 1]).unwrap();
        let other = rx.clone();
        lines.write_all(&other[..SPLICE_MIN]).unwrap();
        lines.write_all(b"\n").unwrap();
        assert!(lines.end_splice(&rx));
        assert_eq!(lines.text().len(), lines.len() - SPLICE_MIN);
        lines.attach(rx.clone());
        assert_eq!(lines.overhead(), 2 * SPLICE_MIN);

        let expected = [
            b"#1 head: ",
            &rx[10..10 + SPLICE_MIN],
            b"\\n",
            &rx[..SPLICE_MIN - 1],
            &rx[..SPLICE_MIN],
            b"\n",
        ]
        .concat();
        assert_eq!(lines.len(), expected.len());
        for max in [1, 7, 4096, usize::MAX] {
            assert_eq!(written(&lines, max), expected, "{max} bytes per write");
        }
        let mut returned: Vec<Vec<u8>> = lines.clear().collect();
        assert_eq!(returned.pop(), Some(rx));
        assert!(lines.is_empty() && lines.overhead() == 0);
    }

    #[test]
    fn a_run_past_the_buffer_s_end_is_copied() {
        let both = vec![b'x'; 2 * SPLICE_MIN];
        let mut lines = Lines::default();
        lines.splice_from(&both[..SPLICE_MIN]);
        lines
            .write_all(&both[SPLICE_MIN / 2..SPLICE_MIN / 2 + SPLICE_MIN])
            .unwrap();
        assert!(!lines.end_splice(&both[..SPLICE_MIN]));
        assert_eq!(lines.text().len(), SPLICE_MIN);
    }

    #[test]
    fn runs_too_few_for_their_buffer_s_size_are_copied_after_all() {
        let rx: Vec<u8> = (0..10 * SPLICE_MIN).map(|i| b'a' + (i % 26) as u8).collect();
        let runs = [&rx[100..100 + SPLICE_MIN], &rx[5 * SPLICE_MIN..6 * SPLICE_MIN + 7]];
        let mut expected = b"before ".to_vec();
        let mut lines = lines_of(&[b"before "]);
        lines.splice_from(&rx);
        for run in runs {
            lines.write_all(run).unwrap();
            lines.write_all(b" | ").unwrap();
            expected.extend_from_slice(run);
            expected.extend_from_slice(b" | ");
        }
        // 2 runs of 4 KiB in a 40 KiB buffer: copied, and the buffer stays.
        assert_eq!(lines.len(), expected.len());
        assert!(!lines.end_splice(&rx));
        assert_eq!((lines.text(), lines.len()), (expected.as_slice(), expected.len()));

        // Runs already handed over stay as they are; only the last buffer's are copied.
        let small = vec![b'z'; SPLICE_MIN];
        let mut lines = Lines::default();
        lines.splice_from(&small);
        lines.write_all(&small).unwrap();
        assert!(lines.end_splice(&small));
        lines.attach(small.clone());
        lines.write_all(b"\n").unwrap();
        lines.splice_from(&rx);
        lines.write_all(runs[0]).unwrap();
        lines.write_all(b"\n").unwrap();
        assert!(!lines.end_splice(&rx));
        let expected = [small.as_slice(), b"\n", runs[0], b"\n"].concat();
        assert_eq!(written(&lines, 4096), expected);
        assert_eq!(lines.text().len(), expected.len() - SPLICE_MIN);
    }

    fn lines_of(parts: &[&[u8]]) -> Lines {
        let mut lines = Lines::default();
        for part in parts {
            lines.write_all(part).unwrap();
        }
        lines
    }

    #[test]
    fn a_run_whose_buffer_was_never_attached_fails_the_write() {
        let rx = vec![b'y'; SPLICE_MIN];
        let mut lines = Lines::default();
        lines.splice_from(&rx);
        lines.write_all(&rx).unwrap();
        assert!(lines.end_splice(&rx));
        let mut out = Vec::new();
        assert_eq!(lines.write_to(&mut out).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(out.is_empty());
    }

    /// Payloads of plain text with, now and then, bytes the escaper rewrites.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let run = prop_oneof![
            4 => (1usize..3 * SPLICE_MIN).prop_map(|n| vec![b'a'; n]),
            1 => prop::collection::vec(any::<u8>(), 0..8),
            1 => Just("é\u{202e}\"\\".as_bytes().to_vec()),
        ];
        prop::collection::vec(run, 0..6).prop_map(|runs| runs.concat())
    }

    /// The lines with the time of each JSON line taken out (the two printers may
    /// print different milliseconds).
    fn untimed(lines: &[u8]) -> Vec<u8> {
        const TS: &[u8] = br#""ts":""#;
        let mut out = Vec::with_capacity(lines.len());
        let mut rest = lines;
        while let Some(at) = rest.windows(TS.len()).position(|w| w == TS) {
            let value = at + TS.len();
            let end = rest[value..]
                .iter()
                .position(|&b| b == b'"')
                .map_or(rest.len(), |n| value + n);
            out.extend_from_slice(&rest[..value]);
            rest = &rest[end..];
        }
        out.extend_from_slice(rest);
        out
    }

    proptest! {
        /// Printing messages through [`Lines`] from their receive buffer writes the
        /// same bytes as printing them into a plain `Vec`, in both formats.
        #[test]
        fn the_same_lines_as_a_copy(payloads in prop::collection::vec(payload(), 1..5), json in any::<bool>()) {
            let format = if json { Format::Json } else { Format::Text };
            let mut copied = Printer::new(Vec::new(), format);
            let mut spliced = Printer::new(Lines::default(), format);
            for (i, p) in payloads.iter().enumerate() {
                // One receive buffer per message, with bytes around it.
                let rx = [b"head".as_slice(), p, b"tail"].concat();
                let payload = &rx[4..4 + p.len()];
                let seq = i as u64 + 1;
                copied.message(1, "127.0.0.1:9", seq, payload).unwrap();
                spliced.get_mut().splice_from(&rx);
                spliced.message(1, "127.0.0.1:9", seq, payload).unwrap();
                if spliced.get_mut().end_splice(&rx) {
                    spliced.get_mut().attach(rx.clone());
                }
            }
            let (spliced, copied) = (untimed(&written(spliced.get_ref(), 5000)), untimed(copied.get_ref()));
            prop_assert!(spliced == copied, "{} bytes against {}", spliced.len(), copied.len());
        }
    }

    #[test]
    fn a_payload_with_nothing_to_escape_is_not_copied() {
        let rx = vec![b'a'; 2 * SPLICE_MIN];
        for format in [Format::Text, Format::Json] {
            let mut printer = Printer::new(Lines::default(), format);
            printer.get_mut().splice_from(&rx);
            printer.message(1, "127.0.0.1:9", 1, &rx).unwrap();
            assert!(printer.get_mut().end_splice(&rx));
            let lines = printer.get_ref();
            assert_eq!(lines.len() - lines.text().len(), rx.len(), "{format:?}");
        }
        let mut lines = Lines::default();
        lines.splice_from(&rx);
        write_escaped(&mut lines, &rx).unwrap();
        assert!(lines.text().is_empty());
    }
}
