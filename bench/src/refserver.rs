//! A bare soquete server for the benchmark: the core's [`Session::server`] on one mio
//! thread, accepting everyone and discarding messages, moved by the same pump as
//! `soquete server` (`soquete_host::pump`). It prints nothing, so the difference
//! between it and `soquete server` is the cost of the real server's bookkeeping and
//! output; it also lets the generator be checked on its own.

use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use soquete_core::{Config, Event, Session};
use soquete_host::pump::{self, Endpoint, ReadStop, WriteStop};

/// The listener; connection `i` is `Token(i + 1)`.
const LISTENER: Token = Token(0);

type RefSession = Session<Vec<u8>, Vec<u8>>;

struct Client {
    stream: TcpStream,
    session: RefSession,
    /// Reads stop at a short one, as `soquete server`'s do.
    drained: pump::Drained,
}

/// Serves until `max_time` has passed.
///
/// # Errors
/// The listener cannot be bound or the poll fails.
pub fn run(listen: SocketAddr, max_message: u32, max_time: Duration) -> anyhow::Result<()> {
    let mut poll = Poll::new().context("cannot create poll")?;
    let mut listener = TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("reference soquete server listening on {}", listener.local_addr()?);
    let config = Config {
        max_message,
        idle_timeout: soquete_core::Duration::ZERO,
        ..Config::DEFAULT
    };
    let epoch = Instant::now();
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut next_token = 1u64;
    let stop = epoch + max_time;
    while Instant::now() < stop {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(500))) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("poll");
        }
        let now = soquete_core::Instant::from_millis(epoch.elapsed().as_millis() as u64);
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.set_nodelay(true);
                    let rx = vec![0; Session::<Vec<u8>, Vec<u8>>::min_rx_len(max_message).max(16 * 1024)];
                    let Ok(session) = Session::server(config, rx, vec![0; 256], now) else {
                        continue;
                    };
                    let i = clients.iter().position(Option::is_none).unwrap_or(clients.len());
                    poll.registry()
                        .register(&mut stream, Token(i + 1), Interest::READABLE | Interest::WRITABLE)?;
                    let client = Client {
                        stream,
                        session,
                        drained: pump::Drained::edge_triggered(),
                    };
                    if i == clients.len() {
                        clients.push(Some(client));
                    } else if let Some(slot) = clients.get_mut(i) {
                        *slot = Some(client);
                    }
                }
                continue;
            }
            let Some(entry) = ev.token().0.checked_sub(1).and_then(|i| clients.get_mut(i)) else {
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                if let Some(c) = entry.as_mut() {
                    c.drained.event(ev.is_read_closed() || ev.is_error());
                }
            }
            let keep = entry.as_mut().is_some_and(|c| serve(c, now, &mut next_token));
            if !keep {
                if let Some(mut c) = entry.take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
            }
        }
    }
    Ok(())
}

/// Reads, handles events, writes; false once the connection is over.
fn serve(c: &mut Client, now: soquete_core::Instant, next_token: &mut u64) -> bool {
    let mut accepting = Accepting {
        session: &mut c.session,
        next_token,
    };
    let mut socket = pump::EdgeRead {
        state: &mut c.drained,
        socket: &mut c.stream,
    };
    match pump::read(&mut socket, &mut accepting, now, usize::MAX).stop {
        ReadStop::Eof => c.session.handle_eof(now),
        ReadStop::Failed(_) => return false,
        ReadStop::WouldBlock | ReadStop::Budget | ReadStop::Full | ReadStop::Stopped => {}
    }
    accept_hellos(&mut c.session, now, next_token);
    if let WriteStop::Failed(_) = pump::write(&mut c.stream, &mut c.session).stop {
        return false;
    }
    !c.session.is_finished()
}

/// The session as the pump's endpoint: every HELLO is accepted as the bytes arrive,
/// and every message dropped.
struct Accepting<'a> {
    session: &'a mut RefSession,
    next_token: &'a mut u64,
}

impl Endpoint for Accepting<'_> {
    fn input_buffer(&mut self) -> &mut [u8] {
        self.session.input_buffer()
    }

    fn received(&mut self, now: soquete_core::Instant, n: usize) -> ControlFlow<()> {
        self.session.advance_input(now, n);
        accept_hellos(self.session, now, self.next_token);
        ControlFlow::Continue(())
    }

    fn output(&mut self) -> &[u8] {
        self.session.poll_transmit()
    }

    fn sent(&mut self, n: usize) {
        self.session.advance_transmit(n);
    }
}

/// Takes the session's events, accepting a HELLO.
fn accept_hellos(session: &mut RefSession, now: soquete_core::Instant, next_token: &mut u64) {
    while let Some(event) = session.poll_event(now) {
        if let Event::Hello { .. } = event {
            *next_token += 1;
            let _ = session.accept(*next_token, None);
        }
    }
}
