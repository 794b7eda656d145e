//! The event loop: many connections on one `mio::Poll`, each keeping a window of
//! messages in flight, with the ack latency of every message in a histogram.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use soquete_host::pump::{self, Endpoint, ReadStop, WriteStop};
use soquete_host::secure::{ClientKeys, Stream};

use crate::proto::{Conn, Target};

/// Longest latency the histogram holds, in nanoseconds (longer ones are clamped).
const HIST_MAX_NS: u64 = 60_000_000_000;

/// A fresh latency histogram (nanoseconds, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant, valid bounds
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds")
}

/// One connection.
#[derive(Debug)]
struct Slot {
    /// Through the secure layer with [`Driver::secure`].
    stream: Stream,
    conn: Conn,
    connected: bool,
    /// Counted as ready or failed by [`Driver::establish`].
    settled: bool,
    /// Send times of the unacknowledged messages, oldest first.
    in_flight: VecDeque<Instant>,
    sent: u64,
    /// The peer closed the connection after an orderly close.
    done: bool,
    failed: Option<String>,
}

impl Slot {
    fn is_ready(&self) -> bool {
        self.connected && self.failed.is_none() && self.conn.is_ready()
    }
}

/// What to send in a run.
#[derive(Clone, Copy, Debug)]
pub struct RunParams {
    /// Messages each connection keeps unacknowledged.
    pub window: usize,
    /// Most messages in the run, over all connections of this driver.
    pub total: Option<u64>,
    /// End of the run (time bound, always set).
    pub deadline: Instant,
}

/// What a run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Messages acknowledged within the run.
    pub acked: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Ack latency of every message acknowledged within the run, in nanoseconds.
    pub hist: Histogram<u64>,
    /// Connections that failed during the run, and the first reason.
    pub failures: usize,
    /// The first failure's reason.
    pub first_error: Option<String>,
}

/// How [`Driver::establish`] went.
#[derive(Debug)]
pub struct Established {
    /// Connections ready to send.
    pub ready: usize,
    /// Connections that failed to connect or to complete the handshake.
    pub failed: usize,
    /// The first failure's reason.
    pub first_error: Option<String>,
}

/// Connections to one server on one `mio::Poll`.
#[derive(Debug)]
pub struct Driver {
    poll: Poll,
    target: Target,
    addr: SocketAddr,
    size: usize,
    window: usize,
    payload: Vec<u8>,
    slots: Vec<Slot>,
    /// The clock of the soquete sessions: milliseconds since this.
    epoch: Instant,
    /// Window, quota and whether acks are recorded, while a run is on.
    run: Option<RunState>,
    id_base: usize,
    /// soquete's secure mode: the keys of every connection.
    keys: Option<ClientKeys>,
    /// Local addresses to connect from, in turn (empty: the kernel chooses).
    sources: Vec<std::net::IpAddr>,
}

#[derive(Debug)]
struct RunState {
    params: RunParams,
    sent: u64,
    acked: u64,
    hist: Histogram<u64>,
}

impl Driver {
    /// A driver for connections to `target` at `addr`, messages of `size` bytes, at most
    /// `window` in flight per connection. `id_base` keeps connection names unique
    /// across drivers.
    ///
    /// # Errors
    /// The poll cannot be created.
    pub fn new(target: Target, addr: SocketAddr, size: usize, window: usize, id_base: usize) -> anyhow::Result<Self> {
        Ok(Driver {
            poll: Poll::new().context("cannot create poll")?,
            target,
            addr,
            size,
            window: window.max(1),
            payload: vec![b'x'; size],
            slots: Vec::new(),
            epoch: Instant::now(),
            run: None,
            id_base,
            keys: None,
            sources: Vec::new(),
        })
    }

    /// Connections speak soquete's secure mode (PROTOCOL.md §10) with `keys`.
    pub fn secure(mut self, keys: Option<ClientKeys>) -> Self {
        self.keys = keys;
        self
    }

    /// Connects from these local addresses in turn: each address has its own
    /// ephemeral ports, so more connections fit than one address allows.
    pub fn set_sources(&mut self, sources: Vec<std::net::IpAddr>) {
        self.sources = sources;
    }

    fn core_now(&self, now: Instant) -> soquete_core::Instant {
        soquete_core::Instant::from_millis(now.duration_since(self.epoch).as_millis() as u64)
    }

    fn open_one(&mut self) -> Result<(), String> {
        let id = self.id_base + self.slots.len();
        let conn = Conn::new(self.target, id, self.size, self.window).map_err(|e| e.to_string())?;
        let stream = match self.sources.get(id % self.sources.len().max(1)) {
            None => TcpStream::connect(self.addr),
            Some(&source) => connect_from(source, self.addr),
        }
        .map_err(|e| format!("connect to {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let mut stream = match &self.keys {
            Some(keys) => Stream::client(stream, keys).map_err(|e| format!("secure mode: {e}"))?,
            None => Stream::clear(stream),
        };
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(self.slots.len()),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("register: {e}"))?;
        self.slots.push(Slot {
            stream,
            conn,
            connected: false,
            settled: false,
            in_flight: VecDeque::new(),
            sent: 0,
            done: false,
            failed: None,
        });
        Ok(())
    }

    /// Opens `n` connections, at most `max_pending` of them connecting or in the
    /// handshake at once, and waits until each is ready or failed (or `timeout`).
    pub fn establish(&mut self, n: usize, max_pending: usize, timeout: Duration) -> Established {
        let deadline = Instant::now() + timeout;
        let mut events = Events::with_capacity(1024);
        let (mut ready, mut failed, mut pending) = (0usize, 0usize, 0usize);
        let mut first_error = None;
        let mut opened = 0;
        while ready + failed < n {
            while opened < n && pending < max_pending.max(1) {
                opened += 1;
                match self.open_one() {
                    Ok(()) => pending += 1,
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                first_error
                    .get_or_insert_with(|| format!("{} connections not ready in {timeout:?}", n - ready - failed));
                break;
            }
            if let Err(e) = self
                .poll
                .poll(&mut events, Some((deadline - now).min(Duration::from_millis(50))))
            {
                if e.kind() != io::ErrorKind::Interrupted {
                    first_error.get_or_insert(format!("poll: {e}"));
                    break;
                }
            }
            for ev in events.iter() {
                let i = ev.token().0;
                self.service(i, Instant::now());
                let Some(slot) = self.slots.get_mut(i) else { continue };
                if slot.settled {
                    continue;
                }
                if let Some(e) = &slot.failed {
                    slot.settled = true;
                    failed += 1;
                    pending -= 1;
                    first_error.get_or_insert_with(|| e.clone());
                } else if slot.is_ready() {
                    slot.settled = true;
                    ready += 1;
                    pending -= 1;
                }
            }
        }
        Established {
            ready,
            failed,
            first_error,
        }
    }

    /// Keeps `params.window` messages in flight on every ready connection until the
    /// deadline, or until `params.total` messages were sent and acknowledged.
    pub fn run(&mut self, params: RunParams) -> RunResult {
        let start = Instant::now();
        self.run = Some(RunState {
            params,
            sent: 0,
            acked: 0,
            hist: new_histogram(),
        });
        for i in 0..self.slots.len() {
            self.refill(i, start);
        }
        let mut events = Events::with_capacity(1024);
        let mut end = start;
        loop {
            let now = Instant::now();
            end = now.max(end);
            let Some(run) = &self.run else { break };
            if now >= params.deadline {
                end = params.deadline.max(start);
                break;
            }
            if params.total.is_some_and(|t| run.sent >= t) && run.acked >= run.sent {
                break;
            }
            if let Err(e) = self.poll.poll(
                &mut events,
                Some((params.deadline - now).min(Duration::from_millis(50))),
            ) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            let now = Instant::now();
            for ev in events.iter() {
                let i = ev.token().0;
                self.service(i, now);
                self.refill(i, now);
            }
        }
        let state = self.run.take();
        let (failures, first_error) = self.failures();
        let (acked, hist) = state.map_or((0, new_histogram()), |s| (s.acked, s.hist));
        RunResult {
            acked,
            elapsed: end - start,
            hist,
            failures,
            first_error,
        }
    }

    fn failures(&self) -> (usize, Option<String>) {
        let failed: Vec<&String> = self.slots.iter().filter_map(|s| s.failed.as_ref()).collect();
        (failed.len(), failed.first().map(|s| s.to_string()))
    }

    /// Waits (up to `timeout`) for the messages still in flight, then closes every
    /// session in an orderly way where the protocol has one, and waits for that too.
    pub fn finish(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut events = Events::with_capacity(1024);
        let mut closing = false;
        loop {
            let now = Instant::now();
            let busy = |s: &Slot| s.failed.is_none() && !s.done && s.connected;
            if !closing && !self.slots.iter().any(|s| busy(s) && !s.in_flight.is_empty()) {
                closing = true;
                let core_now = self.core_now(now);
                for i in 0..self.slots.len() {
                    if let Some(slot) = self.slots.get_mut(i) {
                        slot.conn.close(core_now);
                    }
                    self.flush(i);
                }
            }
            if closing && !self.slots.iter().any(|s| busy(s) && !s.conn.is_closed()) {
                break;
            }
            if now >= deadline || self.poll.poll(&mut events, Some(Duration::from_millis(20))).is_err() {
                break;
            }
            for ev in events.iter() {
                self.service(ev.token().0, Instant::now());
            }
        }
    }

    /// Handles readiness of connection `i`: completes the connect, reads and processes
    /// input (acks), writes what is pending.
    fn service(&mut self, i: usize, now: Instant) {
        let core_now = self.core_now(now);
        let Some(slot) = self.slots.get_mut(i) else { return };
        if slot.failed.is_some() || slot.done {
            return;
        }
        if !slot.connected {
            match slot.stream.socket_mut().take_error() {
                Ok(Some(e)) | Err(e) => {
                    slot.failed = Some(format!("connect: {e}"));
                    return;
                }
                Ok(None) => {}
            }
            match slot.stream.socket_mut().peer_addr() {
                Ok(_) => slot.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    slot.failed = Some(format!("connect: {e}"));
                    return;
                }
            }
        }
        let mut counting = Counting::new(&mut slot.conn);
        let read = pump::read(&mut slot.stream, &mut counting, core_now, usize::MAX);
        let Counting { acks, error, .. } = counting;
        if let Some(e) = error {
            slot.failed = Some(e);
        }
        match read.stop {
            ReadStop::Eof if slot.conn.is_closed() => slot.done = true,
            ReadStop::Eof => slot.failed = Some("server closed the connection".into()),
            ReadStop::Failed(e) => slot.failed = Some(format!("read: {e}")),
            ReadStop::WouldBlock | ReadStop::Budget | ReadStop::Full | ReadStop::Stopped => {}
        }
        for _ in 0..acks {
            let Some(sent_at) = slot.in_flight.pop_front() else {
                break;
            };
            if let Some(run) = &mut self.run {
                if now <= run.params.deadline {
                    run.acked += 1;
                    let ns = u64::try_from(now.duration_since(sent_at).as_nanos()).unwrap_or(u64::MAX);
                    run.hist.saturating_record(ns.clamp(1, HIST_MAX_NS));
                }
            }
        }
        self.flush(i);
    }

    /// Tops connection `i` up to the window, then writes.
    fn refill(&mut self, i: usize, now: Instant) {
        let Some(run) = &mut self.run else { return };
        let Some(slot) = self.slots.get_mut(i) else { return };
        if !slot.is_ready() || slot.done {
            return;
        }
        while slot.in_flight.len() < run.params.window && run.params.total.is_none_or(|t| run.sent < t) {
            if !slot.conn.queue(&self.payload) {
                break;
            }
            slot.in_flight.push_back(now);
            slot.sent += 1;
            run.sent += 1;
        }
        self.flush(i);
    }

    /// Writes what connection `i` has until the socket would block.
    fn flush(&mut self, i: usize) {
        let Some(slot) = self.slots.get_mut(i) else { return };
        if !slot.connected || slot.failed.is_some() {
            return;
        }
        let mut stop = pump::write(&mut slot.stream, &mut Counting::new(&mut slot.conn)).stop;
        if !matches!(stop, WriteStop::Failed(_)) {
            // What the secure layer queued by itself (the key confirmation).
            if let Err(e) = io::Write::flush(&mut slot.stream) {
                if e.kind() != io::ErrorKind::WouldBlock {
                    stop = WriteStop::Failed(e);
                }
            }
        }
        if let WriteStop::Failed(e) = stop {
            slot.failed = Some(match e.kind() {
                io::ErrorKind::WriteZero => "socket took no bytes".into(),
                _ => format!("write: {e}"),
            });
        }
    }

    /// Messages sent over the driver's life, all connections.
    pub fn total_sent(&self) -> u64 {
        self.slots.iter().map(|s| s.sent).sum()
    }
}

/// Linux's "operation now in progress", what a non-blocking connect returns.
const EINPROGRESS: i32 = 115;

/// A non-blocking connect from `source` (any port) to `addr`.
fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// A connection as the pump's endpoint: counts the acknowledgements of what it
/// reads, and stops at the first thing the peer did wrong.
struct Counting<'a> {
    conn: &'a mut Conn,
    acks: u64,
    error: Option<String>,
}

impl<'a> Counting<'a> {
    fn new(conn: &'a mut Conn) -> Self {
        Counting {
            conn,
            acks: 0,
            error: None,
        }
    }
}

impl Endpoint for Counting<'_> {
    fn input_buffer(&mut self) -> &mut [u8] {
        self.conn.read_buf()
    }

    fn received(&mut self, now: soquete_core::Instant, n: usize) -> ControlFlow<()> {
        match self.conn.on_read(n, now) {
            Ok(k) => {
                self.acks += k;
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }

    fn output(&mut self) -> &[u8] {
        self.conn.out()
    }

    fn sent(&mut self, n: usize) {
        self.conn.wrote(n);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};

    use super::*;

    #[test]
    fn connections_leave_from_the_source_address_asked_for() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let source = Ipv4Addr::new(127, 0, 0, 3).into();
        let stream = connect_from(source, addr).unwrap();
        // accept returns once the handshake is complete, so both ends know each other.
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), source);
        assert_eq!(stream.local_addr().unwrap(), peer);
        assert_eq!(stream.peer_addr().unwrap(), addr);
    }
}
