//! The `client` firmware over the secure layer (PROTOCOL.md §10): the same session,
//! its bytes sealed into records and its input decrypted, with a device key and the
//! server's public key. `secure_client - client` is the flash the secure layer adds.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

use soquete_core::secure::{self, PublicKey, SecretKey, Secure};
use soquete_core::{Code, Config, Instant, Session};

/// Receive capacity for `Config::DEFAULT` (1 KiB messages).
const RX: usize = Session::<[u8; 1], [u8; 1]>::min_rx_len(Config::DEFAULT.max_message);
/// Transmit capacity: one maximum message.
const TX: usize = RX;
/// The secure layer's buffers: one record each way (a session frame longer than a
/// record is split over several).
const SECURE_BUF: usize = 512;

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Entry point (the linker's default entry symbol).
#[no_mangle]
pub extern "C" fn _start() -> ! {
    let mut now = black_box(0u64);
    // From flash and a hardware TRNG in a real firmware.
    let device = SecretKey::from_bytes(black_box([1u8; 32]));
    let server = PublicKey::from_bytes(black_box([2u8; 32]));
    let Ok(mut session) = Session::client(
        black_box(Config::DEFAULT),
        black_box("fw"),
        [0u8; RX],
        [0u8; TX],
        Instant::from_millis(now),
    ) else {
        halt()
    };
    let Ok(mut layer) = Secure::client(
        secure::Config::DEFAULT,
        &device,
        server,
        black_box([3u8; 32]),
        [0u8; SECURE_BUF],
        [0u8; SECURE_BUF],
        Instant::from_millis(now),
    ) else {
        halt()
    };
    loop {
        now = now.wrapping_add(black_box(1));
        let t = Instant::from_millis(now);
        // Received ciphertext, as a transport driver would hand it over.
        let input = black_box([0u8; 64]);
        let n = black_box(input.len()).min(input.len());
        if layer.handle_input(t, &input[..n]).is_err() || layer.deliver(t, &mut session).is_err() {
            black_box(layer.error());
        }
        while let Some(event) = layer.poll_event() {
            black_box(event);
        }
        while let Some(event) = session.poll_event(t) {
            black_box(event);
        }
        if session.is_open() {
            black_box(session.send(black_box(b"temperature=21.5")).ok());
        }
        black_box(layer.seal_from(&mut session).ok());
        let out = layer.poll_transmit();
        let sent = black_box(out).len();
        layer.advance_transmit(black_box(sent));
        if session.poll_timeout().is_some_and(|d| d <= t) {
            session.handle_timeout(t);
        }
        if layer.poll_timeout().is_some_and(|d| d <= t) {
            layer.handle_timeout(t);
        }
        if black_box(false) {
            session.close(t, Code::Normal);
        }
        if session.is_finished() || layer.is_finished() {
            black_box(session.reconnect(t).ok());
        }
    }
}
