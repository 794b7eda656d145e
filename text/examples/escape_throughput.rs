//! Prints how fast `write_escaped` escapes a few kinds of text, in MB/s of input:
//! `cargo run --release -p soquete-text --example escape_throughput`.
//!
//! Figures, not checks: each kind is escaped into a reused buffer for about 300 ms.
//! The rate is per second of this thread's CPU time (`/proc/thread-self/schedstat`,
//! where there is one), so that other work on the machine changes it little.

use std::hint::black_box;
use std::time::{Duration, Instant};

use soquete_text::write_escaped;

fn main() {
    let kinds: [(&str, String); 6] = [
        ("16 KiB of 'x'", "x".repeat(16 * 1024)),
        (
            "ASCII log line",
            "GET /index.html 200 1532 bytes in 0.8 ms from 10.0.0.7 ".repeat(64),
        ),
        (
            "Portuguese",
            "acentuação é comum em português, não há dúvida; ".repeat(64),
        ),
        ("Japanese", "日本語のテキストはほとんど三バイトの文字です。".repeat(64)),
        ("emoji and quotes", "“quoted” — ok 👍🏽 fine ✓ ".repeat(64)),
        ("controls and bidi", "a\u{1b}[1m\u{202e}b\u{200b}c\u{85}\\ ".repeat(64)),
    ];
    let mut out = Vec::with_capacity(1 << 16);
    for (name, text) in &kinds {
        let bytes = text.as_bytes();
        let start = Instant::now();
        let cpu_start = thread_cpu();
        let mut done = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            for _ in 0..100 {
                out.clear();
                write_escaped(&mut out, black_box(bytes)).expect("a Vec takes any write");
                black_box(&out);
                done += bytes.len() as u64;
            }
        }
        let secs = match (cpu_start, thread_cpu()) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => start.elapsed().as_secs_f64(),
        };
        let mb_s = done as f64 / secs / 1e6;
        println!("{name:<20} {:>6} bytes  {mb_s:>8.0} MB/s", bytes.len());
    }
}

/// CPU time of this thread so far, from the scheduler's statistics (nanoseconds).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}
