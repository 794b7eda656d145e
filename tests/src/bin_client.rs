//! A binary soquete client for tests: a core session over a blocking socket, driven
//! step by step through the host's pump so that a test controls exactly what is
//! sent, read and cut.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant as StdInstant};

use soquete_core::{Closure, Code, Config, Event, Instant, Session};
use soquete_host::pump::{self, OneRead, ReadStop};

use crate::WAIT;

/// A binary client: a core session over a blocking socket, driven step by step.
#[derive(Debug)]
pub struct BinClient {
    /// The connection.
    pub stream: TcpStream,
    /// The client session.
    pub session: Session<Vec<u8>, Vec<u8>>,
    epoch: StdInstant,
    /// Highest acknowledged sequence number.
    pub acked: u64,
    /// The server started closing with this reason.
    pub peer_closing: Option<Code>,
    /// How the session ended.
    pub closed: Option<Closure>,
    /// `Established` events seen, and whether the last one resumed.
    pub established: Option<bool>,
    /// Messages received from the server, in order.
    pub received: Vec<Vec<u8>>,
}

impl BinClient {
    /// Connects and waits for the handshake's outcome (open, or refused).
    pub fn connect(addr: SocketAddr, name: &str) -> BinClient {
        let stream = open(addr);
        let config = Config {
            max_message: 1024,
            idle_timeout: soquete_core::Duration::from_secs(30),
            ..Config::DEFAULT
        };
        let epoch = StdInstant::now();
        let session = Session::client(config, name, vec![0; 2048], vec![0; 16 * 1024], Instant::ZERO).unwrap();
        let mut client = BinClient {
            stream,
            session,
            epoch,
            acked: 0,
            peer_closing: None,
            closed: None,
            established: None,
            received: Vec::new(),
        };
        client.wait("the handshake", |c| c.session.is_open() || c.closed.is_some());
        client
    }

    /// The session's clock.
    pub fn now(&self) -> Instant {
        Instant::from_millis(self.epoch.elapsed().as_millis() as u64)
    }

    /// Writes everything the session has to send.
    pub fn flush(&mut self) {
        // The server may close first (refusal, error): a failed write is no failure of
        // the test, which checks why the session ended.
        let _ = pump::write(&mut self.stream, &mut self.session);
    }

    /// Takes the session's events.
    pub fn drain(&mut self) {
        let now = self.now();
        while let Some(event) = self.session.poll_event(now) {
            match event {
                Event::Acked { seq } => self.acked = seq,
                Event::PeerClosing(code) => self.peer_closing = Some(code),
                Event::Closed(closure) => self.closed = Some(closure),
                Event::Established { resumed, .. } => self.established = Some(resumed),
                Event::Message { payload, .. } => self.received.push(payload.to_vec()),
                _ => {}
            }
        }
    }

    /// One bounded read (200 ms at most), then events, then output.
    pub fn pump(&mut self) {
        self.flush();
        if self.closed.is_some() {
            return;
        }
        let now = self.now();
        // One read: the socket blocks (200 ms at most), and a second read would wait
        // for bytes that may never come.
        match pump::read(&mut self.stream, &mut OneRead(&mut self.session), now, usize::MAX).stop {
            ReadStop::Eof => self.session.handle_eof(now),
            ReadStop::Failed(e) if e.kind() == ErrorKind::TimedOut => {}
            ReadStop::Failed(e) => panic!("read: {e}"),
            ReadStop::Stopped | ReadStop::WouldBlock | ReadStop::Budget | ReadStop::Full => {}
        }
        self.session.handle_timeout(self.now());
        self.drain();
        self.flush();
    }

    /// Pumps until `done`, failing the test after [`WAIT`] or if the session ends first.
    pub fn wait(&mut self, what: &str, done: impl Fn(&BinClient) -> bool) {
        let deadline = StdInstant::now() + WAIT;
        self.flush();
        self.drain();
        while !done(self) {
            assert!(StdInstant::now() < deadline, "timed out waiting for {what}");
            if self.closed.is_some() && !done(self) {
                panic!("session closed ({:?}) while waiting for {what}", self.closed);
            }
            self.pump();
        }
    }

    /// Queues one message, waiting for acknowledgements while the buffer is full.
    pub fn send(&mut self, payload: &[u8]) {
        let deadline = StdInstant::now() + WAIT;
        loop {
            match self.session.send(payload) {
                Ok(_) => return,
                Err(soquete_core::session::Error::Full) => {
                    assert!(StdInstant::now() < deadline, "no acknowledgements");
                    self.pump();
                }
                Err(e) => panic!("send: {e}"),
            }
        }
    }

    /// Orderly close; returns how the session ended.
    pub fn close(&mut self) -> Closure {
        let now = self.now();
        self.session.close(now, Code::Normal);
        self.wait("the close", |c| c.closed.is_some());
        self.closed.unwrap()
    }

    /// The connection was lost (the test cut it): connects again and resumes the
    /// session (PROTOCOL.md §4.6), waiting for the handshake's outcome. Returns the old
    /// connection, which the test may keep open.
    pub fn reconnect(&mut self, addr: SocketAddr) -> TcpStream {
        let old = std::mem::replace(&mut self.stream, open(addr));
        let now = self.now();
        self.session.reconnect(now).expect("reconnect a binary client");
        self.closed = None;
        self.peer_closing = None;
        self.established = None;
        self.wait("the resumed handshake", |c| c.session.is_open() || c.closed.is_some());
        old
    }

    /// Writes everything queued, ignoring acknowledgements, then cuts the connection
    /// (both directions) without CLOSE.
    pub fn cut(&mut self) {
        self.flush();
        let _ = self.stream.shutdown(Shutdown::Both);
        self.session.handle_eof(self.now());
        self.drain();
    }
}

/// A blocking connection with the harness's timeouts.
fn open(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}
