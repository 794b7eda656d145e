//! The secure layer (PROTOCOL.md §10) fed arbitrary bytes in arbitrary chunks, as a
//! server (first byte even) or as a client (odd), with the spec's keys (§10.8) so that
//! the seeds decrypt: it must never panic, never loop, never release unauthenticated
//! plaintext past a failure, and never emit more than it is given room for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soquete_core::secure::{Alert, Config, Event, SecretKey, Secure};
use soquete_core::{Duration, Instant};

fn key(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

fn seq32(first: u8) -> [u8; 32] {
    core::array::from_fn(|i| first + i as u8)
}

/// Magic + HELLO "ana" (§6.2): the client's early data in the vectors.
const HELLO_ANA: [u8; 39] = [
    0xfe, 0x53, 0x51, 0x54, 0x01, 0, 0, 0, 0x1e, 0x01, 0, 0, 0x01, 0, 0, 0, 0, 0x75, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0x03, 0x61, 0x6e, 0x61,
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (plan, stream) = rest.split_at(rest.len().min(8));
    let plan: Vec<u8> = if plan.is_empty() { vec![64] } else { plan.to_vec() };
    let server_secret = SecretKey::from_bytes(key("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
    let client_secret = SecretKey::from_bytes(key("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
    let mut now = Instant::from_millis(1);
    let mut layer = if mode & 1 == 0 {
        Secure::server(
            Config::DEFAULT,
            &server_secret,
            seq32(0x40),
            [0u8; 2048],
            [0u8; 2048],
            now,
        )
    } else {
        Secure::client(
            Config::DEFAULT,
            &client_secret,
            server_secret.public_key(),
            seq32(0x20),
            [0u8; 2048],
            [0u8; 2048],
            now,
        )
    }
    .expect("valid buffers");
    if mode & 1 == 1 {
        assert_eq!(layer.seal(&HELLO_ANA), Ok(HELLO_ANA.len()));
    }
    let mut rest = stream;
    let mut plaintext = 0usize;
    for (i, step) in plan.iter().cycle().enumerate().take(4096) {
        let want = (usize::from(*step) % 97 + 1).min(rest.len());
        let took = match layer.handle_input(now, &rest[..want]) {
            Ok(n) => n,
            Err(_) => break,
        };
        rest = &rest[took..];
        while let Some(e) = layer.poll_event() {
            if let Event::ClientKey(_) = e {
                if mode & 2 == 0 {
                    layer.accept().expect("a key is waiting");
                } else {
                    layer.refuse(Alert::UnknownKey).expect("a key is waiting");
                }
            }
        }
        loop {
            let n = layer.poll_plaintext().len();
            if n == 0 {
                break;
            }
            plaintext += n;
            assert!(plaintext <= data.len(), "more plaintext than input");
            if layer.advance_plaintext(n).is_err() {
                break;
            }
        }
        // Answer with a few bytes, as a session would.
        let _ = layer.seal(b"\xfe\x53\x51\x54 answer");
        let out = layer.poll_transmit().len();
        assert!(out <= 2048, "unbounded output");
        layer.advance_transmit(out);
        if i % 5 == 4 {
            now = now + Duration::from_millis(u64::from(*step) * 40);
            layer.handle_timeout(now);
        }
        if layer.error().is_some() {
            assert!(layer.poll_plaintext().is_empty(), "plaintext after a failure");
            break;
        }
        if rest.is_empty() {
            let _ = layer.handle_eof(now);
            break;
        }
        if took == 0 && want > 0 {
            // rx full with nothing to release would be a stall.
            assert!(layer.poll_plaintext().is_empty());
        }
    }
});
