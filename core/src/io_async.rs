//! The async driver: moves bytes between a [`Session`] and an [`embedded_io_async`]
//! transport, for Embassy and any other executor.
//!
//! The transport comes split in a reading and a writing half (embassy-net's
//! `TcpSocket::split`), because both must be in flight at once: a driver that first
//! writes everything and then reads deadlocks when both peers write at once and their
//! buffers fill, each waiting for the other to read. [`Driver::drive`] waits for
//! whichever half moves bytes first, hands them to the session and returns, so that the
//! application polls the session's events (which also lets acknowledgements out)
//! before driving again.
//!
//! The driver owns no clock and no timer: the application races `drive` against its own
//! timer for [`Session::poll_timeout`] (with `embassy_futures::select` or any `select`),
//! and against whatever else it waits for (a channel of messages to send). Losing such a
//! race loses nothing; see [cancel safety](Driver#cancel-safety).
//!
//! ```ignore
//! let (reader, writer) = socket.split();
//! let mut io = Driver::<_, _, 512>::new(reader, writer);
//! let now = || Instant::from_millis(embassy_time::Instant::now().as_millis());
//! loop {
//!     while let Some(event) = session.poll_event(now()) {
//!         // Message, Acked, Closed…
//!     }
//!     if session.is_finished() {
//!         break;
//!     }
//!     let deadline = session.poll_timeout();
//!     let timer = async {
//!         match deadline {
//!             Some(t) => Timer::at(embassy_time::Instant::from_millis(t.as_millis())).await,
//!             None => core::future::pending().await,
//!         }
//!     };
//!     match select(io.drive(&mut session, now), timer).await {
//!         Either::First(moved) => _ = moved?,
//!         Either::Second(()) => session.handle_timeout(now()),
//!     }
//! }
//! io.flush().await?;
//! ```
//!
//! `embassy-demo/` is a whole program (an Embassy client and server over embassy-net
//! against the host's `soquete` binary); `embassy-demo/examples/in_a_task.rs` is this
//! loop as a function that compiles.

use core::future::{pending, poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

use embedded_io_async::{ErrorType, Read, Write};

use crate::io::Error;
use crate::session::Session;
use crate::time::Instant;

/// What one [`Driver::drive`] call did. Both halves may complete in the same call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Progress {
    /// Bytes read from the transport into the session.
    pub received: usize,
    /// Bytes of the session's output that the transport took.
    pub sent: usize,
    /// The transport reached end of stream (passed on with [`Session::handle_eof`]).
    pub eof: bool,
}

impl Progress {
    /// True when nothing moved: `drive` returns that only for a finished session
    /// ([`Session::is_finished`]), whose transport should now be flushed and closed.
    pub fn is_none(&self) -> bool {
        *self == Progress::default()
    }
}

/// Moves bytes between a session and the two halves of a transport; see the
/// [module docs](self).
///
/// `N` is the size of the copy of the session's output that a `write` works on (the
/// session's own buffer is borrowed by the concurrent `read`): any size above zero
/// works, a few hundred bytes keep the number of `write` calls low.
///
/// # Cancel safety
///
/// Each `drive` starts a read and a write and drops the one still pending when the
/// other completes, so the transport's `read` and `write` must be side-effect-free on
/// cancel, as embedded-io-async encourages: embassy-net's `TcpReader`, `TcpWriter` and
/// `TcpSocket` are, and so is any transport that copies from or into its own buffer
/// within one poll. One that moves bytes by DMA straight from or into the caller's
/// buffer is not; give it a buffered layer first.
///
/// With such a transport, [`Driver::drive`] and [`Driver::flush`] may be dropped at any
/// `.await` (lose a `select`) without losing or repeating a byte: `drive` holds nothing
/// of the session's across its one `.await` that a drop would lose, bytes the transport
/// returns reach the session in the same poll, and output counts as sent only once
/// `write` has returned. After a drop, poll the session's events as usual and call
/// `drive` again.
#[derive(Debug)]
pub struct Driver<Rd, Wr, const N: usize> {
    reader: Rd,
    writer: Wr,
    out: [u8; N],
}

impl<Rd, Wr, const N: usize> Driver<Rd, Wr, N>
where
    Rd: Read,
    Wr: Write<Error = Rd::Error>,
{
    /// A driver over the reading and writing halves of one connection.
    pub fn new(reader: Rd, writer: Wr) -> Self {
        const { assert!(N > 0, "the output copy must hold at least one byte") };
        Driver {
            reader,
            writer,
            out: [0; N],
        }
    }

    /// Waits until the transport moves bytes in either direction, then hands them to the
    /// session: what the reader returned with [`Session::advance_input`] (end of stream
    /// with [`Session::handle_eof`]), what the writer took with
    /// [`Session::advance_transmit`]. Reading never waits behind a blocked write, nor
    /// writing behind an idle read.
    ///
    /// Call it after polling the session's events until `None`. `now` is called (at most
    /// once) when bytes arrive, to time them for the idle timeout.
    ///
    /// Returns at once with an empty [`Progress`] when the session is finished. Otherwise
    /// it waits as long as the peer is quiet, and for good while the session has nothing
    /// to send and no room to receive (a full receive buffer that [`Session::rx_wanted`]
    /// asks to grow): race it against the session's timer. Cancel-safe; see
    /// [cancel safety](Driver#cancel-safety).
    ///
    /// # Errors
    /// The transport's read or write error, or [`Error::WriteZero`] when `write` took
    /// nothing. Bytes that moved in the other direction in the same poll have reached the
    /// session even then.
    pub async fn drive<R, T>(
        &mut self,
        session: &mut Session<R, T>,
        now: impl FnOnce() -> Instant,
    ) -> Result<Progress, Error<<Rd as ErrorType>::Error>>
    where
        R: AsRef<[u8]> + AsMut<[u8]>,
        T: AsRef<[u8]> + AsMut<[u8]>,
    {
        let chunk = session.poll_transmit();
        let len = chunk.len().min(N);
        if let (Some(dst), Some(src)) = (self.out.get_mut(..len), chunk.get(..len)) {
            dst.copy_from_slice(src);
        }
        if len == 0 && session.is_closed() {
            return Ok(Progress::default());
        }

        let Driver { reader, writer, out } = self;
        let out = out.get(..len).unwrap_or(&[]);
        let (read, wrote) = {
            let input = session.input_buffer();
            let mut read = pin!(async {
                if input.is_empty() {
                    pending().await
                } else {
                    reader.read(input).await
                }
            });
            let mut write = pin!(async {
                if out.is_empty() {
                    pending().await
                } else {
                    writer.write(out).await
                }
            });
            // Both halves are polled every time, so that a peer that keeps us busy
            // reading cannot starve our writes (its acknowledgements among them).
            poll_fn(|cx| match (read.as_mut().poll(cx), write.as_mut().poll(cx)) {
                (Poll::Pending, Poll::Pending) => Poll::Pending,
                (r, w) => Poll::Ready((ready(r), ready(w))),
            })
            .await
        };

        // Record what moved before reporting any error, so that no byte is lost.
        let mut progress = Progress::default();
        let read_error = match read {
            Some(Ok(0)) => {
                session.handle_eof(now());
                progress.eof = true;
                None
            }
            Some(Ok(n)) => {
                session.advance_input(now(), n);
                progress.received = n;
                None
            }
            Some(Err(e)) => Some(e),
            None => None,
        };
        match wrote {
            Some(Ok(0)) => return Err(Error::WriteZero),
            Some(Ok(n)) => {
                session.advance_transmit(n);
                progress.sent = n;
            }
            Some(Err(e)) => return Err(Error::Transport(e)),
            None => {}
        }
        match read_error {
            Some(e) => Err(Error::Transport(e)),
            None => Ok(progress),
        }
    }

    /// Flushes the writer: call it once `drive` reports the session finished, before
    /// closing the transport, so that the last bytes (the final CLOSE) leave.
    /// Cancel-safe: dropping it loses no byte.
    ///
    /// # Errors
    /// The transport's flush error.
    pub async fn flush(&mut self) -> Result<(), Error<<Rd as ErrorType>::Error>> {
        self.writer.flush().await.map_err(Error::Transport)
    }

    /// The reading half.
    pub fn reader(&mut self) -> &mut Rd {
        &mut self.reader
    }

    /// The writing half.
    pub fn writer(&mut self) -> &mut Wr {
        &mut self.writer
    }

    /// The two halves back.
    pub fn into_parts(self) -> (Rd, Wr) {
        (self.reader, self.writer)
    }
}

fn ready<T>(poll: Poll<T>) -> Option<T> {
    match poll {
        Poll::Ready(t) => Some(t),
        Poll::Pending => None,
    }
}

#[cfg(all(test, feature = "server"))]
mod tests {
    //! Two sessions talking through [`Driver`]s over an in-memory transport that splits
    //! reads and writes, delays them, stalls for a while and holds only a few bytes per
    //! direction; run by a small executor on a virtual clock that advances only when
    //! nothing else can happen, and that reports a deadlock instead of hanging.

    use super::*;
    use crate::session::{Closure, Config, Event};
    use crate::wire::Code;

    use core::cell::{Cell, RefCell};
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Waker};
    use std::collections::VecDeque;
    use std::format;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::vec::Vec;

    /// How the transport misbehaves, in percent per operation.
    #[derive(Clone, Copy, Debug)]
    struct Shape {
        /// Bytes a pipe holds per direction.
        capacity: usize,
        /// Largest read or write, in bytes.
        max_chunk: usize,
        /// Chance that an operation first returns `Pending` (and wakes itself).
        delay: u64,
        /// Chance that an operation stalls until the clock advances `stall_ms`.
        stall: u64,
        stall_ms: u64,
    }

    const ROUGH: Shape = Shape {
        capacity: 24,
        max_chunk: 7,
        delay: 30,
        stall: 5,
        stall_ms: 3,
    };

    /// Virtual time, timers, and a deterministic random source.
    struct World {
        now: Cell<u64>,
        sleepers: RefCell<Vec<(u64, Waker)>>,
        rng: Cell<u64>,
    }

    impl World {
        fn new(seed: u64) -> Rc<World> {
            Rc::new(World {
                now: Cell::new(0),
                sleepers: RefCell::new(Vec::new()),
                rng: Cell::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            })
        }

        fn now(&self) -> Instant {
            Instant::from_millis(self.now.get())
        }

        /// xorshift64*: enough for test scheduling, identical on every run.
        fn chance(&self, percent: u64) -> bool {
            let mut x = self.rng.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.rng.set(x);
            x.wrapping_mul(0x2545_F491_4F6C_DD1D) % 100 < percent
        }

        fn sleep_until(self: &Rc<Self>, at: u64) -> Sleep {
            Sleep {
                world: self.clone(),
                at,
            }
        }

        /// Moves the clock to the earliest timer and wakes what waits for it; false when
        /// no timer is set.
        fn advance(&self) -> bool {
            let mut sleepers = self.sleepers.borrow_mut();
            let Some(at) = sleepers.iter().map(|(at, _)| *at).min() else {
                return false;
            };
            self.now.set(self.now.get().max(at));
            let now = self.now.get();
            sleepers.retain(|(at, waker)| {
                if *at <= now {
                    waker.wake_by_ref();
                    false
                } else {
                    true
                }
            });
            true
        }
    }

    struct Sleep {
        world: Rc<World>,
        at: u64,
    }

    impl Future for Sleep {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.world.now.get() >= self.at {
                return Poll::Ready(());
            }
            self.world.sleepers.borrow_mut().push((self.at, cx.waker().clone()));
            Poll::Pending
        }
    }

    /// One direction of the connection.
    #[derive(Default)]
    struct Pipe {
        bytes: VecDeque<u8>,
        /// The writing half was dropped: end of stream once `bytes` is empty.
        closed: bool,
        reader: Option<Waker>,
        writer: Option<Waker>,
    }

    /// One end's view of the transport: reads from `rx`, writes to `tx`.
    #[derive(Clone)]
    struct End {
        world: Rc<World>,
        shape: Shape,
        rx: Rc<RefCell<Pipe>>,
        tx: Rc<RefCell<Pipe>>,
    }

    struct Reader(End);
    struct Writer(End);

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Broken;

    impl core::fmt::Display for Broken {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("broken pipe")
        }
    }

    impl core::error::Error for Broken {}

    impl embedded_io_async::Error for Broken {
        fn kind(&self) -> embedded_io_async::ErrorKind {
            embedded_io_async::ErrorKind::BrokenPipe
        }
    }

    impl ErrorType for Reader {
        type Error = Broken;
    }

    impl ErrorType for Writer {
        type Error = Broken;
    }

    impl End {
        /// The misbehaviour before an operation may complete: `Some` to return now.
        /// Completing operations happen within one poll, so a dropped one has no effect
        /// (side-effect-free on cancel, as embassy-net's sockets).
        fn hold(&self, cx: &mut Context<'_>) -> Option<Poll<Result<usize, Broken>>> {
            if self.world.chance(self.shape.delay) {
                cx.waker().wake_by_ref();
                return Some(Poll::Pending);
            }
            if self.world.chance(self.shape.stall) {
                let at = self.world.now.get() + self.shape.stall_ms;
                self.world.sleepers.borrow_mut().push((at, cx.waker().clone()));
                return Some(Poll::Pending);
            }
            None
        }

        fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Broken>> {
            if let Some(poll) = self.hold(cx) {
                return poll;
            }
            let mut pipe = self.rx.borrow_mut();
            if pipe.bytes.is_empty() {
                if pipe.closed {
                    return Poll::Ready(Ok(0));
                }
                pipe.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(self.shape.max_chunk).min(pipe.bytes.len());
            for (dst, src) in buf.iter_mut().zip(pipe.bytes.drain(..n)) {
                *dst = src;
            }
            if let Some(w) = pipe.writer.take() {
                w.wake();
            }
            Poll::Ready(Ok(n))
        }

        fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, Broken>> {
            if let Some(poll) = self.hold(cx) {
                return poll;
            }
            let mut pipe = self.tx.borrow_mut();
            let room = self.shape.capacity - pipe.bytes.len();
            if room == 0 {
                pipe.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(self.shape.max_chunk).min(room);
            pipe.bytes.extend(&buf[..n]);
            if let Some(w) = pipe.reader.take() {
                w.wake();
            }
            Poll::Ready(Ok(n))
        }
    }

    impl Read for Reader {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Broken> {
            poll_fn(|cx| self.0.poll_read(cx, buf)).await
        }
    }

    impl Write for Writer {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Broken> {
            poll_fn(|cx| self.0.poll_write(cx, buf)).await
        }

        async fn flush(&mut self) -> Result<(), Broken> {
            Ok(())
        }
    }

    impl Drop for Writer {
        fn drop(&mut self) {
            let mut pipe = self.0.tx.borrow_mut();
            pipe.closed = true;
            if let Some(w) = pipe.reader.take() {
                w.wake();
            }
        }
    }

    /// The two ends of one connection.
    fn connection(world: &Rc<World>, shape: Shape) -> (End, End) {
        let a = Rc::new(RefCell::new(Pipe::default()));
        let b = Rc::new(RefCell::new(Pipe::default()));
        let end = |rx: &Rc<RefCell<Pipe>>, tx: &Rc<RefCell<Pipe>>| End {
            world: world.clone(),
            shape,
            rx: rx.clone(),
            tx: tx.clone(),
        };
        (end(&a, &b), end(&b, &a))
    }

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Why [`run_both`] gave up.
    #[derive(Debug, PartialEq, Eq)]
    enum Stuck {
        /// Both tasks wait, nothing can wake them and no timer is left.
        Deadlock,
        /// Still running after the round limit.
        Rounds,
    }

    /// Runs two tasks to completion, polling each only when woken.
    fn run_both<A: Future, B: Future>(
        world: &World,
        a: A,
        b: B,
        max_rounds: u32,
    ) -> Result<(A::Output, B::Output), Stuck> {
        let mut a = core::pin::pin!(a);
        let mut b = core::pin::pin!(b);
        let (flag_a, flag_b) = (
            Arc::new(Flag(AtomicBool::new(true))),
            Arc::new(Flag(AtomicBool::new(true))),
        );
        let (waker_a, waker_b) = (Waker::from(flag_a.clone()), Waker::from(flag_b.clone()));
        let (mut out_a, mut out_b) = (None, None);
        for _ in 0..max_rounds {
            if out_a.is_none() && flag_a.0.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(v) = a.as_mut().poll(&mut Context::from_waker(&waker_a)) {
                    out_a = Some(v);
                }
            }
            if out_b.is_none() && flag_b.0.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(v) = b.as_mut().poll(&mut Context::from_waker(&waker_b)) {
                    out_b = Some(v);
                }
            }
            if let (Some(_), Some(_)) = (&out_a, &out_b) {
                return out_a.zip(out_b).ok_or(Stuck::Rounds);
            }
            // A finished task's wake-ups (its transport still signals) wake nothing.
            let woken = (out_a.is_none() && flag_a.0.load(Ordering::SeqCst))
                || (out_b.is_none() && flag_b.0.load(Ordering::SeqCst));
            if !woken && !world.advance() {
                return Err(Stuck::Deadlock);
            }
        }
        Err(Stuck::Rounds)
    }

    /// What one peer saw.
    #[derive(Debug, Default)]
    struct Report {
        received: Vec<u64>,
        acked: u64,
        closure: Option<Closure>,
        /// `drive` calls that lost the race against the application's other futures.
        cancelled: u32,
    }

    fn payload(i: u64) -> std::string::String {
        format!("message {i} {}", "x".repeat((i % 40) as usize))
    }

    /// How the application reaches the transport: through [`Driver`], or a naive
    /// sequential loop (write everything, then read) for contrast.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Style {
        Driver,
        Sequential,
    }

    /// An application: sends `count` numbered messages as fast as the session takes
    /// them, expects `expect` from the peer, closes when both are done. It races the
    /// transport against the session's timer and, with `interrupt`, against a 1 ms tick
    /// that keeps cancelling `drive`.
    async fn peer(
        world: Rc<World>,
        mut session: Session<[u8; 1100], [u8; 300]>,
        end: End,
        style: Style,
        count: u64,
        expect: u64,
        interrupt: bool,
    ) -> Report {
        let mut io = Driver::<_, _, 64>::new(Reader(end.clone()), Writer(end));
        let mut report = Report::default();
        let mut sent = 0;
        loop {
            while let Some(event) = session.poll_event(world.now()) {
                match event {
                    Event::Hello { .. } => session.accept(1, None).unwrap(),
                    Event::Message { seq, payload: p } => {
                        assert_eq!(p, payload(seq).as_bytes());
                        report.received.push(seq);
                    }
                    Event::Acked { seq } => report.acked = seq,
                    Event::Closed(c) => report.closure = Some(c),
                    Event::Established { .. } | Event::PeerClosing(_) => {}
                }
            }
            while sent < count && session.is_open() {
                match session.send(payload(sent + 1).as_bytes()) {
                    Ok(_) => sent += 1,
                    Err(crate::session::Error::Full) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            if sent == count && report.received.len() as u64 == expect && session.unacked() == 0 {
                session.close(world.now(), Code::Normal);
            }
            if session.is_finished() {
                break;
            }
            let deadline = session.poll_timeout();
            let timer = async {
                match deadline {
                    Some(at) => world.sleep_until(at.as_millis()).await,
                    None => pending().await,
                }
            };
            let tick = async {
                if interrupt {
                    world.sleep_until(world.now.get() + 1).await;
                } else {
                    pending::<()>().await;
                }
            };
            let w = world.clone();
            let moved = match style {
                Style::Driver => match select3(io.drive(&mut session, move || w.now()), timer, tick).await {
                    Which::First(progress) => Some(progress.unwrap()),
                    Which::Second => None,
                    Which::Third => {
                        report.cancelled += 1;
                        continue;
                    }
                },
                Style::Sequential => match select3(sequential(&mut session, &mut io, &w), timer, tick).await {
                    Which::First(()) => Some(Progress::default()),
                    Which::Second | Which::Third => None,
                },
            };
            if moved.is_none() {
                session.handle_timeout(world.now());
            }
        }
        assert!(io.drive(&mut session, || world.now()).await.unwrap().is_none());
        io.flush().await.unwrap();
        report
    }

    /// The loop this driver exists to avoid: write everything, then read.
    async fn sequential(
        session: &mut Session<[u8; 1100], [u8; 300]>,
        io: &mut Driver<Reader, Writer, 64>,
        world: &World,
    ) {
        loop {
            let chunk = session.poll_transmit();
            if chunk.is_empty() {
                break;
            }
            let n = io.writer().write(chunk).await.unwrap();
            session.advance_transmit(n);
        }
        if session.is_closed() {
            return;
        }
        let n = io.reader().read(session.input_buffer()).await.unwrap();
        if n == 0 {
            session.handle_eof(world.now());
        } else {
            session.advance_input(world.now(), n);
        }
    }

    enum Which<T> {
        First(T),
        Second,
        Third,
    }

    /// A `select` as an application writes one (or takes from embassy-futures).
    async fn select3<T>(
        a: impl Future<Output = T>,
        b: impl Future<Output = ()>,
        c: impl Future<Output = ()>,
    ) -> Which<T> {
        let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
        poll_fn(|cx| {
            if let Poll::Ready(t) = a.as_mut().poll(cx) {
                return Poll::Ready(Which::First(t));
            }
            if b.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Which::Second);
            }
            if c.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Which::Third);
            }
            Poll::Pending
        })
        .await
    }

    /// A client sending `up` messages and a server sending `down`, at the same time.
    fn exchange(
        seed: u64,
        shape: Shape,
        style: Style,
        up: u64,
        down: u64,
        interrupt: bool,
    ) -> Result<(Report, Report), Stuck> {
        let world = World::new(seed);
        let (a, b) = connection(&world, shape);
        let client = Session::client(Config::DEFAULT, "c", [0; 1100], [0; 300], world.now()).unwrap();
        let server = Session::server(Config::DEFAULT, [0; 1100], [0; 300], world.now()).unwrap();
        run_both(
            &world,
            peer(world.clone(), client, a, style, up, down, interrupt),
            peer(world.clone(), server, b, style, down, up, interrupt),
            2_000_000,
        )
    }

    fn assert_clean(report: &Report, expect: u64, sent: u64) {
        let want: Vec<u64> = (1..=expect).collect();
        assert_eq!(report.received, want);
        assert_eq!(report.acked, sent);
        assert!(
            matches!(report.closure, Some(Closure::Orderly { code: Code::Normal, .. })),
            "{:?}",
            report.closure
        );
    }

    #[test]
    fn both_peers_writing_at_once_complete() {
        for seed in 0..20 {
            let (client, server) = exchange(seed, ROUGH, Style::Driver, 300, 300, false).expect("deadlock");
            assert_clean(&client, 300, 300);
            assert_clean(&server, 300, 300);
        }
    }

    #[test]
    fn sequential_loop_deadlocks_on_the_same_transport() {
        // The harness catches what the driver avoids: both write, nobody reads.
        let shape = Shape {
            delay: 0,
            stall: 0,
            ..ROUGH
        };
        assert_eq!(
            exchange(1, shape, Style::Sequential, 300, 300, false).err(),
            Some(Stuck::Deadlock)
        );
        let (client, server) = exchange(1, shape, Style::Driver, 300, 300, false).expect("deadlock");
        assert_clean(&client, 300, 300);
        assert_clean(&server, 300, 300);
    }

    #[test]
    fn cancelled_drive_loses_and_repeats_nothing() {
        let shape = Shape {
            stall: 20,
            stall_ms: 5,
            ..ROUGH
        };
        for seed in 0..10 {
            let (client, server) = exchange(seed, shape, Style::Driver, 200, 150, true).expect("deadlock");
            assert!(client.cancelled > 0 && server.cancelled > 0);
            assert_clean(&client, 150, 200);
            assert_clean(&server, 200, 150);
        }
    }

    #[test]
    fn one_way_through_a_one_byte_pipe() {
        let shape = Shape {
            capacity: 1,
            max_chunk: 1,
            delay: 10,
            stall: 1,
            stall_ms: 2,
        };
        let (client, server) = exchange(7, shape, Style::Driver, 50, 0, false).expect("deadlock");
        assert_clean(&client, 0, 50);
        assert_clean(&server, 50, 0);
    }

    /// A transport half that answers every call at once with a fixed result, or never.
    struct Scripted(Option<Result<usize, Broken>>);

    impl ErrorType for Scripted {
        type Error = Broken;
    }

    impl Read for Scripted {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Broken> {
            match self.0 {
                Some(Ok(n)) => {
                    buf[..n].fill(b'x');
                    Ok(n)
                }
                Some(Err(e)) => Err(e),
                None => pending().await,
            }
        }
    }

    impl Write for Scripted {
        async fn write(&mut self, _: &[u8]) -> Result<usize, Broken> {
            match self.0 {
                Some(r) => r,
                None => pending().await,
            }
        }

        async fn flush(&mut self) -> Result<(), Broken> {
            Ok(())
        }
    }

    /// Polls once: every future here is ready at once or never.
    fn now_or_never<F: Future>(f: F) -> Option<F::Output> {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    fn client() -> Session<[u8; 1100], [u8; 300]> {
        Session::client(Config::DEFAULT, "c", [0; 1100], [0; 300], Instant::ZERO).unwrap()
    }

    #[test]
    fn errors_are_reported_after_what_moved() {
        let mut session = client();
        let mut io = Driver::<_, _, 64>::new(Scripted(None), Scripted(Some(Ok(0))));
        let r = now_or_never(io.drive(&mut session, || Instant::ZERO));
        assert_eq!(r, Some(Err(Error::WriteZero)));

        let mut io = Driver::<_, _, 64>::new(Scripted(Some(Err(Broken))), Scripted(None));
        let r = now_or_never(io.drive(&mut session, || Instant::ZERO));
        assert_eq!(r, Some(Err(Error::Transport(Broken))));

        // Both halves complete in one poll, the write with an error: the bytes read
        // still reach the session.
        let mut io = Driver::<_, _, 64>::new(Scripted(Some(Ok(5))), Scripted(Some(Err(Broken))));
        let r = now_or_never(io.drive(&mut session, || Instant::from_millis(3)));
        assert_eq!(r, Some(Err(Error::Transport(Broken))));
        assert_eq!(session.stats().bytes_in, 5);
    }

    #[test]
    fn both_halves_in_one_poll_are_both_recorded() {
        let mut session = client();
        let mut io = Driver::<_, _, 8>::new(Scripted(Some(Ok(3))), Scripted(Some(Ok(8))));
        let r = now_or_never(io.drive(&mut session, || Instant::ZERO));
        assert_eq!(
            r,
            Some(Ok(Progress {
                received: 3,
                sent: 8,
                eof: false
            }))
        );
        assert_eq!((session.stats().bytes_in, session.stats().bytes_out), (3, 8));
    }

    #[test]
    fn end_of_stream_closes_the_session() {
        let world = World::new(0);
        let calm = Shape {
            delay: 0,
            stall: 0,
            ..ROUGH
        };
        let (a, b) = connection(&world, calm);
        drop(Writer(a));
        let mut session = Session::server(Config::DEFAULT, [0; 1100], [0; 300], world.now()).unwrap();
        let mut io = Driver::<_, _, 64>::new(Reader(b.clone()), Writer(b));
        assert_eq!(
            now_or_never(io.drive(&mut session, || world.now())),
            Some(Ok(Progress {
                received: 0,
                sent: 0,
                eof: true
            }))
        );
        assert_eq!(session.poll_event(world.now()), Some(Event::Closed(Closure::Eof)));
        assert!(session.is_finished());
        assert_eq!(
            now_or_never(io.drive(&mut session, || world.now())),
            Some(Ok(Progress::default()))
        );
    }
}
