//! A client session facing a hostile server: WELCOME, ACKs, PINGs, PONGs, MSGs and
//! CLOSE in any order and split anywhere, with time moving on and messages of its
//! own in flight. It must never panic or loop, and it must keep the protocol's
//! promises: nothing acknowledged that did not completely leave (the bug of a
//! premature ACK), delivered sequence numbers consecutive, `poll_transmit` never
//! stuck empty while something waits, buffers bounded.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{chunk, Checker};
use libfuzzer_sys::fuzz_target;
use soquete_core::{Config, Duration, Instant, Session};

const CFG: Config = Config {
    max_message: 256,
    idle_timeout: Duration::from_millis(900),
    ..Config::DEFAULT
};
const RX: usize = 300;

fuzz_target!(|data: &[u8]| {
    // First bytes: chunk sizes, time steps and when the application sends; the rest
    // is what the server says.
    let (plan, stream) = data.split_at(data.len().min(8));
    let plan: Vec<u8> = if plan.is_empty() { vec![16] } else { plan.to_vec() };
    let mut now = Instant::from_millis(1);
    let mut s = Session::client(CFG, "fz", [0u8; RX], [0u8; 256], now).expect("valid buffers");
    let mut check = Checker::default();
    let mut rest = stream;
    for (i, step) in plan.iter().cycle().enumerate().take(4096) {
        // The application sends before and between the server's bytes, so that ACKs
        // can arrive for MSGs queued, half written, or written.
        if step % 2 == 0 {
            let _ = s.send(&[*step; 5]);
        }
        check.transmit(&mut s, chunk(&plan, i));
        let want = (usize::from(*step) % 64 + 1).min(rest.len());
        let took = s.handle_input(now, &rest[..want]);
        rest = &rest[took..];
        let mut events = 0;
        while let Some(e) = s.poll_event(now) {
            events += 1;
            assert!(events < 4096, "event storm");
            check.event(&e);
        }
        check.bounded(&s, RX, 0);
        if i % 3 == 0 {
            now = now + Duration::from_millis(u64::from(*step));
            s.handle_timeout(now);
        }
        if rest.is_empty() {
            s.handle_eof(now);
            while let Some(e) = s.poll_event(now) {
                check.event(&e);
            }
            check.transmit(&mut s, usize::MAX);
            break;
        }
        if s.is_closed() {
            check.transmit(&mut s, usize::MAX);
            break;
        }
    }
});
