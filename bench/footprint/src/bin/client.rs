//! A minimal firmware use of the core: a client session over some transport, sending
//! messages and handling input, timers and output. Inputs come through `black_box` so
//! that nothing is folded away.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

use soquete_core::{Code, Config, Instant, Session};

/// Receive capacity for `Config::DEFAULT` (1 KiB messages).
const RX: usize = Session::<[u8; 1], [u8; 1]>::min_rx_len(Config::DEFAULT.max_message);
/// Transmit capacity: one maximum message.
const TX: usize = RX;

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// With the `logger` feature: a logger that formats every record (into nowhere), as a
/// firmware logging over RTT or a UART would.
#[cfg(feature = "logger")]
mod logger {
    use core::fmt::{self, Write};
    use core::hint::black_box;

    pub struct Sink;

    impl log::Log for Sink {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, record: &log::Record<'_>) {
            struct Out;
            impl Write for Out {
                fn write_str(&mut self, s: &str) -> fmt::Result {
                    black_box(s);
                    Ok(())
                }
            }
            let _ = fmt::write(&mut Out, *record.args());
        }

        fn flush(&self) {}
    }

    pub static SINK: Sink = Sink;
}

/// Entry point (the linker's default entry symbol).
#[no_mangle]
pub extern "C" fn _start() -> ! {
    #[cfg(feature = "logger")]
    {
        let _ = log::set_logger(&logger::SINK);
        log::set_max_level(log::LevelFilter::Trace);
    }
    let mut now = black_box(0u64);
    let Ok(mut session) = Session::client(
        black_box(Config::DEFAULT),
        black_box("fw"),
        [0u8; RX],
        [0u8; TX],
        Instant::from_millis(now),
    ) else {
        loop {
            core::hint::spin_loop();
        }
    };
    loop {
        now = now.wrapping_add(black_box(1));
        let t = Instant::from_millis(now);
        // Received bytes, as a transport driver would copy them in.
        let input = black_box([0u8; 64]);
        let n = black_box(input.len());
        let buf = session.input_buffer();
        let n = n.min(buf.len()).min(input.len());
        buf[..n].copy_from_slice(&input[..n]);
        session.advance_input(t, n);
        while let Some(event) = session.poll_event(t) {
            black_box(event);
        }
        if session.is_open() {
            black_box(session.send(black_box(b"temperature=21.5")).ok());
        }
        let out = session.poll_transmit();
        let sent = black_box(out).len();
        session.advance_transmit(black_box(sent));
        if session.poll_timeout().is_some_and(|d| d <= t) {
            session.handle_timeout(t);
        }
        if black_box(false) {
            session.close(t, Code::Normal);
        }
        if session.is_finished() {
            black_box(session.reconnect(t).ok());
        }
    }
}
