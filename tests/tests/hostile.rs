//! Broken and hostile clients against the server (in-process; the real binary where
//! its memory is measured), each beside a well-behaved client whose messages must
//! keep flowing: a client that never reads, a half-closed socket, a reset in the
//! middle of a frame, a flood of empty messages, bad sequence numbers, an unsupported
//! version, a too-long line, garbage.
//!
//! Readiness is a printed line or a socket read; every wait is bounded.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use socket2::SockRef;
use soquete_core::Closure;
use soquete_tests::{messages_of, plain, read_to_eof, BinClient, Server, WAIT};

/// A MSG frame (PROTOCOL.md §3.4).
fn msg(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x10];
    f.extend_from_slice(&u32::try_from(8 + payload.len()).unwrap().to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The server's resident memory, in KiB (Linux).
fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("read /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A calm client sends `n` messages and closes; all must arrive in order.
fn calm_round(server: &mut Server, name: &str, n: usize) {
    let mut calm = BinClient::connect(server.addr, name);
    let id = server.named_session(name);
    for j in 0..n {
        calm.send(format!("{name} {j}").as_bytes());
    }
    calm.wait("the acknowledgements", |c| c.acked == n as u64);
    calm.close();
    let left = server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left ("));
    assert!(left.ends_with(&format!("after {n} messages")), "{left}");
}

#[test]
fn client_that_never_reads_costs_bounded_memory_and_delays_nobody() {
    const MESSAGES: u64 = 400_000;
    let mut server = Server::start(&[]);
    let mut deaf = BinClient::connect(server.addr, "deaf");
    let id = server.named_session("deaf");
    let rss_before = rss_kib(&server);

    // 400 000 messages (about 13 MB) written without reading a byte. Were an
    // acknowledgement queued per message, that would be over 5 MB on the server.
    let mut stream = deaf.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for seq in 1..=MESSAGES {
            batch.extend(msg(seq, b"never reads me 0123"));
            if batch.len() > 64 * 1024 {
                stream.write_all(&batch).unwrap();
                batch.clear();
            }
        }
        stream.write_all(&batch).unwrap();
    });
    calm_round(&mut server, "calm", 100);
    writer.join().expect("the server took every byte");
    let mut printed = messages_of(&server.seen, &id).len();
    while printed < MESSAGES as usize {
        let line = server
            .next_line(WAIT)
            .unwrap_or_else(|| panic!("only {printed} of {MESSAGES} messages printed"));
        printed += usize::from(line.starts_with(&format!("{id} ")) && line.contains(": never reads me"));
    }
    let rss_after = rss_kib(&server);
    eprintln!("server RSS {rss_before} KiB before, {rss_after} KiB after {MESSAGES} unread-acknowledged messages");
    assert!(
        rss_after < rss_before + 2 * 1024,
        "server memory grew from {rss_before} to {rss_after} KiB"
    );
    // The deaf client reads at last: cumulative acknowledgements, the last covering
    // everything, and nothing else.
    let mut acks = Vec::new();
    let mut pending = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while acks.last() != Some(&MESSAGES) {
        assert!(
            std::time::Instant::now() < deadline,
            "acknowledgements so far: {acks:?}"
        );
        let mut buf = [0u8; 4096];
        match deaf.stream.read(&mut buf) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
        while pending.len() >= 13 {
            assert_eq!(&pending[..5], &[0x11, 0, 0, 0, 8], "only ACK frames");
            acks.push(u64::from_be_bytes(pending[5..13].try_into().unwrap()));
            pending.drain(..13);
        }
    }
    eprintln!(
        "{} ACK frames ({} bytes) for {MESSAGES} messages",
        acks.len(),
        acks.len() * 13
    );
    assert!(acks.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn half_closed_client_gets_its_acknowledgements_and_a_clean_end() {
    let mut server = Server::in_process(&[]);
    let mut half = BinClient::connect(server.addr, "half");
    let id = server.named_session("half");
    for j in 0..10 {
        half.send(format!("h{j}").as_bytes());
    }
    half.flush();
    half.stream.shutdown(Shutdown::Write).unwrap();
    // It still reads: everything printed is acknowledged, then the server closes.
    half.wait("the end", |c| c.closed.is_some());
    assert_eq!(half.acked, 10, "acknowledgements reach a half-closed client");
    assert_eq!(half.closed, Some(Closure::Eof));
    let lost = server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" lost ("));
    assert!(lost.contains("(connection closed by peer) after 10 messages"), "{lost}");
    calm_round(&mut server, "calm", 10);
}

#[test]
fn reset_in_the_middle_of_a_frame_shows_only_whole_messages() {
    let mut server = Server::in_process(&[]);
    let mut r = BinClient::connect(server.addr, "resetter");
    let id = server.named_session("resetter");
    for j in 0..3 {
        r.send(format!("r{j}").as_bytes());
    }
    r.wait("the acknowledgements", |c| c.acked == 3);
    let frame = msg(4, b"this message never completes");
    r.stream.write_all(&frame[..frame.len() / 2]).unwrap();
    SockRef::from(&r.stream).set_linger(Some(Duration::ZERO)).unwrap();
    drop(r);
    let lost = server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" lost ("));
    assert!(lost.contains("after 3 messages"), "{lost}");
    assert!(!server.seen.iter().any(|l| l.contains("never completes")));
    calm_round(&mut server, "calm", 10);
}

#[test]
fn flood_of_empty_and_tiny_messages_is_shown_and_acknowledged() {
    const MESSAGES: u64 = 50_000;
    let mut server = Server::in_process(&[]);
    let flood = BinClient::connect(server.addr, "flood");
    let id = server.named_session("flood");
    let mut batch = Vec::new();
    for seq in 1..=MESSAGES {
        let payload: &[u8] = if seq % 2 == 0 { b"" } else { b"." };
        batch.extend(msg(seq, payload));
    }
    let mut stream = flood.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || stream.write_all(&batch).unwrap());
    calm_round(&mut server, "calm", 100);
    writer.join().unwrap();
    let mut printed = messages_of(&server.seen, &id).len();
    while printed < MESSAGES as usize {
        let line = server.next_line(WAIT).expect("every message printed");
        printed += usize::from(line.starts_with(&format!("{id} ")) && (line.ends_with(": ") || line.ends_with(": .")));
    }
    assert_eq!(printed, MESSAGES as usize);
}

#[test]
fn sequence_numbers_that_skip_or_go_back_get_bad_sequence() {
    use soquete_core::Code;
    let mut server = Server::in_process(&[]);
    for (name, bad) in [("skipper", 3u64), ("backer", 1)] {
        let mut c = BinClient::connect(server.addr, name);
        let id = server.named_session(name);
        // Message 1 through the session (so that its ACK is expected), then a bad one.
        c.send(b"x");
        c.flush();
        c.stream.write_all(&msg(bad, b"x")).unwrap();
        c.wait("the server's error", |c| c.closed.is_some());
        assert_eq!(c.closed, Some(Closure::PeerError(Code::BadSequence)));
        let left = server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left ("));
        assert!(
            left.ends_with("left (aborted: bad sequence number) after 1 messages"),
            "{left}"
        );
    }
    calm_round(&mut server, "calm", 10);
}

#[test]
fn unsupported_version_is_refused() {
    let mut server = Server::in_process(&[]);
    let mut s = plain(server.addr);
    // Magic, then a HELLO whose version byte is 9 (PROTOCOL.md §3.2).
    let mut hello = vec![0xFE, b'S', b'Q', b'T', 0x01, 0, 0, 0, 26, 9];
    hello.extend([0u8; 25]);
    s.write_all(&hello).unwrap();
    let reply = read_to_eof(&mut s);
    // Magic, then REFUSE (0x03) with BAD_VERSION (0x11).
    assert_eq!(reply, [0xFE, b'S', b'Q', b'T', 0x03, 0, 0, 0, 1, 0x11]);
    server.wait_for(WAIT, |l| l.contains(" refused (unsupported protocol version)"));
    calm_round(&mut server, "calm", 5);
}

#[test]
fn too_long_plain_line_gets_an_err_line() {
    let mut server = Server::in_process(&["--max-message", "100"]);
    let mut s = plain(server.addr);
    s.write_all(b"short\n").unwrap();
    s.write_all(&[b'y'; 300]).unwrap();
    let reply = read_to_eof(&mut s);
    assert_eq!(String::from_utf8_lossy(&reply), "ERR line too long (max 100 bytes)\n");
    server.wait_for(WAIT, |l| l.ends_with(": short"));
    server.wait_for(WAIT, |l| {
        l.contains(" left (aborted: message too large) after 1 messages")
    });
    calm_round(&mut server, "calm", 5);
}

#[test]
fn garbage_bytes_are_plain_text_shown_escaped() {
    let mut server = Server::in_process(&[]);
    let mut s = plain(server.addr);
    s.write_all(b"\x00\x01\x9b\xff\xfe\x1b[31mred\x07\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut s).is_empty());
    server.wait_for(WAIT, |l| l.ends_with(r": \x00\x01\x9b\xff\xfe\e[31mred\x07"));
    calm_round(&mut server, "calm", 5);
}
