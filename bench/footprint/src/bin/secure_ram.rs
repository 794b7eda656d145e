//! RAM probe of the secure layer: `SECURE_RAM` is exactly as long as one
//! `Secure<[u8; 512], [u8; 512]>` on this target (handshake or transport state, the
//! larger, plus its buffers), read from the ELF by `llvm-nm --print-size`.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

use soquete_core::secure::Secure;

const SECURE_BUF: usize = 512;

/// Its size is the probe; its contents do not matter.
#[no_mangle]
#[used]
pub static SECURE_RAM: [u8; core::mem::size_of::<Secure<[u8; SECURE_BUF], [u8; SECURE_BUF]>>()] =
    [0; core::mem::size_of::<Secure<[u8; SECURE_BUF], [u8; SECURE_BUF]>>()];

/// Buffer capacity of that layer (rx + tx), for comparison.
#[no_mangle]
#[used]
pub static SECURE_CAPACITY: [u8; 2 * SECURE_BUF] = [0; 2 * SECURE_BUF];

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
        black_box(&SECURE_RAM);
        black_box(&SECURE_CAPACITY);
    }
}
