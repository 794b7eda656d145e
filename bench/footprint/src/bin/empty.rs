//! Baseline: the same skeleton as `client` with no session, so that
//! `client - empty` is the flash the core adds.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Entry point (the linker's default entry symbol).
#[no_mangle]
pub extern "C" fn _start() -> ! {
    let mut input = [0u8; 64];
    loop {
        input = black_box(input);
        black_box(&input);
    }
}
