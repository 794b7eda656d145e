//! The loopback demo end to end: servers and clients in one process over smoltcp,
//! every message checked by content, counted, and acknowledged.

use std::io;
use std::process::Command;
use std::time::Duration;

use smoltcp::phy::Medium;
use soquete_smoltcp_demo::link::Faults;
use soquete_smoltcp_demo::loopback::{run, Config, Stop, Summary};

fn config(clients: u32, messages: u64, size: usize) -> Config {
    Config {
        clients,
        messages,
        size,
        quiet: true,
        ..Config::default()
    }
}

fn assert_exact(summary: &Summary) {
    let expected = summary.expected();
    assert_eq!(summary.sent, expected, "{summary}");
    assert_eq!(summary.delivered, expected, "{summary}");
    assert_eq!(summary.acked, expected, "{summary}");
    assert_eq!(summary.bad, 0, "{summary}");
    assert_eq!(summary.sessions, 2 * summary.clients as usize, "{summary}");
    assert_eq!(summary.clean, summary.sessions, "{summary}");
    assert_eq!(summary.stop, None, "{summary}");
    assert!(summary.is_ok(), "{summary}");
}

#[test]
fn every_message_arrives_once_in_order_and_is_acknowledged() {
    let summary = run(&config(4, 1000, 32), io::sink()).unwrap();
    assert_exact(&summary);
    assert_eq!(summary.bytes, 4 * 1000 * 32);
}

#[test]
fn large_socket_buffers_and_the_raw_link_carry_every_message() {
    for (socket_buffers, raw_link) in [(65536, false), (4096, true), (65536, true)] {
        let summary = run(
            &Config {
                socket_buffers,
                raw_link,
                medium: Medium::Ethernet,
                ..config(2, 2000, 1000)
            },
            io::sink(),
        )
        .unwrap();
        assert_exact(&summary);
        assert_eq!(summary.bytes, 2 * 2000 * 1000);
    }
}

#[test]
fn only_the_two_socket_buffer_sizes_and_no_corruption_on_a_raw_link() {
    let odd = Config {
        socket_buffers: 5000,
        ..config(1, 1, 32)
    };
    assert!(run(&odd, io::sink()).is_err());
    let corrupting = Config {
        raw_link: true,
        faults: Faults {
            corrupt_chance: 1,
            ..Faults::default()
        },
        ..config(1, 1, 32)
    };
    assert!(run(&corrupting, io::sink()).is_err());
}

#[test]
fn server_prints_what_soquete_server_prints() {
    let mut out = Vec::new();
    let summary = run(
        &Config {
            quiet: false,
            ..config(2, 3, 24)
        },
        &mut out,
    )
    .unwrap();
    assert_exact(&summary);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "listening on 127.0.0.1:8800");
    assert!(
        lines.contains(&"#1 127.0.0.1:49152 connected as \"client-0\""),
        "{text}"
    );
    assert!(
        lines.contains(&"#2 127.0.0.1:49153: client 1 message 2 cdefg"),
        "{text}"
    );
    assert!(
        lines.contains(&"#1 127.0.0.1:49152 left (closed by peer: normal close) after 3 messages"),
        "{text}"
    );
    assert_eq!(lines.iter().filter(|l| l.contains(": client ")).count(), 6, "{text}");
}

#[test]
fn lossy_corrupting_link_still_delivers_exactly_once() {
    for seed in [1, 7] {
        let cfg = Config {
            faults: Faults {
                drop_chance: 10,
                corrupt_chance: 1,
                seed,
                ..Faults::default()
            },
            ..config(4, 500, 64)
        };
        let summary = run(&cfg, io::sink()).unwrap();
        assert_exact(&summary);
        // Retransmissions took (virtual) time; the run did not take it for real.
        assert!(summary.virtual_time > Duration::from_secs(1), "{summary}");
    }
}

#[test]
fn ethernet_medium_and_large_messages() {
    let cfg = Config {
        medium: Medium::Ethernet,
        faults: Faults {
            drop_chance: 5,
            corrupt_chance: 5,
            seed: 3,
            ..Faults::default()
        },
        ..config(3, 200, 1024)
    };
    assert_exact(&run(&cfg, io::sink()).unwrap());
}

#[test]
fn a_link_that_drops_everything_fails_within_the_time_limit() {
    // Segments of 500-byte messages exceed the size limit: nothing gets through.
    let cfg = Config {
        faults: Faults {
            size_limit: 200,
            ..Faults::default()
        },
        time_limit: Duration::from_secs(100),
        ..config(1, 10, 500)
    };
    let summary = run(&cfg, io::sink()).unwrap();
    assert_eq!(summary.stop, Some(Stop::TimeLimit), "{summary}");
    assert_eq!(summary.delivered, 0);
    assert!(!summary.is_ok());
    assert!(summary.problems()[0].contains("time limit"), "{summary}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let cfg = Config {
        faults: Faults {
            drop_chance: 10,
            corrupt_chance: 1,
            seed: 42,
            ..Faults::default()
        },
        ..config(2, 200, 32)
    };
    let a = run(&cfg, io::sink()).unwrap();
    let b = run(&cfg, io::sink()).unwrap();
    assert_eq!(a.virtual_time, b.virtual_time);
    assert_eq!(a.wire_bytes, b.wire_bytes);
}

#[test]
fn binary_exits_zero_on_success_and_non_zero_on_failure() {
    let bin = env!("CARGO_BIN_EXE_soquete-smoltcp-demo");
    let ok = Command::new(bin)
        .args([
            "--clients",
            "2",
            "--messages",
            "50",
            "--drop-chance",
            "10",
            "--corrupt-chance",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(stdout.starts_with("RAM per connection: session "), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": client ")).count(),
        100,
        "{stdout}"
    );
    assert!(stdout.contains("result:       OK"), "{stdout}");

    let failed = Command::new(bin)
        .args(["--quiet", "--messages", "5", "--size", "500", "--size-limit", "200"])
        .args(["--time-limit", "20s"])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("FAILED: virtual time limit exceeded"));
}
