//! The server as an operator runs it: what it tells about takeovers, what it holds
//! for idle connections, how it copes with its limits.
//!
//! Readiness is always a printed line or a socket read; nothing sleeps.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use soquete_tests::watched::Watched;
use soquete_tests::{plain, soquete, BinClient, Server, WAIT};

#[test]
fn takeover_is_printed_with_the_new_address() {
    let mut server = Server::in_process(&[]);
    let mut c = BinClient::connect(server.addr, "twice");
    let id = server.named_session("twice");
    c.send(b"m0");
    c.wait("the acknowledgement", |c| c.acked == 1);
    let old_addr = c.stream.local_addr().unwrap();
    let _old = c.reconnect(server.addr);
    assert_eq!(c.established, Some(true));
    let new_addr = c.stream.local_addr().unwrap();
    let line = server.wait_for(WAIT, |l| l.contains(" taken over "));
    assert_eq!(
        line,
        format!("{id} {old_addr} taken over by {new_addr} after 1 message")
    );
    // The takeover comes before the session goes on from the new address.
    let resumed = server.wait_for(WAIT, |l| l.contains(" resumed after "));
    assert_eq!(resumed, format!("{id} {new_addr} resumed after 1 message"));
}

#[test]
fn takeover_is_a_json_event() {
    let mut server = Server::start(&["--json"]);
    let mut c = BinClient::connect(server.addr, "twice");
    c.send(b"m0");
    c.wait("the acknowledgement", |c| c.acked == 1);
    let old_addr = c.stream.local_addr().unwrap();
    let _old = c.reconnect(server.addr);
    let new_addr = c.stream.local_addr().unwrap();
    let line = server.wait_for(WAIT, |l| l.contains(r#""event":"taken_over""#));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    let connected = server
        .seen
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["event"] == "connected")
        .expect("a connected event");
    assert_eq!(v["id"], connected["id"]);
    assert_eq!(v["peer"], old_addr.to_string());
    assert_eq!(v["by"], new_addr.to_string());
    assert_eq!(v["messages"], 1);
}

#[test]
fn grown_buffer_is_released_on_a_silent_connection() {
    let mut cmd = soquete();
    cmd.args(["server", "--listen", "127.0.0.1:0", "--max-message", "2000000"])
        .env("RUST_LOG", "soquete_host::server=debug");
    let mut server = Watched::start(cmd);
    let mut peer = plain(server.addr);
    let me = peer.local_addr().unwrap();
    let mut big = vec![b'x'; 1 << 20];
    big.push(b'\n');
    peer.write_all(&big).unwrap();
    server.stdout_line(|l| l.starts_with(&format!("#1 {me}: xxxx")));
    let grown = server.stderr_line(|l| l.contains(&format!("{me}: receive buffer 3072 -> ")));
    // The peer now stays silent: only a timer can release the buffer.
    let released =
        server.stderr_line(|l| l.contains(&format!("{me}: receive buffer ")) && l.ends_with("-> 3072 bytes"));
    let size = |l: &str| -> String { l.split("receive buffer ").nth(1).unwrap().to_string() };
    assert_eq!(
        size(&grown).split(" -> ").nth(1),
        size(&released)
            .split(" -> ")
            .next()
            .map(|n| format!("{n} bytes"))
            .as_deref()
    );
    // The connection is still served, with the small buffer.
    peer.write_all(b"still here\n").unwrap();
    server.stdout_line(|l| l == format!("#1 {me}: still here"));
    assert!(
        !server.seen.iter().any(|l| l.contains(" left (")),
        "the connection must stay open: {:?}",
        server.seen
    );
}

/// `soquete server --listen 127.0.0.1:0 EXTRA…` run by `sh` after `ulimits` (e.g.
/// `ulimit -n 32`), logging at `log`.
fn under_limits(ulimits: &str, log: &str, extra: &[&str]) -> Watched {
    let bin = soquete_tests::soquete_bin();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{ulimits} && exec \"$0\" server --listen 127.0.0.1:0 \"$@\""))
        .arg(bin)
        .args(extra)
        .env("RUST_LOG", log);
    Watched::start(cmd)
}

/// The soft and hard "Max open files" of process `pid`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let mut words = line.split_whitespace().skip(3);
    (words.next().unwrap().to_string(), words.next().unwrap().to_string())
}

#[test]
fn soft_open_file_limit_is_raised_to_the_hard_limit() {
    let mut server = under_limits(
        "ulimit -Sn 64 && ulimit -Hn 4096",
        "soquete_host::server=debug",
        &["--max-clients", "100"],
    );
    let (soft, hard) = open_file_limits(server.child.id());
    assert_eq!((soft.as_str(), hard.as_str()), ("4096", "4096"));
    // It fits: said at debug level, not as a warning.
    let said = server.stderr_line(|l| l.contains("open-file limit"));
    assert!(
        said.contains("DEBUG") && said.ends_with("open-file limit 4096"),
        "{said}"
    );
}

/// CPU time (user + system) of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses: utime is the 12th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_descriptors_clients_are_told_server_full_without_a_spin_or_a_flood() {
    let mut server = under_limits("ulimit -n 32", "soquete_host=info", &[]);
    let pid = server.child.id();
    let warning = server.stderr_line(|l| l.contains("open-file limit is 32"));
    assert!(warning.contains("--max-clients 1024"), "{warning}");

    const CLIENTS: usize = 40;
    let mut peers: Vec<_> = (0..CLIENTS).map(|_| plain(server.addr)).collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        peer.write_all(format!("c{i}\n").as_bytes()).unwrap();
        peer.set_nonblocking(true).unwrap();
    }
    server.stderr_line(|l| l.contains("cannot accept connections") && l.contains("told \"server full\""));
    // Each client is served (its line is printed) or told so (it reads the answer,
    // then the end of the stream).
    let mut served = Vec::new();
    let mut refused = Vec::new();
    let deadline = Instant::now() + WAIT;
    while served.len() + refused.len() < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "served {served:?}, refused {refused:?}; saw:\n{}",
            server.seen.join("\n")
        );
        // Waits for the next printed line, briefly, then looks at the sockets.
        if let Ok(line) = server.stdout.recv_timeout(std::time::Duration::from_millis(20)) {
            if let Some((_, text)) = line.split_once(": c") {
                served.push(text.parse::<usize>().unwrap());
            }
        }
        for (i, peer) in peers.iter_mut().enumerate() {
            if served.contains(&i) || refused.contains(&i) {
                continue;
            }
            let mut answer = Vec::new();
            match peer.read_to_end(&mut answer) {
                Ok(_) => {
                    assert_eq!(answer, b"ERR server full\n", "client {i}");
                    refused.push(i);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(answer.is_empty() || answer == b"ERR server full\n"[..answer.len()]);
                }
                Err(e) => panic!("client {i}: {e}"),
            }
        }
    }
    assert!(!served.is_empty() && !refused.is_empty(), "{served:?} {refused:?}");

    // Nobody is left waiting: the server neither spins nor repeats itself. (A
    // spinning loop would take the whole second.)
    let before = cpu_ticks(pid);
    let window = std::time::Duration::from_secs(1);
    let start = Instant::now();
    while let Some(left) = window.checked_sub(start.elapsed()) {
        if let Ok(line) = server.stderr.recv_timeout(left) {
            assert!(!line.contains("cannot accept"), "said again: {line}");
        }
    }
    let ticks = cpu_ticks(pid) - before;
    assert!(ticks < 50, "{ticks} ticks of CPU in 1s while out of descriptors");

    // Served clients leave: a new client is served.
    for i in &served {
        peers[*i].shutdown(std::net::Shutdown::Both).unwrap();
    }
    for _ in &served {
        server.stdout_line(|l| l.contains(" left ("));
    }
    let mut late = plain(server.addr);
    late.write_all(b"late\n").unwrap();
    server.stdout_line(|l| l.ends_with(": late"));
    server.stderr_line(|l| l.contains("accepting connections again"));
}

#[test]
fn sigterm_closes_silent_connections_at_once() {
    let mut cmd = soquete();
    cmd.args(["server", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "soquete_host::server=debug,soquete::stopped=info");
    let mut server = Watched::start(cmd);
    let mut silent = plain(server.addr);
    let me = silent.local_addr().unwrap();
    server.stderr_line(|l| l.ends_with(&format!("{me}: connected")));
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Not "1 session did not close in time", which comes after the grace period.
    let end = server.stderr_line(|l| l.contains("stopped (") || l.contains("did not close in time"));
    assert!(
        end.ends_with("stopped (SIGTERM): 0 sessions closed in order, 0 lost"),
        "{end}"
    );
    let mut rest = Vec::new();
    assert_eq!(silent.read_to_end(&mut rest).unwrap(), 0, "closed without a word");
}

#[test]
fn silent_connection_is_closed_long_before_the_handshake_timeout() {
    let mut cmd = soquete();
    // Two connections take half the slots: silence is not tolerated for long.
    cmd.args(["server", "--listen", "127.0.0.1:0", "--max-clients", "4"])
        .env("RUST_LOG", "soquete_host::server=debug");
    let mut server = Watched::start(cmd);
    let mut silent = plain(server.addr);
    let me = silent.local_addr().unwrap();
    let mut real = BinClient::connect(server.addr, "real");
    server.stdout_line(|l| l.ends_with("connected as \"real\""));
    // Closed for its silence (3 s), not by the 10 s handshake timeout.
    server.stderr_line(|l| l.ends_with(&format!("{me}: sent nothing in 3s; closed")));
    // Told why, as the handshake timeout would tell it (a person at `nc` sees it).
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"ERR handshake timeout\n");
    // The client that spoke is still served.
    real.send(b"after");
    real.wait("the acknowledgement", |c| c.acked == 1);
    server.stdout_line(|l| l.ends_with(": after"));
}

#[test]
fn silent_connection_is_kept_while_slots_are_to_spare() {
    let mut cmd = soquete();
    cmd.args(["server", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "soquete_host::server=debug");
    let mut server = Watched::start(cmd);
    let mut slow = plain(server.addr);
    let me = slow.local_addr().unwrap();
    server.stderr_line(|l| l.ends_with(&format!("{me}: silent, kept (slots to spare)")));
    // Someone at `nc` who takes a while to type is still served.
    slow.write_all(b"at last\n").unwrap();
    server.stdout_line(|l| l == format!("#1 {me}: at last"));
}

#[test]
fn silent_sockets_cannot_lock_out_a_real_client() {
    let mut cmd = soquete();
    // 4 clients: at most 68 connections, 16 of them in the handshake.
    cmd.args(["server", "--listen", "127.0.0.1:0", "--max-clients", "4"])
        .env("RUST_LOG", "soquete_host::server=debug");
    let mut server = Watched::start(cmd);
    // More sockets that never speak than the server takes connections at all.
    let mut silent: Vec<_> = (0..100).map(|_| plain(server.addr)).collect();
    // The oldest silent ones make room, told why.
    let first = silent[0].local_addr().unwrap();
    server.stderr_line(|l| {
        l.contains(&format!(
            "{first}: sent nothing, and 16 connections are in the handshake; closed"
        ))
    });
    let last = silent.last().unwrap().local_addr().unwrap();
    server.stderr_line(|l| l.ends_with(&format!("{last}: connected")));
    let mut real = BinClient::connect(server.addr, "real");
    assert!(real.session.is_open(), "{:?}", real.closed);
    server.stdout_line(|l| l.ends_with("connected as \"real\""));
    real.send(b"let in");
    real.wait("the acknowledgement", |c| c.acked == 1);
    server.stdout_line(|l| l.ends_with(": let in"));
    let mut rest = Vec::new();
    silent[0].read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"ERR handshake timeout\n");
}

#[test]
fn soquete_client_quotes_a_refusal_sent_before_the_handshake() {
    // What the server answers over its connection cap or out of descriptors.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"ERR server full\n").unwrap();
    });
    let out = soquete()
        .args(["client", "--timeout", "5s", "--connect", &addr.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fake.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{addr} refused the connection: it answered \"ERR server full\"; try again later"
        )),
        "{stderr}"
    );
}
