//! A TCP proxy on 127.0.0.1 that cuts the connections through it: after a random
//! number of bytes from the client (so usually in the middle of a frame) it closes
//! both sides, or resets them, until it has made its quota of cuts. Then it forwards
//! faithfully, so that a test using it always ends.
//!
//! Threads: one accepting, two per connection (one per direction). Randomness is a
//! seeded xorshift, so a failing run can be repeated with its seed.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use socket2::SockRef;

/// How the proxy cuts.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Seed of the random choices.
    pub seed: u64,
    /// Cuts to make in all; after that connections are left alone.
    pub cuts: u64,
    /// A connection is cut after a random number of client bytes in `1..=max_bytes`.
    pub max_bytes: u64,
}

/// Counters of what the proxy did.
#[derive(Debug, Default)]
pub struct Counts {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections closed (FIN to both sides) mid-stream.
    pub closed: AtomicU64,
    /// Connections reset (RST to both sides) mid-stream.
    pub reset: AtomicU64,
}

/// A running proxy; stops accepting when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// What it did so far.
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` to `upstream`.
    pub fn start(upstream: SocketAddr, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let plan = Arc::new(Mutex::new(Plan {
            rng: faults.seed | 1,
            cuts_left: faults.cuts,
            max_bytes: faults.max_bytes.max(1),
        }));
        let (c, s) = (Arc::clone(&counts), Arc::clone(&stop));
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                c.connections.fetch_add(1, Ordering::SeqCst);
                let cut = plan.lock().map(|mut p| p.next_cut()).unwrap_or(None);
                spawn_pair(client, server, cut, Arc::clone(&c));
            }
        });
        Proxy { addr, counts, stop }
    }

    /// Cuts made so far: (closed, reset).
    pub fn cuts(&self) -> (u64, u64) {
        (
            self.counts.closed.load(Ordering::SeqCst),
            self.counts.reset.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// The random choices, shared by all connections.
#[derive(Debug)]
struct Plan {
    rng: u64,
    cuts_left: u64,
    max_bytes: u64,
}

/// When and how to cut one connection.
#[derive(Clone, Copy, Debug)]
struct Cut {
    after: u64,
    reset: bool,
}

impl Plan {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn next_cut(&mut self) -> Option<Cut> {
        if self.cuts_left == 0 {
            return None;
        }
        self.cuts_left -= 1;
        let after = 1 + self.next() % self.max_bytes;
        let reset = self.next() % 2 == 0;
        Some(Cut { after, reset })
    }
}

fn spawn_pair(client: TcpStream, server: TcpStream, cut: Option<Cut>, counts: Arc<Counts>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let reset = Arc::new(AtomicBool::new(false));
    let reset2 = Arc::clone(&reset);
    // Server to client: forwarded as is until either side ends.
    thread::spawn(move || {
        forward(server2, client2, None, &reset2);
    });
    // Client to server: forwarded until the cut, if any.
    thread::spawn(move || {
        let Some(cut) = cut else {
            forward(client, server, None, &reset);
            return;
        };
        let (Ok(from), Ok(to)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        if forward(from, to, Some(cut.after), &reset) {
            reset.store(cut.reset, Ordering::SeqCst);
            for s in [&client, &server] {
                if cut.reset {
                    // Closing with a zero linger time sends RST instead of FIN.
                    let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
                    // Wakes the other direction's reader without sending anything; the
                    // reset goes out when its thread drops the last handle.
                    let _ = s.shutdown(Shutdown::Read);
                } else {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            let counter = if cut.reset { &counts.reset } else { &counts.closed };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
}

/// Copies `from` to `to`, at most `limit` bytes if given. Returns true if it stopped
/// at the limit (the connection is to be cut), false at end of stream or an error
/// (after passing the end on, unless the connection is being `reset`).
fn forward(mut from: TcpStream, mut to: TcpStream, limit: Option<u64>, reset: &AtomicBool) -> bool {
    let mut buf = [0u8; 16 * 1024];
    let mut left = limit.unwrap_or(u64::MAX);
    loop {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match from.read(&mut buf[..want]) {
            Ok(0) | Err(_) => {
                if !reset.load(Ordering::SeqCst) {
                    let _ = to.shutdown(Shutdown::Write);
                }
                return false;
            }
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            let _ = from.shutdown(Shutdown::Read);
            return false;
        }
        left -= n as u64;
        if left == 0 {
            return true;
        }
    }
}
