//! Two sessions joined by in-memory pipes on virtual time (quinn's `tests/util.rs`):
//! chunking, delay, a cut connection with reconnect and resume, and bytes from a
//! lying peer, all with a bounded number of steps.

use std::collections::VecDeque;
use std::vec::Vec as StdVec;

use super::{drain, transmit, Owned, TestSession, CFG};
use crate::session::{Config, Session};
use crate::time::{Duration, Instant};

/// The token the harness's server hands out.
pub(super) const TOKEN: u64 = 42;

/// A client session and a server session, plus the server's application: what it
/// took, what it confirmed (with explicit acknowledgement), what it would resume.
pub(super) struct Pair {
    pub(super) client: TestSession,
    pub(super) server: TestSession,
    pub(super) now: Instant,
    /// Bytes that have arrived client → server and server → client, not yet read.
    pub(super) c2s: StdVec<u8>,
    pub(super) s2c: StdVec<u8>,
    /// Bytes on the way: arrival time, direction (true: to the server), bytes.
    in_flight: VecDeque<(Instant, bool, StdVec<u8>)>,
    /// One-way delay of every transmission.
    pub(super) latency: Duration,
    /// Largest chunk read per step and direction (to exercise splits).
    pub(super) chunk: usize,
    pub(super) client_events: StdVec<Owned>,
    pub(super) server_events: StdVec<Owned>,
    /// Accept every HELLO: a new session, or with `resume` a resume of [`TOKEN`].
    pub(super) auto_accept: bool,
    /// The server application keeps its sessions: a HELLO with [`TOKEN`] resumes.
    pub(super) resume: bool,
    scfg: Config,
    /// Explicit acknowledgement on the server (0: implicit).
    pub(super) server_window: u32,
    /// Messages the server application took and has not confirmed yet.
    pub(super) server_taken: StdVec<(u64, StdVec<u8>)>,
    /// Payloads the server application has for good: delivered implicitly, or
    /// confirmed. Survives cuts (the application's storage).
    pub(super) stored: StdVec<StdVec<u8>>,
    /// Highest sequence number of the current session the server application has
    /// for good: what it resumes with.
    server_delivered: u64,
    /// Cuts so far.
    pub(super) cuts: usize,
}

impl Pair {
    pub(super) fn new() -> Pair {
        Pair::with(CFG, CFG, "ana")
    }

    pub(super) fn with(ccfg: Config, scfg: Config, name: &str) -> Pair {
        let now = Instant::from_millis(1_000);
        Pair {
            client: Session::client(ccfg, name, [0; 256], [0; 512], now).unwrap(),
            server: Session::server(scfg, [0; 256], [0; 512], now).unwrap(),
            now,
            c2s: StdVec::new(),
            s2c: StdVec::new(),
            in_flight: VecDeque::new(),
            latency: Duration::ZERO,
            chunk: usize::MAX,
            client_events: StdVec::new(),
            server_events: StdVec::new(),
            auto_accept: true,
            resume: false,
            scfg,
            server_window: 0,
            server_taken: StdVec::new(),
            stored: StdVec::new(),
            server_delivered: 0,
            cuts: 0,
        }
    }

    /// The server application confirms messages explicitly, at most `window` of
    /// them outstanding.
    #[cfg(feature = "explicit-ack")]
    pub(super) fn explicit(mut self, window: u32) -> Pair {
        self.server_window = window;
        self.server.set_explicit_ack(window);
        self
    }

    /// Bytes for the other side: they arrive after the latency, never before bytes
    /// sent earlier in the same direction (TCP keeps order even when the delay
    /// shrinks).
    fn send_wire(&mut self, to_server: bool, bytes: StdVec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let last = self.in_flight.iter().filter(|f| f.1 == to_server).map(|f| f.0).max();
        match last {
            None if self.latency.is_zero() => {
                let pipe = if to_server { &mut self.c2s } else { &mut self.s2c };
                pipe.extend(bytes);
            }
            _ => {
                let at = (self.now + self.latency).max(last.unwrap_or(self.now));
                self.in_flight.push_back((at, to_server, bytes));
            }
        }
    }

    /// Bytes from a lying peer, as if the server had sent them.
    pub(super) fn inject_to_client(&mut self, bytes: &[u8]) {
        self.send_wire(false, bytes.to_vec());
    }

    /// Moves what has arrived by now into the pipes (in order, per direction).
    fn arrive(&mut self) {
        let now = self.now;
        let mut later = VecDeque::new();
        for (at, to_server, bytes) in self.in_flight.drain(..) {
            if at > now {
                later.push_back((at, to_server, bytes));
            } else if to_server {
                self.c2s.extend(bytes);
            } else {
                self.s2c.extend(bytes);
            }
        }
        self.in_flight = later;
    }

    /// One round: each side transmits, arrived bytes move (at most `chunk` per
    /// direction), each side takes input and reports events, the server application
    /// acts on them. Returns whether anything moved or waits to move now.
    pub(super) fn step(&mut self) -> bool {
        let now = self.now;
        let out = transmit(&mut self.client, usize::MAX);
        self.send_wire(true, out);
        let out = transmit(&mut self.server, usize::MAX);
        self.send_wire(false, out);
        self.arrive();
        let mut moved = false;
        for (bytes, to) in [(&mut self.c2s, &mut self.server), (&mut self.s2c, &mut self.client)] {
            let n = bytes.len().min(self.chunk);
            if n > 0 {
                let took = to.handle_input(now, &bytes[..n]);
                bytes.drain(..took);
                moved |= took > 0;
            }
        }
        let ev = drain(&mut self.server, now);
        for e in &ev {
            self.server_app(e);
        }
        moved |= !ev.is_empty();
        self.server_events.extend(ev);
        let ev = drain(&mut self.client, now);
        moved |= !ev.is_empty();
        self.client_events.extend(ev);
        moved || self.client.wants_transmit() || self.server.wants_transmit()
    }

    /// What the server application does with an event.
    fn server_app(&mut self, e: &Owned) {
        match e {
            Owned::Hello { token, .. } if self.auto_accept => {
                // Resume when the client names the session we know (§4.6).
                let resume = (self.resume && *token == TOKEN).then_some(self.server_delivered);
                if resume.is_none() {
                    self.server_delivered = 0;
                }
                self.server.accept(TOKEN, resume).unwrap();
            }
            Owned::Message(seq, payload) if self.server_window > 0 => {
                self.server_taken.push((*seq, payload.clone()));
            }
            Owned::Message(seq, payload) => {
                self.stored.push(payload.clone());
                self.server_delivered = *seq;
            }
            _ => {}
        }
    }

    /// The server application confirms everything it took.
    pub(super) fn confirm_all(&mut self) {
        let Some(&(last, _)) = self.server_taken.last() else {
            return;
        };
        self.server.confirm(last).unwrap();
        self.server_delivered = last;
        self.stored.extend(self.server_taken.drain(..).map(|(_, p)| p));
    }

    /// Steps until nothing moves, letting virtual time run to the next arrival when
    /// only bytes in flight are left (bounded).
    pub(super) fn run(&mut self) {
        for _ in 0..10_000 {
            if self.step() {
                continue;
            }
            match self.in_flight.iter().map(|f| f.0).min() {
                Some(at) => self.now = self.now.max(at),
                None => return,
            }
        }
        panic!("pair did not settle");
    }

    /// Advances virtual time to the earliest deadline and fires it.
    pub(super) fn advance_to_next_timeout(&mut self) {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let next = next.expect("no timer");
        self.now = self.now.max(next);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    /// The connection is cut: bytes in flight are lost, the server's session object
    /// goes (its application keeps what it stored, and forgets what it had taken
    /// without confirming), and the client reconnects.
    pub(super) fn cut(&mut self) {
        self.c2s.clear();
        self.s2c.clear();
        self.in_flight.clear();
        self.server_taken.clear();
        self.server = Session::server(self.scfg, [0; 256], [0; 512], self.now).unwrap();
        #[cfg(feature = "explicit-ack")]
        if self.server_window > 0 {
            self.server.set_explicit_ack(self.server_window);
        }
        self.client.reconnect(self.now).unwrap();
        self.cuts += 1;
    }

    pub(super) fn established() -> Pair {
        let mut p = Pair::new();
        p.run();
        assert!(p.client.is_open() && p.server.is_open());
        p.client_events.clear();
        p.server_events.clear();
        p
    }

    pub(super) fn server_messages(&self) -> StdVec<(u64, StdVec<u8>)> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                Owned::Message(s, p) => Some((*s, p.clone())),
                _ => None,
            })
            .collect()
    }
}
