//! Where the server's lines go, without ever blocking its event loop.
//!
//! A [`Sink`] owns a writer thread. The event loop appends lines to [`Lines`] of its
//! own (the printer's), notes which message ends where ([`Sink::mark`]), and hands them
//! over once per loop iteration ([`Sink::submit`]). Long payloads stay in the receive
//! buffers they arrived in, which travel with the lines and come back to the sink's
//! pool once written ([`Sink::buffer`]). The thread writes each
//! chunk (and `fsync`s it, if asked), then reports how far it got and wakes the loop
//! through a mio [`Waker`]; [`Sink::confirmed`] then yields the messages whose line is
//! written, which the server acknowledges to their clients.
//!
//! Why a thread rather than `O_NONBLOCK` on the descriptor: a regular file ignores
//! `O_NONBLOCK` (a slow disk, or `fsync`, would still stop the loop), and setting it
//! on an inherited terminal or pipe changes it for every process sharing that
//! description (a shell's stdout). One thread writes every kind of output the same way.
//!
//! The queue is bounded by bytes: [`Sink::is_full`] tells the loop to stop taking
//! messages until the writer catches up, so that a slow reader slows the clients
//! (TCP backpressure) instead of growing memory.
//!
//! Messages forwarded to NATS JetStream go through [`forward::Forward`] instead: the
//! same marks, confirmation and backpressure, with confirmations that follow
//! JetStream's acknowledgements instead of `write`.

pub mod forward;
mod lines;
pub mod nats;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use log::{error, info, warn};
use mio::{Token, Waker};

pub use lines::{Lines, SPLICE_MIN};

/// Bytes handed to the writer and not yet written past which the loop stops taking
/// messages.
pub const QUEUE_BYTES: u64 = 4 * 1024 * 1024;

/// Receive buffers kept for reuse, in bytes.
const POOL_BYTES: usize = 1024 * 1024;

/// Where a server's lines go.
pub enum Output {
    /// Any writer, e.g. standard output (each chunk is written whole, then flushed).
    Writer(Box<dyn Write + Send>),
    /// A file, opened for appending and opened again on request
    /// (SIGHUP, after a log rotation).
    File {
        /// The file's path.
        path: PathBuf,
        /// `fsync` each chunk before its messages count as written.
        fsync: bool,
    },
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Writer(_) => f.write_str("Writer"),
            Output::File { path, fsync } => f
                .debug_struct("File")
                .field("path", path)
                .field("fsync", fsync)
                .finish(),
        }
    }
}

impl<W: Write + Send + 'static> From<W> for Output {
    fn from(w: W) -> Self {
        Output::Writer(Box::new(w))
    }
}

impl Output {
    /// What it is, for messages to the user.
    pub fn describe(&self) -> String {
        match self {
            Output::Writer(_) => "the output".into(),
            Output::File { path, .. } => path.display().to_string(),
        }
    }
}

/// What the loop asks of the writer thread.
enum Job {
    /// Write these lines (and `fsync` a file if asked).
    Write(Lines),
    /// Open the file again (it was renamed away).
    Reopen,
}

/// What the writer thread tells the loop.
enum Report {
    /// Everything up to this byte offset is written; the lines come back for reuse.
    Written(u64, Lines),
    /// Writing failed: nothing from here on is written.
    Failed(io::Error),
}

/// A message whose line ends at byte offset `end`: confirmed once that much is written,
/// and with it the connection's earlier messages (a session confirms up to a sequence
/// number, PROTOCOL.md §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    end: u64,
    /// The connection that took the message.
    pub conn: Token,
    /// The message's sequence number in its session.
    pub seq: u64,
}

/// The writer thread's end in the event loop.
#[derive(Debug)]
pub struct Sink {
    /// Offset of the pending buffer's first byte in the output as a whole.
    base: u64,
    /// Bytes written, as last reported.
    written: u64,
    /// Messages not yet written, in order.
    marks: VecDeque<Mark>,
    jobs: Option<Sender<Job>>,
    reports: Receiver<Report>,
    /// Lines returned by the writer, for the next chunk.
    spare: Option<Lines>,
    /// Receive buffers returned by the writer, for [`Sink::buffer`].
    pool: Vec<Vec<u8>>,
    /// Bytes in `pool`.
    pooled: usize,
    /// [`Lines::overhead`] of the chunk at the writer.
    overhead: usize,
    /// The writer is working on a chunk.
    busy: bool,
    /// Writing failed: nothing more is confirmed, ever.
    failed: bool,
    thread: Option<JoinHandle<()>>,
    what: String,
    /// Kept here too: the writer thread's copy goes when the thread ends, and a
    /// dropped waker's last wake-up would be lost with it.
    _waker: Arc<Waker>,
}

impl Sink {
    /// Starts the writer thread for `output`; it wakes the loop with `waker` when it
    /// has written a chunk.
    ///
    /// # Errors
    /// The file cannot be opened, or the thread cannot be started.
    pub fn start(output: Output, waker: Arc<Waker>) -> io::Result<Sink> {
        let what = output.describe();
        let mut target = match output {
            Output::Writer(w) => Target::Writer(w),
            Output::File { path, fsync } => {
                let file = open_append(&path)?;
                Target::File { path, fsync, file }
            }
        };
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (report_tx, reports) = mpsc::channel();
        let keep = Arc::clone(&waker);
        let thread = thread::Builder::new()
            .name("soquete output".into())
            .spawn(move || target.serve(&job_rx, &report_tx, &waker))?;
        Ok(Sink {
            base: 0,
            written: 0,
            marks: VecDeque::new(),
            jobs: Some(jobs),
            reports,
            spare: None,
            pool: Vec::new(),
            pooled: 0,
            overhead: 0,
            busy: false,
            failed: false,
            thread: Some(thread),
            what,
            _waker: keep,
        })
    }

    /// The message `seq` of connection `conn` ends where the `pending` bytes not yet
    /// submitted end (its line was just appended).
    ///
    /// A message that follows one of the same connection in the bytes not yet
    /// submitted takes that one's mark: both go to the writer in the same chunk, so
    /// one report confirms both, and one confirmation (up to the later `seq`) covers
    /// both. A read of many messages then costs one mark, not one each.
    pub fn mark(&mut self, pending: usize, conn: Token, seq: u64) {
        let end = self.base + pending as u64;
        if let Some(last) = self.marks.back_mut() {
            if last.conn == conn && last.end > self.base && last.seq < seq {
                last.end = end;
                last.seq = seq;
                return;
            }
        }
        self.marks.push_back(Mark { end, conn, seq });
    }

    /// A message marked is written already, with no report to come for it: it was
    /// sent again after a resume and its line had been written before
    /// ([`Sink::confirmed`] takes it).
    pub fn has_written_marks(&self) -> bool {
        self.marks.front().is_some_and(|mark| mark.end <= self.written)
    }

    /// Bytes appended (`pending` of them not submitted yet) and not yet written.
    pub fn backlog(&self, pending: usize) -> u64 {
        (self.base + pending as u64).saturating_sub(self.written)
    }

    /// Too much is waiting: take no more messages until the writer catches up. The
    /// receive buffers that `pending` and the chunk at the writer hold count too.
    pub fn is_full(&self, pending: &Lines) -> bool {
        let held = pending.overhead().saturating_add(self.overhead) as u64;
        self.backlog(pending.len()).saturating_add(held) >= QUEUE_BYTES
    }

    /// A receive buffer of `len` bytes (its bytes are anything): from the pool if it
    /// has one of that size, up to twice it (buffers count by capacity).
    pub fn buffer(&mut self, len: usize) -> Vec<u8> {
        let fits = |b: &Vec<u8>| (len..=len.saturating_mul(2)).contains(&b.capacity());
        match self.pool.iter().rposition(fits) {
            Some(at) => {
                let mut buf = self.pool.swap_remove(at);
                self.pooled -= buf.capacity();
                buf.resize(len, 0);
                buf
            }
            None => vec![0; len],
        }
    }

    /// Takes back the lines the writer is done with, and their receive buffers.
    fn recycle(&mut self, mut lines: Lines) {
        for buf in lines.clear() {
            if self.pooled + buf.capacity() <= POOL_BYTES {
                self.pooled += buf.capacity();
                self.pool.push(buf);
            }
        }
        self.spare = Some(lines);
        self.overhead = 0;
        self.busy = false;
    }

    /// Writing failed: nothing more is confirmed.
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Hands what was appended to the writer, unless it is still busy with the last
    /// chunk (then it goes with the next call, as one larger write).
    pub fn submit(&mut self, lines: &mut Lines) {
        if self.busy || lines.is_empty() || self.failed {
            return;
        }
        let Some(jobs) = &self.jobs else {
            return;
        };
        let next = self.spare.take().unwrap_or_default();
        let chunk = std::mem::replace(lines, next);
        self.base += chunk.len() as u64;
        self.overhead = chunk.overhead();
        if jobs.send(Job::Write(chunk)).is_ok() {
            self.busy = true;
        } else {
            self.failed = true;
        }
    }

    /// Asks the writer to open its file again (a no-op for other outputs).
    pub fn reopen(&self) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Reopen);
        }
    }

    /// Takes the writer's reports: the messages now written, in order.
    ///
    /// # Errors
    /// Writing failed; the error is returned once, and nothing is confirmed after it.
    pub fn confirmed(&mut self, out: &mut Vec<Mark>) -> io::Result<()> {
        while let Ok(report) = self.reports.try_recv() {
            match report {
                Report::Written(upto, lines) => {
                    self.written = upto;
                    self.recycle(lines);
                }
                Report::Failed(e) => {
                    self.failed = true;
                    self.busy = false;
                    self.overhead = 0;
                    self.marks.clear();
                    return Err(e);
                }
            }
        }
        while let Some(mark) = self.marks.front() {
            if mark.end > self.written {
                break;
            }
            out.extend(self.marks.pop_front());
        }
        Ok(())
    }

    /// Hands over what is left and waits up to `limit` for the writer to finish it.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(&mut self, lines: &mut Lines, limit: std::time::Duration) -> io::Result<()> {
        if self.failed {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + limit;
        let end = self.base + lines.len() as u64;
        while self.written < end {
            self.submit(lines);
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(Report::Written(upto, done)) => {
                    self.written = upto;
                    self.recycle(done);
                }
                Ok(Report::Failed(e)) => {
                    self.failed = true;
                    return Err(e);
                }
                Err(_) => {
                    warn!(
                        "{}: {} bytes not written after {limit:?}; exiting without them",
                        self.what,
                        end - self.written
                    );
                    return Ok(());
                }
            }
        }
        // The writer ends when its queue closes.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(())
    }
}

/// The writer thread's output.
enum Target {
    Writer(Box<dyn Write + Send>),
    File { path: PathBuf, fsync: bool, file: File },
}

impl Target {
    /// Writes each chunk as it comes and reports, until the queue closes or writing
    /// fails.
    fn serve(&mut self, jobs: &Receiver<Job>, reports: &Sender<Report>, waker: &Waker) {
        let mut written = 0u64;
        for job in jobs {
            let report = match job {
                Job::Write(chunk) => match self.write(&chunk) {
                    Ok(()) => {
                        written += chunk.len() as u64;
                        Report::Written(written, chunk)
                    }
                    Err(e) => Report::Failed(e),
                },
                Job::Reopen => {
                    self.reopen();
                    continue;
                }
            };
            let failed = matches!(report, Report::Failed(_));
            if reports.send(report).is_err() {
                return;
            }
            if let Err(e) = waker.wake() {
                error!("cannot wake the event loop: {e}");
            }
            if failed {
                return;
            }
        }
    }

    fn write(&mut self, chunk: &Lines) -> io::Result<()> {
        match self {
            Target::Writer(w) => {
                chunk.write_to(w)?;
                w.flush()
            }
            Target::File { file, fsync, .. } => {
                chunk.write_to(file)?;
                if *fsync {
                    file.sync_data()?;
                }
                Ok(())
            }
        }
    }

    /// Opens the file again under its path; keeps the old one if that fails.
    fn reopen(&mut self) {
        if let Target::File { path, file, .. } = self {
            match open_append(path) {
                Ok(f) => {
                    *file = f;
                    info!("{}: opened again", path.display());
                }
                Err(e) => error!(
                    "{}: cannot open it again ({e}); still writing to the old file",
                    path.display()
                ),
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::SyncSender;
    use std::time::Duration;

    use mio::{Events, Poll};

    use super::*;

    /// A writer that passes each write to the test, or fails.
    struct Gate {
        to: SyncSender<Vec<u8>>,
        fail: bool,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.fail {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.to
                .send(buf.to_vec())
                .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn sink(fail: bool) -> (Poll, Sink, Receiver<Vec<u8>>) {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        // Capacity 0: each write waits until the test takes it.
        let (to, from) = mpsc::sync_channel(0);
        let sink = Sink::start(Output::from(Gate { to, fail }), waker).unwrap();
        (poll, sink, from)
    }

    /// Waits for the writer's wake-up.
    fn woken(poll: &mut Poll) {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(10))).unwrap();
        assert!(!events.is_empty(), "no wake-up");
    }

    #[test]
    fn messages_are_confirmed_once_their_line_is_written() {
        let (mut poll, mut sink, written) = sink(false);
        let mut buf = lines(b"one\n");
        sink.mark(buf.len(), Token(7), 1);
        sink.submit(&mut buf);
        buf.write_all(b"two\n").unwrap();
        sink.mark(buf.len(), Token(7), 2);
        // Still busy with "one": "two" waits.
        sink.submit(&mut buf);
        let mut out = Vec::new();
        sink.confirmed(&mut out).unwrap();
        assert!(out.is_empty());

        assert_eq!(written.recv().unwrap(), b"one\n");
        woken(&mut poll);
        sink.confirmed(&mut out).unwrap();
        assert_eq!(out.iter().map(|m| m.seq).collect::<Vec<_>>(), [1]);
        assert_eq!(sink.backlog(buf.len()), 4);

        sink.submit(&mut buf);
        assert_eq!(written.recv().unwrap(), b"two\n");
        woken(&mut poll);
        sink.confirmed(&mut out).unwrap();
        assert_eq!(
            out.iter().map(|m| (m.conn, m.seq)).collect::<Vec<_>>(),
            [(Token(7), 1), (Token(7), 2)]
        );
        assert_eq!(sink.backlog(0), 0);
    }

    #[test]
    fn a_connection_s_messages_in_one_chunk_share_a_mark_and_others_do_not() {
        let (mut poll, mut sink, written) = sink(false);
        let mut buf = Lines::default();
        for (conn, seq) in [(7, 1), (7, 2), (8, 1), (7, 3), (7, 4)] {
            buf.write_all(b"line\n").unwrap();
            sink.mark(buf.len(), Token(conn), seq);
        }
        assert_eq!(sink.marks.len(), 3);
        sink.submit(&mut buf);
        // After a submit, the next message of the same connection is in another chunk.
        buf.write_all(b"next\n").unwrap();
        sink.mark(buf.len(), Token(7), 5);
        assert_eq!(sink.marks.len(), 4);

        assert_eq!(written.recv().unwrap(), b"line\n".repeat(5));
        woken(&mut poll);
        let mut out = Vec::new();
        sink.confirmed(&mut out).unwrap();
        assert_eq!(
            out.iter().map(|m| (m.conn, m.seq)).collect::<Vec<_>>(),
            [(Token(7), 2), (Token(8), 1), (Token(7), 4)]
        );
        sink.submit(&mut buf);
        assert_eq!(written.recv().unwrap(), b"next\n");
        woken(&mut poll);
        out.clear();
        sink.confirmed(&mut out).unwrap();
        assert_eq!(out.iter().map(|m| (m.conn, m.seq)).collect::<Vec<_>>(), [(Token(7), 5)]);
    }

    #[test]
    fn a_failed_write_confirms_nothing() {
        let (mut poll, mut sink, _written) = sink(true);
        let mut buf = lines(b"one\n");
        sink.mark(buf.len(), Token(7), 1);
        sink.submit(&mut buf);
        woken(&mut poll);
        let mut out = Vec::new();
        assert_eq!(sink.confirmed(&mut out).unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert!(out.is_empty() && sink.has_failed());
        buf.write_all(b"two\n").unwrap();
        sink.mark(buf.len(), Token(7), 2);
        sink.submit(&mut buf);
        sink.confirmed(&mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_file_gets_text_and_runs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        let output = Output::File {
            path: path.clone(),
            fsync: false,
        };
        let mut sink = Sink::start(output, waker).unwrap();
        let mut expected = Vec::new();
        let mut pending = Lines::default();
        for seq in 1..=3u8 {
            let mut rx = sink.buffer(SPLICE_MIN + 10);
            rx.fill(b'0' + seq);
            pending.write_all(b"#1 x: ").unwrap();
            pending.splice_from(&rx);
            pending.write_all(&rx[5..5 + SPLICE_MIN]).unwrap();
            assert!(pending.end_splice(&rx));
            pending.attach(rx);
            pending.write_all(b"\n").unwrap();
            expected.extend_from_slice(b"#1 x: ");
            expected.extend_from_slice(&[b'0' + seq; SPLICE_MIN]);
            expected.push(b'\n');
            sink.mark(pending.len(), Token(1), u64::from(seq));
        }
        sink.finish(&mut pending, Duration::from_secs(10)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    fn lines(text: &[u8]) -> Lines {
        let mut lines = Lines::default();
        lines.write_all(text).unwrap();
        lines
    }

    #[test]
    fn full_at_the_queue_limit() {
        let (_poll, sink, _written) = sink(false);
        let mut pending = lines(&vec![b'x'; QUEUE_BYTES as usize - 1]);
        assert!(!sink.is_full(&pending));
        pending.write_all(b"x").unwrap();
        assert!(sink.is_full(&pending));
    }

    #[test]
    fn receive_buffers_count_towards_the_limit_and_come_back_to_the_pool() {
        let (mut poll, mut sink, written) = sink(false);
        let mut rx = sink.buffer(2 * SPLICE_MIN);
        rx.fill(b'r');
        let mut pending = lines(b"#1 x: ");
        pending.splice_from(&rx);
        pending.write_all(&rx[..SPLICE_MIN]).unwrap();
        pending.write_all(b"\n").unwrap();
        assert!(pending.end_splice(&rx));
        let at = rx.as_ptr();
        pending.attach(rx);
        sink.mark(pending.len(), Token(1), 1);
        sink.submit(&mut pending);
        let chunk = 6 + SPLICE_MIN + 1;
        assert_eq!(sink.backlog(0), chunk as u64);
        // Half the buffer is not output, but it is held until written.
        let room = QUEUE_BYTES as usize - chunk - SPLICE_MIN;
        assert!(!sink.is_full(&lines(&vec![b'x'; room - 1])));
        assert!(sink.is_full(&lines(&vec![b'x'; room])));

        let mut got = Vec::new();
        while got.len() < 6 + SPLICE_MIN + 1 {
            got.extend(written.recv().unwrap());
        }
        assert_eq!(got, [b"#1 x: ".as_slice(), &[b'r'; SPLICE_MIN], b"\n"].concat());
        woken(&mut poll);
        let mut out = Vec::new();
        sink.confirmed(&mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert!(!sink.is_full(&lines(&vec![b'x'; room])));
        let again = sink.buffer(SPLICE_MIN);
        assert_eq!((again.as_ptr(), again.len()), (at, SPLICE_MIN));
    }
}
