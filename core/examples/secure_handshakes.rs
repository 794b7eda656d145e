//! Host CPU cost of the secure handshake (PROTOCOL.md §10.3) on one core: how many
//! responder handshakes (INIT read, client key reported, RESP written: four X25519)
//! per second a server can do, and the record throughput of the transport.
//!
//!   cargo run --release -p soquete-core --features noise --example secure_handshakes
//!   cargo run --release -p soquete-core --features noise-tables --example secure_handshakes
//!
//! (`noise-tables`: the ephemeral public key from the precomputed base point table.)
//!
//! The rates are per second of this thread's CPU time (Linux schedstat), so that other
//! load on the machine does not count; wall-clock time is printed beside them.
//!
//! Bounded: at most `HANDSHAKES` handshakes and `RECORDS` records, each loop stops
//! after 10 s.

use std::time::{Duration, Instant as StdInstant};

use soquete_core::secure::{Config, Event, SecretKey, Secure};
use soquete_core::Instant;

const HANDSHAKES: usize = 4000;
const RECORDS: usize = 200_000;
const LIMIT: Duration = Duration::from_secs(10);

type Layer = Secure<[u8; 2048], [u8; 2048]>;

/// CPU time this thread has run, from /proc/thread-self/schedstat (first field, ns).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// CPU time since `cpu0` (wall time where schedstat is not available).
fn spent(cpu0: Option<Duration>, wall0: StdInstant) -> Duration {
    match (cpu0, cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall0.elapsed(),
    }
}

fn seed(i: usize, tag: u8) -> [u8; 32] {
    let mut k = [tag; 32];
    k[..8].copy_from_slice(&(i as u64).to_le_bytes());
    k
}

fn main() {
    let now = Instant::ZERO;
    let server_key = SecretKey::from_bytes(seed(0, 0xa5));
    let client_key = SecretKey::from_bytes(seed(0, 0x5a));
    let hello = [0x42u8; 39];
    let welcome = [0x24u8; 35];

    // One X25519 (a public key from a secret), for comparison.
    let start = StdInstant::now();
    let cpu0 = cpu_time();
    let mut sink = 0u8;
    for i in 0..HANDSHAKES {
        sink ^= SecretKey::from_bytes(seed(i, 9)).public_key().as_bytes()[0];
    }
    let cpu = spent(cpu0, start);
    println!(
        "X25519: {:.1} us each ({HANDSHAKES} in {:.3} s CPU; {sink})",
        cpu.as_secs_f64() * 1e6 / HANDSHAKES as f64,
        cpu.as_secs_f64()
    );

    // INITs from distinct client ephemerals, made outside the timed loop.
    let inits: Vec<Vec<u8>> = (0..HANDSHAKES)
        .map(|i| {
            let mut c = Layer::client(
                Config::DEFAULT,
                &client_key,
                server_key.public_key(),
                seed(i, 1),
                [0; 2048],
                [0; 2048],
                now,
            )
            .expect("buffers");
            c.seal(&hello).expect("init");
            c.poll_transmit().to_vec()
        })
        .collect();

    let start = StdInstant::now();
    let cpu0 = cpu_time();
    let mut done = 0;
    for (i, init) in inits.iter().enumerate() {
        let mut s =
            Layer::server(Config::DEFAULT, &server_key, seed(i, 2), [0; 2048], [0; 2048], now).expect("buffers");
        s.handle_input(now, init).expect("init");
        assert!(matches!(s.poll_event(), Some(Event::ClientKey(_))));
        s.accept().expect("accept");
        let plain = s.poll_plaintext().len();
        s.advance_plaintext(plain).expect("plaintext");
        s.seal(&welcome).expect("resp");
        assert!(!s.poll_transmit().is_empty());
        done += 1;
        if start.elapsed() > LIMIT {
            break;
        }
    }
    let cpu = spent(cpu0, start);
    let wall = start.elapsed();
    println!(
        "responder handshakes: {done} in {:.3} s CPU ({:.3} s wall) = {:.0} per CPU second on one core, {:.1} us each (target >= 3,000/s)",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        done as f64 / cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / done as f64
    );

    // Records: 1 KiB plaintext sealed by one side and opened by the other.
    let mut c = Layer::client(
        Config::DEFAULT,
        &client_key,
        server_key.public_key(),
        seed(1, 3),
        [0; 2048],
        [0; 2048],
        now,
    )
    .expect("buffers");
    let mut s = Layer::server(Config::DEFAULT, &server_key, seed(1, 4), [0; 2048], [0; 2048], now).expect("buffers");
    c.seal(&hello).expect("init");
    let init = c.poll_transmit().to_vec();
    c.advance_transmit(init.len());
    s.handle_input(now, &init).expect("init");
    s.poll_event();
    s.accept().expect("accept");
    let n = s.poll_plaintext().len();
    s.advance_plaintext(n).expect("plaintext");
    s.seal(&welcome).expect("resp");
    let resp = s.poll_transmit().to_vec();
    s.advance_transmit(resp.len());
    c.handle_input(now, &resp).expect("resp");
    let n = c.poll_plaintext().len();
    c.advance_plaintext(n).expect("plaintext");
    let payload = [0x33u8; 1024];
    let start = StdInstant::now();
    let cpu0 = cpu_time();
    let mut records = 0;
    let mut bytes = 0usize;
    while records < RECORDS && start.elapsed() < LIMIT {
        let sent = c.seal(&payload).expect("seal");
        let wire = c.poll_transmit().to_vec();
        c.advance_transmit(wire.len());
        s.handle_input(now, &wire).expect("record");
        let got = s.poll_plaintext().len();
        s.advance_plaintext(got).expect("plaintext");
        assert!(sent == payload.len() || records == 0);
        bytes += got;
        records += 1;
    }
    let secs = spent(cpu0, start).as_secs_f64();
    println!(
        "records: {records} of 1 KiB sealed and opened in {secs:.3} s CPU = {:.0} MB/s of plaintext per CPU second",
        bytes as f64 / secs / 1e6
    );
}
