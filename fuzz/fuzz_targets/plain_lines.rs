//! Plain-text line splitter and foreign-protocol detection: lines found are exactly
//! the input's `\n`-separated pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soquete_core::wire::plain::{detect_foreign, split_line};

fuzz_target!(|data: &[u8]| {
    let _ = detect_foreign(data, split_line(data).map(|(l, _)| l));
    let mut rest = data;
    let mut rebuilt = Vec::with_capacity(data.len());
    while let Some((line, used)) = split_line(rest) {
        assert!(used > line.len() && used <= line.len() + 2);
        assert!(!line.contains(&b'\n'));
        rebuilt.extend_from_slice(&rest[..used]);
        rest = &rest[used..];
    }
    assert!(!rest.contains(&b'\n'));
    rebuilt.extend_from_slice(rest);
    assert_eq!(rebuilt, data);
});
