//! A server session fed arbitrary bytes in arbitrary chunks, with time moving on:
//! it must never panic, never loop, and never emit more than it is given room for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soquete_core::{Config, Duration, Event, Instant, Session};

const CFG: Config = Config {
    max_message: 256,
    line_gap: Duration::from_millis(5),
    ..Config::DEFAULT
};

fuzz_target!(|data: &[u8]| {
    // First bytes: chunk sizes and time steps; the rest is the stream.
    let (plan, stream) = data.split_at(data.len().min(8));
    let plan: Vec<u8> = if plan.is_empty() { vec![16] } else { plan.to_vec() };
    let mut now = Instant::from_millis(1);
    let mut s = Session::server(CFG, [0u8; 300], [0u8; 512], now).expect("valid buffers");
    let mut rest = stream;
    for (i, step) in plan.iter().cycle().enumerate().take(4096) {
        let want = (usize::from(*step) % 64 + 1).min(rest.len());
        let took = s.handle_input(now, &rest[..want]);
        rest = &rest[took..];
        let mut events = 0;
        while let Some(e) = s.poll_event(now) {
            events += 1;
            assert!(events < 4096, "event storm");
            if let Event::Hello { .. } = e {
                let _ = s.accept(1, None);
            }
        }
        let mut out = 0usize;
        loop {
            let n = s.poll_transmit().len();
            if n == 0 {
                break;
            }
            out += n;
            assert!(out < 1 << 16, "unbounded output");
            s.advance_transmit(n);
        }
        if i % 3 == 0 {
            now = now + Duration::from_millis(u64::from(*step));
            s.handle_timeout(now);
        }
        if rest.is_empty() {
            s.handle_eof(now);
            while s.poll_event(now).is_some() {}
            break;
        }
        if s.is_closed() {
            break;
        }
    }
});
