//! The server's console: lines typed at the server (or piped to its standard input)
//! are sent to clients as messages.
//!
//! | Line | Goes to |
//! |---|---|
//! | `text` | every client served now |
//! | `#3 text` | the session `#3` |
//! | `@ana text` | every client named `ana` |
//! | `\#3 text`, `\@x`, `\\x` | every client; the first `\` is removed (`#3 text`, …) |
//!
//! A line ends with `\n` (a `\r` before it is removed). The end of the input ends the
//! console, not the server: a service runs with standard input on `/dev/null`.
//!
//! The input is read on a thread of its own, which hands lines over a bounded channel
//! and wakes the event loop through a mio [`Waker`], so the loop never blocks on it.
//! While the loop has not taken the lines, the thread waits (piped input is slowed,
//! not buffered without bound).

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread;

use mio::Waker;

/// Lines the reading thread may hand over before the loop takes them.
const CHANNEL: usize = 64;

/// Who a console line is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// Every client served now.
    All,
    /// The session with this `#ID`.
    Id(u64),
    /// Every client with this name.
    Name(Vec<u8>),
}

/// A console line, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Line {
    pub target: Target,
    pub text: Vec<u8>,
}

/// Parses one console line (without its newline).
pub(super) fn parse(line: &[u8]) -> Line {
    let all = |text: &[u8]| Line {
        target: Target::All,
        text: text.to_vec(),
    };
    match line.split_first() {
        Some((b'\\', rest)) => all(rest),
        Some((b'#', rest)) => {
            let (word, text) = split_word(rest);
            match std::str::from_utf8(word).ok().and_then(|w| w.parse::<u64>().ok()) {
                Some(id) => Line {
                    target: Target::Id(id),
                    text: text.to_vec(),
                },
                // `#hello`: not a session id; sent as it is, to all.
                None => all(line),
            }
        }
        Some((b'@', rest)) if !rest.is_empty() && !rest.starts_with(b" ") => {
            let (word, text) = split_word(rest);
            Line {
                target: Target::Name(word.to_vec()),
                text: text.to_vec(),
            }
        }
        _ => all(line),
    }
}

/// `word rest` → (`word`, `rest`): split at the first space, which is dropped.
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (s.get(..i).unwrap_or_default(), s.get(i + 1..).unwrap_or_default()),
        None => (s, &[]),
    }
}

/// What the reading thread hands over.
#[derive(Debug)]
pub(super) enum Input {
    /// One line, without its `\n` or `\r\n`.
    Line(Vec<u8>),
    /// The input ended (or failed: why).
    End(Option<io::Error>),
}

/// The console's input: lines read on a thread of its own.
#[derive(Debug)]
pub(super) struct Console {
    lines: Receiver<Input>,
}

impl Console {
    /// Starts reading `input` line by line; `waker` is woken when lines arrive.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start(input: Box<dyn Read + Send>, waker: Arc<Waker>) -> io::Result<Console> {
        let (tx, lines) = mpsc::sync_channel(CHANNEL);
        thread::Builder::new()
            .name("soquete console".into())
            .spawn(move || read_lines(input, &tx, &waker))?;
        Ok(Console { lines })
    }

    /// The next input, if one is waiting.
    pub fn next(&self) -> Option<Input> {
        match self.lines.try_recv() {
            Ok(input) => Some(input),
            Err(TryRecvError::Empty) => None,
            // The thread ended without a word (it cannot, but then so did the input).
            Err(TryRecvError::Disconnected) => Some(Input::End(None)),
        }
    }
}

fn read_lines(input: Box<dyn Read + Send>, tx: &SyncSender<Input>, waker: &Waker) {
    let mut reader = BufReader::new(input);
    loop {
        let mut line = Vec::new();
        let input = match reader.read_until(b'\n', &mut line) {
            Ok(0) => Input::End(None),
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                Input::Line(line)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Input::End(Some(e)),
        };
        let end = matches!(input, Input::End(_));
        if tx.send(input).is_err() {
            return;
        }
        // A failed wake means the loop is gone; the send above told it anyway.
        let _ = waker.wake();
        if end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(line: &str) -> (Target, String) {
        let l = parse(line.as_bytes());
        (l.target, String::from_utf8(l.text).unwrap())
    }

    #[test]
    fn plain_line_goes_to_all() {
        assert_eq!(target("hello there"), (Target::All, "hello there".into()));
        assert_eq!(target(""), (Target::All, String::new()));
    }

    #[test]
    fn hash_number_is_a_session() {
        assert_eq!(target("#3 hi you"), (Target::Id(3), "hi you".into()));
        assert_eq!(target("#3"), (Target::Id(3), String::new()));
        // Not a number: sent as typed.
        assert_eq!(target("#rust is fun"), (Target::All, "#rust is fun".into()));
    }

    #[test]
    fn at_name_is_a_client_name() {
        assert_eq!(target("@ana hello"), (Target::Name(b"ana".to_vec()), "hello".into()));
        assert_eq!(target("@ nobody"), (Target::All, "@ nobody".into()));
        assert_eq!(target("@"), (Target::All, "@".into()));
    }

    #[test]
    fn backslash_escapes_the_first_character() {
        assert_eq!(target("\\#3 text"), (Target::All, "#3 text".into()));
        assert_eq!(target("\\@ana"), (Target::All, "@ana".into()));
        assert_eq!(target("\\\\x"), (Target::All, "\\x".into()));
    }

    #[test]
    fn lines_are_read_off_the_loop_and_the_end_is_reported() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(9)).unwrap());
        let console = Console::start(Box::new(&b"one\r\ntwo\nthree"[..]), waker).unwrap();
        let mut got = Vec::new();
        // The thread may still be reading: wait on the channel, bounded.
        loop {
            match console.lines.recv_timeout(std::time::Duration::from_secs(5)).unwrap() {
                Input::Line(l) => got.push(String::from_utf8(l).unwrap()),
                Input::End(e) => {
                    assert!(e.is_none());
                    break;
                }
            }
        }
        assert_eq!(got, ["one", "two", "three"]);
    }
}
