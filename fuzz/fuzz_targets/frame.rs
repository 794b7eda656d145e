//! Frame decoder: any bytes either fail to parse or parse to a frame that emits back
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soquete_core::wire::{Frame, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::new_checked(data) else { return };
    let Ok(repr) = Repr::parse(&frame) else { return };
    let mut out = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut out).expect("a parsed frame emits");
    // HELLO/WELCOME flags are not all kept (reserved bits), so compare by re-parsing.
    let again = Frame::new_checked(&out[..n]).expect("emitted frame is whole");
    assert_eq!(Repr::parse(&again).expect("emitted frame parses"), repr);
    assert_eq!(n, frame.total_len());
});
