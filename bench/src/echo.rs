//! A raw TCP echo server on one mio thread: the floor any request/ack protocol pays.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// The listener; client `i` is `Token(i + 1)`.
const LISTENER: Token = Token(0);
const BUF: usize = 64 * 1024;

struct Client {
    stream: TcpStream,
    buf: Box<[u8]>,
    /// Received bytes not yet echoed: `buf[start..end]`.
    start: usize,
    end: usize,
}

/// Echoes every byte back on every connection until `max_time` has passed.
///
/// # Errors
/// The listener cannot be bound or the poll fails.
pub fn run(listen: SocketAddr, max_time: Duration) -> anyhow::Result<()> {
    let mut poll = Poll::new().context("cannot create poll")?;
    let mut listener = TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("echo server listening on {}", listener.local_addr()?);
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let stop = Instant::now() + max_time;
    while Instant::now() < stop {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(500))) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("poll");
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let i = clients.iter().position(Option::is_none).unwrap_or(clients.len());
                            poll.registry().register(
                                &mut stream,
                                Token(i + 1),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            let client = Client {
                                stream,
                                buf: vec![0; BUF].into_boxed_slice(),
                                start: 0,
                                end: 0,
                            };
                            if i == clients.len() {
                                clients.push(Some(client));
                            } else if let Some(slot) = clients.get_mut(i) {
                                *slot = Some(client);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            eprintln!("echo server: accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let Some(entry) = ev.token().0.checked_sub(1).and_then(|i| clients.get_mut(i)) else {
                continue;
            };
            let keep = entry.as_mut().is_some_and(serve);
            if !keep {
                if let Some(mut c) = entry.take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
            }
        }
    }
    Ok(())
}

/// Moves bytes back until the socket would block; false when the connection is over.
fn serve(c: &mut Client) -> bool {
    loop {
        if c.start < c.end {
            match c.stream.write(&c.buf[c.start..c.end]) {
                Ok(0) => return false,
                Ok(n) => c.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
            continue;
        }
        match c.stream.read(&mut c.buf) {
            Ok(0) => return false,
            Ok(n) => {
                c.start = 0;
                c.end = n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}
