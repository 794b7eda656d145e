//! Moving bytes between a socket and a session: the std counterpart of the core's
//! `io::pump_read` / `io::pump_write`, for the server, the client, the benchmark's
//! reference server and load generator, and the test client.
//!
//! The socket is non-blocking (or blocking with a timeout, which std reports as the
//! same `WouldBlock`). [`read()`] fills the endpoint's input buffer until the socket
//! would block, the byte budget is spent, the endpoint has no room or asks to stop,
//! the peer ends the stream or the socket fails; [`write()`] hands the endpoint's output
//! to the socket until it would block. Neither decides what an end of stream or an
//! error means: they report it, and the caller (which knows whether it is a binary
//! session, a plain-text one or a benchmark peer) acts on it.

use std::io::{self, Read, Write};
use std::ops::ControlFlow;

use soquete_core::{Instant, Session};

/// What a pump moves bytes for: a [`Session`], or anything with its buffer contract.
pub trait Endpoint {
    /// Free space for the next bytes from the socket; empty when there is no room now
    /// (the bytes wait in the socket until the endpoint has consumed its input).
    fn input_buffer(&mut self) -> &mut [u8];

    /// The first `n` bytes of [`Endpoint::input_buffer`] were filled at `now`; handle
    /// them (take the session's events). `Break` stops the read there.
    fn received(&mut self, now: Instant, n: usize) -> ControlFlow<()>;

    /// Bytes waiting to be written; empty when there are none.
    fn output(&mut self) -> &[u8];

    /// The socket took the first `n` bytes of [`Endpoint::output`].
    fn sent(&mut self, n: usize);
}

impl<R, T> Endpoint for Session<R, T>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    fn input_buffer(&mut self) -> &mut [u8] {
        Session::input_buffer(self)
    }

    fn received(&mut self, now: Instant, n: usize) -> ControlFlow<()> {
        self.advance_input(now, n);
        ControlFlow::Continue(())
    }

    fn output(&mut self) -> &[u8] {
        self.poll_transmit()
    }

    fn sent(&mut self, n: usize) {
        self.advance_transmit(n);
    }
}

/// An endpoint that stops [`read()`] after one successful read: for a blocking socket,
/// where a second read would wait (up to its timeout) for bytes that may never come.
#[derive(Debug)]
pub struct OneRead<'a, E: ?Sized>(pub &'a mut E);

impl<E: Endpoint + ?Sized> Endpoint for OneRead<'_, E> {
    fn input_buffer(&mut self) -> &mut [u8] {
        self.0.input_buffer()
    }

    fn received(&mut self, now: Instant, n: usize) -> ControlFlow<()> {
        self.0.received(now, n)?;
        ControlFlow::Break(())
    }

    fn output(&mut self) -> &[u8] {
        self.0.output()
    }

    fn sent(&mut self, n: usize) {
        self.0.sent(n);
    }
}

/// Why [`read()`] returned.
#[derive(Debug)]
pub enum ReadStop {
    /// The socket has nothing more now: wait for it to become readable.
    WouldBlock,
    /// The budget is spent; the socket may have more.
    Budget,
    /// The endpoint has no room for more input.
    Full,
    /// [`Endpoint::received`] asked to stop.
    Stopped,
    /// The peer finished sending (the endpoint has not been told).
    Eof,
    /// The socket failed.
    Failed(io::Error),
}

/// What [`read()`] did.
#[derive(Debug)]
pub struct ReadOutcome {
    /// Bytes handed to the endpoint.
    pub bytes: usize,
    /// Why it stopped.
    pub stop: ReadStop,
}

/// Reads from `socket` into `endpoint`, at most `budget` bytes (so that one fast
/// sender cannot starve the other connections of an event loop).
pub fn read<S, E>(socket: &mut S, endpoint: &mut E, now: Instant, budget: usize) -> ReadOutcome
where
    S: Read + ?Sized,
    E: Endpoint + ?Sized,
{
    let mut bytes = 0;
    let stop = loop {
        let left = budget - bytes;
        if left == 0 {
            break ReadStop::Budget;
        }
        let buf = endpoint.input_buffer();
        if buf.is_empty() {
            break ReadStop::Full;
        }
        let want = buf.len().min(left);
        let Some(buf) = buf.get_mut(..want) else {
            break ReadStop::Full;
        };
        match socket.read(buf) {
            Ok(0) => break ReadStop::Eof,
            Ok(n) => {
                let n = n.min(want);
                bytes += n;
                if endpoint.received(now, n).is_break() {
                    break ReadStop::Stopped;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ReadStop::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break ReadStop::Failed(e),
        }
    };
    ReadOutcome { bytes, stop }
}

/// Saves the read that would fail with `WouldBlock` on a socket under edge-triggered
/// readiness, as nginx does with `EPOLLET`.
///
/// With epoll in edge-triggered mode (how mio registers sockets on Linux), a read of a
/// TCP socket that returns fewer bytes than it had room for has emptied the socket's
/// receive queue: bytes that arrive later raise a new readiness event. So after such a
/// short read the next read can answer `WouldBlock` without asking the kernel, until
/// [`Drained::event`] reports new readiness. Where the peer's end (or an error) was
/// signalled, the socket is read until it says so, as the short read may have left the
/// end unread. Off (every read asks the kernel) unless [`Drained::edge_triggered`].
///
/// TCP urgent data also ends a read short (Linux stops at the urgent mark with bytes
/// still queued). soquete's peers never send it; a peer that does has already broken
/// its own stream (the urgent byte is taken out of band), and the bytes after the mark
/// wait for its next segment (at the latest its answer to the session's PING).
#[derive(Debug, Default, Clone, Copy)]
pub struct Drained {
    on: bool,
    drained: bool,
}

impl Drained {
    /// For a socket registered with mio: on where mio's readiness is edge-triggered
    /// epoll (Linux, Android), off elsewhere.
    pub fn edge_triggered() -> Self {
        Drained {
            on: cfg!(any(target_os = "linux", target_os = "android")),
            drained: false,
        }
    }

    /// The socket was reported readable; `ended` if the event also said the peer
    /// finished sending, hung up or failed (from then on every read asks the kernel).
    pub fn event(&mut self, ended: bool) {
        self.drained = false;
        if ended {
            self.on = false;
        }
    }

    /// Reads `socket` into `buf`, or answers `WouldBlock` if the last read emptied it
    /// and no event came since.
    ///
    /// # Errors
    /// As the socket's `read`, and `WouldBlock` as above.
    pub fn read<S: Read + ?Sized>(&mut self, socket: &mut S, buf: &mut [u8]) -> io::Result<usize> {
        if self.drained && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = socket.read(buf)?;
        if self.on && n > 0 && n < buf.len() {
            self.drained = true;
        }
        Ok(n)
    }
}

/// A socket read through its [`Drained`] state, for [`read()`].
#[derive(Debug)]
pub struct EdgeRead<'a, S: ?Sized> {
    /// The socket's state.
    pub state: &'a mut Drained,
    /// The socket.
    pub socket: &'a mut S,
}

impl<S: Read + ?Sized> Read for EdgeRead<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.state.read(self.socket, buf)
    }
}

/// Why [`write()`] returned.
#[derive(Debug)]
pub enum WriteStop {
    /// Everything the endpoint had is written.
    Done,
    /// The socket takes nothing more now: wait for it to become writable.
    WouldBlock,
    /// The socket failed (a write of zero bytes counts as `WriteZero`).
    Failed(io::Error),
}

/// What [`write()`] did.
#[derive(Debug)]
pub struct WriteOutcome {
    /// Bytes the socket took.
    pub bytes: usize,
    /// Why it stopped.
    pub stop: WriteStop,
}

/// Writes the endpoint's output to `socket` until there is none or the socket would
/// block.
pub fn write<S, E>(socket: &mut S, endpoint: &mut E) -> WriteOutcome
where
    S: Write + ?Sized,
    E: Endpoint + ?Sized,
{
    let mut bytes = 0;
    let stop = loop {
        let chunk = endpoint.output();
        if chunk.is_empty() {
            break WriteStop::Done;
        }
        let len = chunk.len();
        match socket.write(chunk) {
            Ok(0) => break WriteStop::Failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let n = n.min(len);
                bytes += n;
                endpoint.sent(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break WriteStop::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break WriteStop::Failed(e),
        }
    };
    WriteOutcome { bytes, stop }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// An endpoint with a fixed input buffer and some bytes to send.
    struct Bytes {
        buf: Vec<u8>,
        filled: usize,
        tx: Vec<u8>,
        tx_pos: usize,
        /// Ask to stop once this many bytes arrived.
        stop_at: Option<usize>,
    }

    fn bytes(room: usize, tx: &[u8]) -> Bytes {
        Bytes {
            buf: vec![0; room],
            filled: 0,
            tx: tx.to_vec(),
            tx_pos: 0,
            stop_at: None,
        }
    }

    impl Endpoint for Bytes {
        fn input_buffer(&mut self) -> &mut [u8] {
            &mut self.buf[self.filled..]
        }

        fn received(&mut self, _now: Instant, n: usize) -> ControlFlow<()> {
            self.filled += n;
            match self.stop_at {
                Some(k) if self.filled >= k => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }

        fn output(&mut self) -> &[u8] {
            &self.tx[self.tx_pos..]
        }

        fn sent(&mut self, n: usize) {
            self.tx_pos += n;
        }
    }

    /// A socket that answers each call with the next scripted step; `WouldBlock` once
    /// the script is over.
    enum Step {
        Data(&'static [u8]),
        Err(io::ErrorKind),
        Eof,
    }

    struct Script(VecDeque<Step>);

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                Some(Step::Data(d)) => {
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    if n < d.len() {
                        self.0.push_front(Step::Data(&d[n..]));
                    }
                    Ok(n)
                }
                Some(Step::Err(kind)) => Err(kind.into()),
                Some(Step::Eof) => Ok(0),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                // Takes at most as many bytes as the step holds.
                Some(Step::Data(d)) => Ok(d.len().min(buf.len())),
                Some(Step::Err(kind)) => Err(kind.into()),
                Some(Step::Eof) => Ok(0),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn script(steps: impl IntoIterator<Item = Step>) -> Script {
        Script(steps.into_iter().collect())
    }

    #[test]
    fn reads_until_would_block_and_retries_interrupted() {
        let mut s = script([
            Step::Data(b"abc"),
            Step::Err(io::ErrorKind::Interrupted),
            Step::Data(b"de"),
        ]);
        let mut e = bytes(16, b"");
        let r = read(&mut s, &mut e, Instant::ZERO, usize::MAX);
        assert!(matches!(r.stop, ReadStop::WouldBlock), "{r:?}");
        assert_eq!((r.bytes, &e.buf[..e.filled]), (5, &b"abcde"[..]));
    }

    #[test]
    fn stops_at_the_budget_and_leaves_the_rest_in_the_socket() {
        let mut s = script([Step::Data(b"0123456789")]);
        let mut e = bytes(16, b"");
        let r = read(&mut s, &mut e, Instant::ZERO, 4);
        assert!(matches!(r.stop, ReadStop::Budget), "{r:?}");
        assert_eq!(&e.buf[..e.filled], b"0123");
        let r = read(&mut s, &mut e, Instant::ZERO, 100);
        assert!(matches!(r.stop, ReadStop::WouldBlock), "{r:?}");
        assert_eq!(&e.buf[..e.filled], b"0123456789");
    }

    #[test]
    fn stops_when_the_endpoint_is_full_or_asks_to() {
        let mut s = script([Step::Data(b"0123456789")]);
        let mut e = bytes(6, b"");
        let r = read(&mut s, &mut e, Instant::ZERO, usize::MAX);
        assert!(matches!(r.stop, ReadStop::Full), "{r:?}");
        assert_eq!(r.bytes, 6);

        let mut s = script([Step::Data(b"ab"), Step::Data(b"cd"), Step::Data(b"ef")]);
        let mut e = bytes(16, b"");
        e.stop_at = Some(3);
        let r = read(&mut s, &mut e, Instant::ZERO, usize::MAX);
        assert!(matches!(r.stop, ReadStop::Stopped), "{r:?}");
        assert_eq!(&e.buf[..e.filled], b"abcd");
    }

    #[test]
    fn reports_end_of_stream_and_failures_after_the_bytes_before_them() {
        let mut s = script([Step::Data(b"last"), Step::Eof]);
        let mut e = bytes(16, b"");
        let r = read(&mut s, &mut e, Instant::ZERO, usize::MAX);
        assert!(matches!(r.stop, ReadStop::Eof), "{r:?}");
        assert_eq!(r.bytes, 4);

        let mut s = script([Step::Data(b"x"), Step::Err(io::ErrorKind::ConnectionReset)]);
        let r = read(&mut s, &mut bytes(16, b""), Instant::ZERO, usize::MAX);
        assert!(matches!(r.stop, ReadStop::Failed(ref e) if e.kind() == io::ErrorKind::ConnectionReset));
        assert_eq!(r.bytes, 1);
    }

    #[test]
    fn writes_until_done_or_would_block_and_reports_a_zero_write() {
        let mut e = bytes(0, b"hello world");
        let w = write(
            &mut script([Step::Data(b"hello"), Step::Err(io::ErrorKind::Interrupted)]),
            &mut e,
        );
        assert!(matches!(w.stop, WriteStop::WouldBlock), "{w:?}");
        assert_eq!((w.bytes, e.output()), (5, &b" world"[..]));
        let w = write(&mut script([Step::Data(b"123456")]), &mut e);
        assert!(matches!(w.stop, WriteStop::Done), "{w:?}");
        assert_eq!(w.bytes, 6);

        let mut e = bytes(0, b"x");
        let w = write(&mut script([Step::Eof]), &mut e);
        assert!(matches!(w.stop, WriteStop::Failed(ref err) if err.kind() == io::ErrorKind::WriteZero));
        assert_eq!(e.output(), b"x");
    }

    #[test]
    fn a_session_pair_handshakes_over_loopback_sockets() {
        use soquete_core::{Config, Event};

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut b, _) = listener.accept().unwrap();
        // Blocking with a timeout: std reports the timeout as `WouldBlock`.
        for s in [&a, &b] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        }
        let now = Instant::ZERO;
        let mut client = Session::client(Config::DEFAULT, "ana", vec![0; 2048], vec![0; 2048], now).unwrap();
        let mut server = Session::server(Config::DEFAULT, vec![0; 2048], vec![0; 2048], now).unwrap();

        assert!(matches!(write(&mut a, &mut client).stop, WriteStop::Done));
        let mut hello = None;
        while hello.is_none() {
            read(&mut b, &mut OneRead(&mut server), now, usize::MAX);
            while let Some(event) = server.poll_event(now) {
                if let Event::Hello { name, .. } = event {
                    hello = Some(name.to_owned());
                }
            }
        }
        assert_eq!(hello.as_deref(), Some("ana"));
        server.accept(1, None).unwrap();
        assert!(matches!(write(&mut b, &mut server).stop, WriteStop::Done));
        while !client.is_open() {
            read(&mut a, &mut OneRead(&mut client), now, usize::MAX);
            while client.poll_event(now).is_some() {}
        }
    }

    fn read_edge(state: &mut Drained, socket: &mut Script, e: &mut Bytes) -> ReadOutcome {
        read(&mut EdgeRead { state, socket }, e, Instant::ZERO, usize::MAX)
    }

    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn after_a_short_read_the_next_waits_for_an_event_unless_the_end_was_signalled() {
        let mut s = script([Step::Data(b"ab"), Step::Data(b"cd"), Step::Data(b"ef"), Step::Eof]);
        let mut e = bytes(16, b"");
        let mut state = Drained::edge_triggered();
        let r = read_edge(&mut state, &mut s, &mut e);
        // "cd" is still in the socket: the read after the short one was not made.
        assert!(matches!(r.stop, ReadStop::WouldBlock), "{r:?}");
        assert_eq!(&e.buf[..e.filled], b"ab");
        assert_eq!(s.0.len(), 3);

        state.event(false);
        let r = read_edge(&mut state, &mut s, &mut e);
        assert!(matches!(r.stop, ReadStop::WouldBlock), "{r:?}");
        assert_eq!(&e.buf[..e.filled], b"abcd");

        // The event said the peer finished: read on to the end despite short reads.
        state.event(true);
        let r = read_edge(&mut state, &mut s, &mut e);
        assert!(matches!(r.stop, ReadStop::Eof), "{r:?}");
        assert_eq!(&e.buf[..e.filled], b"abcdef");
    }

    #[test]
    fn a_full_read_is_not_a_drained_socket() {
        let mut s = script([Step::Data(b"abcd"), Step::Data(b"ef")]);
        let mut e = bytes(4, b"");
        let mut state = Drained::edge_triggered();
        let r = read_edge(&mut state, &mut s, &mut e);
        assert!(matches!(r.stop, ReadStop::Full), "{r:?}");
        e.filled = 0;
        let r = read_edge(&mut state, &mut s, &mut e);
        assert_eq!(&e.buf[..e.filled], b"ef", "{r:?}");
    }

    /// Real sockets under mio: bytes sent after a short read raise an event, and an end
    /// that arrives with the last bytes is read, so nothing is left unread.
    #[test]
    fn edge_triggered_reads_miss_neither_later_bytes_nor_the_end() {
        use mio::{Events, Interest, Poll, Token};
        use std::time::{Duration, Instant as Clock};

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, _) = listener.accept().unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut socket = mio::net::TcpStream::from_std(socket);
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut socket, Token(1), Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(8);
        let mut state = Drained::edge_triggered();
        let mut e = bytes(64, b"");

        // Waits for events (10 s at most) and reads after each, as the server does,
        // until `done` holds for what was read.
        let mut run = |e: &mut Bytes, done: &dyn Fn(&Bytes, &ReadStop) -> bool| {
            let deadline = Clock::now() + Duration::from_secs(10);
            loop {
                let left = deadline.saturating_duration_since(Clock::now());
                assert!(!left.is_zero(), "no event for what was sent: {:?}", &e.buf[..e.filled]);
                poll.poll(&mut events, Some(left)).unwrap();
                for event in events.iter() {
                    state.event(event.is_read_closed() || event.is_error());
                    let mut edge = EdgeRead {
                        state: &mut state,
                        socket: &mut socket,
                    };
                    let r = read(&mut edge, e, Instant::ZERO, usize::MAX);
                    if done(e, &r.stop) {
                        return;
                    }
                }
            }
        };

        peer.write_all(b"first").unwrap();
        run(&mut e, &|e, _| e.filled == 5);
        peer.write_all(b" second").unwrap();
        run(&mut e, &|e, _| e.filled == 12);
        peer.write_all(b" last").unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        run(&mut e, &|_, stop| matches!(stop, ReadStop::Eof));
        assert_eq!(&e.buf[..e.filled], b"first second last");
    }
}
