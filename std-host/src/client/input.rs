//! The standard-input reader thread of `soquete client`.
//!
//! It reads big chunks and hands the main loop *blocks of whole lines* through a bounded
//! channel, waking it with a [`mio::Waker`]. Piped input costs one channel send per
//! chunk, not per line; typed input arrives one line per read, so it is sent at once.
//! The bounded channel and the session's backpressure keep memory bounded: when the
//! main loop stops taking blocks, this thread blocks in `send`.

use std::io::{self, ErrorKind, Read};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use mio::Waker;

/// Bytes asked for per read.
const CHUNK: usize = 64 * 1024;

/// What the reader hands the main loop, in input order.
#[derive(Debug)]
pub enum Input {
    /// One or more whole lines, each ending in `\n` (a last line without one gets it).
    Lines(Vec<u8>),
    /// A line longer than the reader's limit, too long to send: its length without the
    /// terminator. Its bytes were dropped.
    Long(u64),
    /// End of input.
    End,
    /// Reading failed; nothing follows.
    Error(io::Error),
}

/// Starts the reader thread over `source`. Lines longer than `limit` bytes arrive as
/// [`Input::Long`], so no line makes the reader hold more than `limit` bytes.
///
/// # Errors
/// Spawning the thread failed.
pub fn spawn<R>(source: R, to_main: SyncSender<Input>, waker: Arc<Waker>, limit: usize) -> io::Result<JoinHandle<()>>
where
    R: Read + Send + 'static,
{
    thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut reader = Reader {
            source,
            limit,
            carry: Vec::new(),
            long: None,
        };
        let hand = |item: Input| {
            // A closed channel means the main loop is done with input.
            let delivered = to_main.send(item).is_ok();
            if delivered {
                if let Err(e) = waker.wake() {
                    log::warn!("cannot wake the main loop: {e}");
                }
            }
            delivered
        };
        reader.run(hand);
    })
}

/// Splits a byte stream into blocks of whole lines.
struct Reader<R> {
    source: R,
    limit: usize,
    /// The start of a line whose end has not been read yet.
    carry: Vec<u8>,
    /// Bytes so far of an over-long line being skipped.
    long: Option<u64>,
}

impl<R: Read> Reader<R> {
    /// Reads until end of input, a read error, or `hand` returning false.
    fn run(&mut self, mut hand: impl FnMut(Input) -> bool) {
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let n = match self.source.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    hand(Input::Error(e));
                    return;
                }
            };
            let Some(data) = chunk.get(..n) else { break };
            if !self.split(data, &mut hand) {
                return;
            }
        }
        if !self.carry.is_empty() {
            let mut last = std::mem::take(&mut self.carry);
            last.push(b'\n');
            if !hand(Input::Lines(last)) {
                return;
            }
        }
        if let Some(len) = self.long.take() {
            if !hand(Input::Long(len)) {
                return;
            }
        }
        hand(Input::End);
    }

    /// Hands over the whole lines that `data` completes; keeps the partial last line.
    /// False once `hand` refused an item.
    fn split(&mut self, mut data: &[u8], hand: &mut impl FnMut(Input) -> bool) -> bool {
        let mut block: Vec<u8> = Vec::new();
        while !data.is_empty() {
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                match self.long.as_mut() {
                    Some(len) => *len += data.len() as u64,
                    None => {
                        self.carry.extend_from_slice(data);
                        if self.carry.len() > self.limit {
                            self.long = Some(self.carry.len() as u64);
                            self.carry = Vec::new();
                        }
                    }
                }
                break;
            };
            let (line, rest) = data.split_at(nl + 1);
            data = rest;
            let long = match self.long.take() {
                Some(len) => Some(len + nl as u64),
                None if self.carry.len() + nl > self.limit => Some((self.carry.len() + nl) as u64),
                None => None,
            };
            if let Some(len) = long {
                self.carry.clear();
                if !block.is_empty() && !hand(Input::Lines(std::mem::take(&mut block))) {
                    return false;
                }
                if !hand(Input::Long(len)) {
                    return false;
                }
                continue;
            }
            if block.is_empty() {
                block = std::mem::take(&mut self.carry);
                block.reserve(line.len() + rest.len());
            } else {
                block.append(&mut self.carry);
            }
            block.extend_from_slice(line);
        }
        block.is_empty() || hand(Input::Lines(block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reads` as successive reads and collects what the reader hands over.
    fn items(reads: &[&[u8]], limit: usize) -> Vec<String> {
        struct Script<'a>(std::slice::Iter<'a, &'a [u8]>);
        impl Read for Script<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some(next) = self.0.next() else { return Ok(0) };
                buf[..next.len()].copy_from_slice(next);
                Ok(next.len())
            }
        }
        let mut out = Vec::new();
        let mut reader = Reader {
            source: Script(reads.iter()),
            limit,
            carry: Vec::new(),
            long: None,
        };
        reader.run(|item| {
            out.push(match item {
                Input::Lines(b) => String::from_utf8(b).unwrap(),
                Input::Long(n) => format!("<long {n}>"),
                Input::End => "<end>".into(),
                Input::Error(e) => format!("<error {e}>"),
            });
            true
        });
        out
    }

    #[test]
    fn whole_lines_per_block() {
        assert_eq!(items(&[b"a\nb\nc", b"d\ne\n"], 100), ["a\nb\n", "cd\ne\n", "<end>"]);
        assert_eq!(items(&[b"one\n", b"two\n"], 100), ["one\n", "two\n", "<end>"]);
    }

    #[test]
    fn last_line_without_newline_is_kept() {
        assert_eq!(items(&[b"a\nlast"], 100), ["a\n", "last\n", "<end>"]);
        assert_eq!(items(&[], 100), ["<end>"]);
    }

    #[test]
    fn long_lines_are_measured_not_held() {
        assert_eq!(
            items(&[b"ok\n0123456789\nok2\n"], 5),
            ["ok\n", "<long 10>", "ok2\n", "<end>"]
        );
        assert_eq!(
            items(&[b"0123", b"4567", b"89\nok\n"], 5),
            ["<long 10>", "ok\n", "<end>"]
        );
        assert_eq!(items(&[b"x\n0123", b"456789"], 5), ["x\n", "<long 10>", "<end>"]);
        assert_eq!(items(&[b"12345\n"], 5), ["12345\n", "<end>"]);
    }
}
