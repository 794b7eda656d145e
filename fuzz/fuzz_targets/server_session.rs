//! A server session fed arbitrary bytes in arbitrary chunks, with time moving on, its
//! application sending messages and (with explicit acknowledgement) confirming late.
//! It must never panic or loop, and it must keep the protocol's promises: nothing
//! acknowledged that did not completely leave, delivered sequence numbers consecutive,
//! `poll_transmit` never stuck empty while something waits, buffers bounded.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{chunk, Checker};
use libfuzzer_sys::fuzz_target;
use soquete_core::{Config, Duration, Event, Instant, Session};

const CFG: Config = Config {
    max_message: 256,
    line_gap: Duration::from_millis(5),
    ..Config::DEFAULT
};
const RX: usize = 300;

fuzz_target!(|data: &[u8]| {
    // First bytes: chunk sizes, time steps and what the application does; the rest
    // is the stream.
    let (plan, stream) = data.split_at(data.len().min(8));
    let plan: Vec<u8> = if plan.is_empty() { vec![16] } else { plan.to_vec() };
    let window = u32::from(plan[0] % 4);
    let mut now = Instant::from_millis(1);
    let mut s = Session::server(CFG, [0u8; RX], [0u8; 512], now).expect("valid buffers");
    if window > 0 {
        s.set_explicit_ack(window);
    }
    let mut check = Checker::default();
    let mut taken = 0u64;
    let mut rest = stream;
    for (i, step) in plan.iter().cycle().enumerate().take(4096) {
        let want = (usize::from(*step) % 64 + 1).min(rest.len());
        let took = s.handle_input(now, &rest[..want]);
        rest = &rest[took..];
        let mut events = 0;
        while let Some(e) = s.poll_event(now) {
            events += 1;
            assert!(events < 4096, "event storm");
            check.event(&e);
            match e {
                Event::Hello { .. } => {
                    let _ = s.accept(1, None);
                }
                Event::Message { seq, .. } => taken = seq,
                _ => {}
            }
        }
        if i % 2 == 0 {
            let _ = s.send(&[*step; 3]);
        }
        if window > 0 && step % 3 == 0 {
            s.confirm(taken).expect("the last message taken can be confirmed");
        }
        check.transmit(&mut s, chunk(&plan, i));
        check.bounded(&s, RX, window);
        if i % 3 == 0 {
            now = now + Duration::from_millis(u64::from(*step));
            s.handle_timeout(now);
        }
        if rest.is_empty() {
            s.handle_eof(now);
            if window > 0 {
                let _ = s.confirm(taken);
            }
            while let Some(e) = s.poll_event(now) {
                check.event(&e);
                if let Event::Message { seq, .. } = e {
                    taken = seq;
                }
                let _ = s.confirm(taken);
            }
            check.transmit(&mut s, usize::MAX);
            break;
        }
        if s.is_closed() {
            break;
        }
    }
});
