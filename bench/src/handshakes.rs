//! Responder handshakes per second of CPU on one core (PROTOCOL.md §10.3): the
//! server's side of `Noise_IK_25519_ChaChaPoly_BLAKE2s` through the core's secure
//! layer (INIT read, client key reported, accepted, RESP written with early data), for
//! each X25519 a server can use:
//!
//! * `ladder`: the core's portable Montgomery ladder, four X25519 per handshake;
//! * `ladder+memo`: the same with the device's key remembered (`secure::Memo`), three;
//! * `fast`: AWS-LC's X25519 (`soquete_host::secure::Fast`), four;
//! * `fast+memo`: what `soquete server` runs (`soquete_host::secure::X25519`), three.
//!
//! As in `soquete server`, AWS-LC's parsed form of the server's static key is kept
//! (`Fast::keep`) for both `fast` rows.
//!
//! Every row also computes the server's ephemeral public key from the base point table
//! (`noise-tables`). Rates are per second of this thread's CPU time (Linux schedstat),
//! so that other load on the machine does not count; the rows take turns, five
//! rounds each, and the median round is shown. Bounded: `count` handshakes per round,
//! each round stops after 10 s.

use std::time::{Duration, Instant as StdInstant};

use soquete_core::secure::{Config, Curve, Event, Ladder, Memo, SecretKey, Secure};
use soquete_core::Instant;
use soquete_host::secure::{Fast, X25519};

const LIMIT: Duration = Duration::from_secs(10);
const BUF: usize = 2048;
const ROUNDS: usize = 5;

/// CPU time this thread has run, from /proc/thread-self/schedstat (first field, ns).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn seed(i: usize, tag: u8) -> [u8; 32] {
    let mut k = [tag; 32];
    for (dst, src) in k.iter_mut().zip((i as u64).to_le_bytes()) {
        *dst = src;
    }
    k
}

/// Measures and prints every row.
pub fn run(count: usize) -> anyhow::Result<()> {
    let server = SecretKey::from_bytes(seed(0, 0xa5));
    let device = SecretKey::from_bytes(seed(0, 0x5a));
    // INITs from distinct client ephemerals, made before any timing.
    let inits = (0..count)
        .map(|i| {
            let mut c = Secure::client(
                Config::DEFAULT,
                &device,
                server.public_key(),
                seed(i, 1),
                [0; BUF],
                [0; BUF],
                Instant::ZERO,
            )
            .map_err(|e| anyhow::anyhow!("client layer: {e}"))?;
            c.seal(b"hello").map_err(|e| anyhow::anyhow!("INIT: {e}"))?;
            Ok(c.poll_transmit().to_vec())
        })
        .collect::<anyhow::Result<Vec<Vec<u8>>>>()?;
    println!(
        "responder handshakes, {ROUNDS} rounds of {count} per row taking turns (median round), per second of this thread's CPU time:"
    );
    // As `soquete server` does: the device's key remembered, the server's kept parsed.
    X25519::remember(&server, &device.public_key());
    Fast::keep(&server);
    let mut rows: [(&str, Vec<Duration>); 4] = [
        ("ladder", Vec::new()),
        ("fast", Vec::new()),
        ("ladder+memo", Vec::new()),
        ("fast+memo", Vec::new()),
    ];
    for _ in 0..ROUNDS {
        // The first two rows use no memo: `Ladder` and `Fast` never look.
        rows[0].1.push(round::<Ladder>(&server, &inits)?);
        rows[1].1.push(round::<Fast>(&server, &inits)?);
        rows[2].1.push(round::<Memo<Ladder>>(&server, &inits)?);
        rows[3].1.push(round::<X25519>(&server, &inits)?);
    }
    Memo::retain(&server.public_key(), |_| false);
    for (label, mut each) in rows {
        each.sort();
        let mid = each.get(each.len() / 2).copied().unwrap_or_default().as_secs_f64();
        let (lo, hi) = (
            each.first().copied().unwrap_or_default(),
            each.last().copied().unwrap_or_default(),
        );
        println!(
            "  {label:<12} {:>7.1} us each  {:>6.0} per CPU second  (rounds {:.1}-{:.1} us)",
            mid * 1e6,
            1.0 / mid,
            lo.as_secs_f64() * 1e6,
            hi.as_secs_f64() * 1e6
        );
    }
    Ok(())
}

/// One round: every INIT answered by a server layer with curve `C`; CPU time per
/// handshake.
fn round<C: Curve>(server: &SecretKey, inits: &[Vec<u8>]) -> anyhow::Result<Duration> {
    let now = Instant::ZERO;
    let wall = StdInstant::now();
    let cpu0 = cpu_time();
    let mut done = 0u32;
    for (i, init) in inits.iter().enumerate() {
        let mut s = Secure::<[u8; BUF], [u8; BUF], C>::server_with(
            Config::DEFAULT,
            server,
            seed(i, 2),
            [0; BUF],
            [0; BUF],
            now,
        )
        .map_err(|e| anyhow::anyhow!("server layer: {e}"))?;
        s.handle_input(now, init).map_err(|e| anyhow::anyhow!("INIT: {e}"))?;
        anyhow::ensure!(matches!(s.poll_event(), Some(Event::ClientKey(_))), "no client key");
        s.accept().map_err(|e| anyhow::anyhow!("accept: {e}"))?;
        let plain = s.poll_plaintext().len();
        s.advance_plaintext(plain)
            .map_err(|e| anyhow::anyhow!("plaintext: {e}"))?;
        s.seal(b"welcome").map_err(|e| anyhow::anyhow!("RESP: {e}"))?;
        anyhow::ensure!(!s.poll_transmit().is_empty(), "no RESP");
        done += 1;
        if wall.elapsed() > LIMIT {
            break;
        }
    }
    let cpu = match (cpu0, cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall.elapsed(),
    };
    Ok(cpu / done.max(1))
}
