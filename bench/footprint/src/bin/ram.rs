//! RAM probe: `SESSION_RAM` is exactly as long as one session on this target, so
//! `llvm-nm --print-size` reads `size_of::<Session<[u8; RX], [u8; TX]>>()` from the ELF.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

use soquete_core::{Config, Session};

const RX: usize = Session::<[u8; 1], [u8; 1]>::min_rx_len(Config::DEFAULT.max_message);
const TX: usize = RX;

/// Its size is the probe; its contents do not matter.
#[no_mangle]
#[used]
pub static SESSION_RAM: [u8; core::mem::size_of::<Session<[u8; RX], [u8; TX]>>()] =
    [0; core::mem::size_of::<Session<[u8; RX], [u8; TX]>>()];

/// Buffer capacity of that session (rx + tx), for comparison.
#[no_mangle]
#[used]
pub static SESSION_CAPACITY: [u8; RX + TX] = [0; RX + TX];

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Entry point (the linker's default entry symbol).
#[no_mangle]
pub extern "C" fn _start() -> ! {
    loop {
        black_box(&SESSION_RAM);
        black_box(&SESSION_CAPACITY);
    }
}
