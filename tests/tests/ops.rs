//! The server as an operator runs it: what it tells about takeovers, what it holds
//! for idle connections, how it copes with its limits.
//!
//! Readiness is always a printed line or a socket read; nothing sleeps.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Instant;

use soquete_tests::{plain, soquete, BinClient, Server, WAIT};

/// The real binary with its standard output and its log (stderr) both read line by
/// line; killed when dropped.
struct Watched {
    child: Child,
    addr: SocketAddr,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every line seen so far, of either stream, for failure messages.
    seen: Vec<String>,
}

impl Watched {
    /// Runs `cmd` (a `soquete server --listen 127.0.0.1:0 …` command line) and waits
    /// for its "listening on" line.
    fn start(mut cmd: Command) -> Watched {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn soquete server");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        let mut w = Watched {
            child,
            addr: "0.0.0.0:0".parse().expect("addr"),
            stdout,
            stderr,
            seen: Vec::new(),
        };
        let first = w.stdout_line(|l| l.starts_with("listening on "));
        w.addr = first["listening on ".len()..].parse().expect("listen address");
        w
    }

    fn stdout_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        wait_line(&self.stdout, &mut self.seen, "stdout", pred)
    }

    fn stderr_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        wait_line(&self.stderr, &mut self.seen, "stderr", pred)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next line of `lines` that satisfies `pred`, within [`WAIT`]; panics with what
/// was seen otherwise.
fn wait_line(lines: &Receiver<String>, seen: &mut Vec<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(line) => seen.push(format!("{what}: {line}")),
            Err(_) => panic!("no matching {what} line within {WAIT:?}; saw:\n{}", seen.join("\n")),
        }
    }
}

/// Forwards every line of `r` to a channel (lossy UTF-8, long lines cut short).
fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(1..)) {
            buf.truncate(256);
            let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
            buf.clear();
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

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
        format!("{id} {old_addr} taken over by {new_addr} after 1 messages")
    );
    // The takeover comes before the session goes on from the new address.
    let resumed = server.wait_for(WAIT, |l| l.contains(" resumed after "));
    assert_eq!(resumed, format!("{id} {new_addr} resumed after 1 messages"));
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
    let grown = server.stderr_line(|l| l.contains(&format!("{me}: receive buffer 4096 -> ")));
    // The peer now stays silent: only a timer can release the buffer.
    let released =
        server.stderr_line(|l| l.contains(&format!("{me}: receive buffer ")) && l.ends_with("-> 4096 bytes"));
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
