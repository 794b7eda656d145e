//! Broken and hostile clients against the server (in-process; the real binary where
//! its memory is measured), each beside a well-behaved client whose messages must
//! keep flowing: a client that never reads, a half-closed socket, a reset in the
//! middle of a frame, a flood of empty messages, bad sequence numbers, an unsupported
//! version, a too-long line, garbage, binary protocols, names and texts made to
//! mislead.
//!
//! Readiness is a printed line or a socket read; every wait is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
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
            left.ends_with("left (aborted: bad sequence number) after 1 message"),
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
        l.contains(" left (aborted: message too large) after 1 message")
    });
    calm_round(&mut server, "calm", 5);
}

#[test]
fn garbage_bytes_are_plain_text_shown_escaped() {
    let mut server = Server::in_process(&[]);
    let mut s = plain(server.addr);
    // Controls other than NUL are shown after a first line of text (PROTOCOL.md §7.3).
    s.write_all(b"garbage:\n\x01\x9b\xff\xfe\x1b[31mred\x07\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut s).is_empty());
    server.wait_for(WAIT, |l| l.ends_with(r": \x01\x9b\xff\xfe\e[31mred\x07"));
    calm_round(&mut server, "calm", 5);
}

/// Reads what the server sends until it closes the connection. A reset after the
/// last bytes ends the reading too: a server that closes with bytes of ours unread
/// makes the kernel answer with a reset.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// `len` bytes from a fixed seed (xorshift64): the same "random" bytes every run.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[test]
fn binary_peers_get_err_and_close_while_text_is_shown() {
    // An MQTT 3.1.1 CONNECT (client id "probe") and a PostgreSQL StartupMessage
    // (protocol 3.0, user "ana"), as their clients send them first.
    let mqtt = b"\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05probe".to_vec();
    let mut postgres = vec![0, 0, 0, 0, 0, 3, 0, 0];
    postgres.extend_from_slice(b"user\0ana\0database\0ana\0\0");
    let len = u32::try_from(postgres.len()).unwrap().to_be_bytes();
    postgres[..4].copy_from_slice(&len);
    let random = noise(1 << 20);

    let mut server = Server::start(&[]);
    let mut calm = BinClient::connect(server.addr, "calm");
    let calm_id = server.named_session("calm");
    let mut binary_ports = Vec::new();
    for (k, bytes) in [mqtt, postgres, random].into_iter().enumerate() {
        let mut s = plain(server.addr);
        s.set_write_timeout(Some(WAIT)).unwrap();
        binary_ports.push(s.local_addr().unwrap().port());
        // The server may close before it has read everything: writing then fails.
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || w.write_all(&bytes).is_ok());
        assert_eq!(
            String::from_utf8_lossy(&read_until_closed(&mut s)),
            "ERR wrong protocol\n",
            "peer {k}"
        );
        writer.join().unwrap();
        calm.send(format!("after {k}").as_bytes());
        calm.wait("the acknowledgement", |c| c.acked == k as u64 + 1);
        server.wait_for(WAIT, |l| {
            l == format!("{calm_id} {}: after {k}", calm.stream.local_addr().unwrap())
        });
    }

    // Latin-1 is text: shown, escaped, and the session goes on.
    let mut latin1 = plain(server.addr);
    latin1.write_all(b"ol\xe1\nqu\xe9 tal\n").unwrap();
    latin1.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut latin1).is_empty());
    let latin1_peer = latin1.local_addr().unwrap();
    server.wait_for(WAIT, |l| l.ends_with(&format!(" {latin1_peer}: ol\\xe1")));
    server.wait_for(WAIT, |l| l.ends_with(&format!(" {latin1_peer}: qu\\xe9 tal")));

    calm.close();
    server.wait_for(WAIT, |l| l.starts_with(&format!("{calm_id} ")) && l.contains(" left ("));
    // Of the binary peers, nothing is shown: at most a connected and a left line, if
    // the first segment that reached the server was still text.
    for port in binary_ports {
        let peer = format!("127.0.0.1:{port}");
        let lines: Vec<&String> = server.seen.iter().filter(|l| l.contains(&peer)).collect();
        assert!(lines.len() <= 2, "{lines:#?}");
        assert!(!lines.iter().any(|l| l.contains(&format!("{peer}: "))), "{lines:#?}");
    }
}

#[test]
fn names_and_texts_cannot_mislead() {
    let mut server = Server::in_process(&[]);
    let mut c = BinClient::connect(server.addr, r#"ana" as "bob"#);
    let line = server.wait_for(WAIT, |l| l.contains(" connected as "));
    assert!(line.ends_with(r#" connected as "ana\" as \"bob""#), "{line}");
    let id = line.split(' ').next().unwrap().to_string();

    // A right-to-left override, a zero-width space, a BOM, an isolate, a C1 control
    // sent as UTF-8 and the same byte alone, not UTF-8.
    let mut text = "evil\u{202e}txt.exe \u{200b}\u{feff}\u{2066}x \u{85}"
        .as_bytes()
        .to_vec();
    text.extend_from_slice(b" \x85 \\u{85}");
    c.send(&text);
    c.wait("the acknowledgement", |c| c.acked == 1);
    server.wait_for(WAIT, |l| {
        l.starts_with(&format!("{id} "))
            && l.ends_with(r": evil\u{202e}txt.exe \u{200b}\u{feff}\u{2066}x \u{85} \x85 \\u{85}")
    });

    let mut p = plain(server.addr);
    p.write_all("plain \u{202e}\u{200d}\u{2028}!\n".as_bytes()).unwrap();
    p.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut p).is_empty());
    server.wait_for(WAIT, |l| l.ends_with(r": plain \u{202e}\u{200d}\u{2028}!"));
    c.close();
    server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left ("));

    // No printed line holds a control, a bidirectional or an invisible character.
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
    };
    assert!(server.seen.iter().all(|l| !l.chars().any(hidden)), "{:#?}", server.seen);
}

#[test]
fn binary_line_after_text_ends_the_session_after_the_lines_before() {
    let mut server = Server::in_process(&[]);
    let mut s = plain(server.addr);
    s.write_all(b"hello\nthere \x01\nbin\x00ary\nlater\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_until_closed(&mut s)),
        "ERR wrong protocol\n"
    );
    let peer = s.local_addr().unwrap();
    let left = server.wait_for(WAIT, |l| l.contains(&format!("{peer} left (")));
    assert!(
        left.ends_with(" left (aborted: wrong protocol) after 2 messages"),
        "{left}"
    );
    let id = left.split(' ').next().unwrap();
    assert_eq!(messages_of(&server.seen, id), ["hello", r"there \x01"]);
    calm_round(&mut server, "calm", 3);
}
