//! Where the server's lines go, with the real `soquete server` binary: an output
//! that nobody reads does not stall the event loop, an output that fails
//! acknowledges nothing more, SIGHUP opens the output file again, and a full disk
//! is reported.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use soquete_tests::{read_all, soquete, BinClient, WAIT};

/// Held while this file's tests start a process, and by the broken-pipe test while
/// it needs its pipe's reading end to be closed everywhere: a process started by
/// another test holds a copy of every descriptor of this process until it execs, and
/// a write into the pipe meanwhile would succeed.
static SPAWNING: Mutex<()> = Mutex::new(());

fn spawning() -> MutexGuard<'static, ()> {
    SPAWNING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts `soquete server --listen 127.0.0.1:0 EXTRA...` with stdout and stderr piped;
/// returns it, its stdout and its address (read from the first line).
fn start(extra: &[&str]) -> (Child, BufReader<ChildStdout>, std::net::SocketAddr) {
    let spawn = spawning();
    let mut child = soquete()
        .args(["server", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn soquete server");
    drop(spawn);
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    let addr = first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .parse()
        .expect("address");
    (child, out, addr)
}

/// Waits (bounded) for the process to exit; returns its exit code and stderr.
fn wait_exit(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        // A process's exit has no readiness signal to wait on.
        thread::sleep(Duration::from_millis(10));
    };
    let stderr = read_all(child.stderr.take().expect("stderr"));
    (status.code(), stderr)
}

/// Reads `out`'s lines on a thread, so that the test can wait with a limit.
fn lines(out: BufReader<ChildStdout>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn unread_stdout_does_not_delay_another_clients_handshake() {
    let (mut child, out, addr) = start(&[]);
    let payload = vec![b'x'; 1000];
    let line_end = String::from_utf8(payload.clone()).expect("ASCII");

    // A's lines fill the pipe (64 KiB) that nobody reads: acknowledgements stop
    // there, since each one waits for its line to be written.
    let mut a = BinClient::connect(addr, "a");
    let mut sent = 0u64;
    let deadline = Instant::now() + WAIT;
    while a.acked < 55 {
        assert!(Instant::now() < deadline, "only {} acknowledged", a.acked);
        while a.session.send(&payload).is_ok() {
            sent += 1;
        }
        a.pump();
    }
    // As many more as A may have in flight: with them the output holds more than
    // the pipe.
    while a.session.send(&payload).is_ok() {
        sent += 1;
    }
    a.flush();
    assert!(sent >= 66, "A sent only {sent}");

    let mut b = BinClient::connect(addr, "b");
    assert!(b.session.is_open(), "B's handshake did not complete: {:?}", b.closed);

    // Reading stdout again lets everything through. B's greeting comes after more of
    // A's output than a pipe holds: B was welcomed while the output was blocked.
    let rx = lines(out);
    let mut a_lines = 0u64;
    let mut b_after = None;
    while a_lines < sent || b_after.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = rx.recv_timeout(left).expect("the rest of the output");
        if got.contains(" connected as \"b\"") {
            b_after = Some(a_lines);
        } else if got.ends_with(&line_end) {
            a_lines += 1;
        }
    }
    let b_after = b_after.unwrap_or_default();
    assert!(
        b_after * 1000 > 64 * 1024,
        "B was welcomed after only {b_after} of A's lines"
    );
    a.wait("A's acknowledgements", |c| c.acked == sent);
    b.send(b"from b");
    b.wait("B's acknowledgement", |c| c.acked == 1);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn broken_pipe_acknowledges_nothing_more() {
    let (child, mut out, addr) = start(&[]);
    let mut c = BinClient::connect(addr, "ana");
    c.send(b"one");
    c.wait("the first acknowledgement", |c| c.acked == 1);
    let mut seen = String::new();
    while !seen.ends_with(": one\n") {
        out.read_line(&mut seen).expect("a line");
    }
    let _no_spawns = spawning();
    drop(out);

    c.send(b"two");
    c.send(b"three");
    let deadline = Instant::now() + WAIT;
    while c.closed.is_none() {
        assert!(
            Instant::now() < deadline,
            "the server kept the session open (acknowledged {})",
            c.acked
        );
        c.pump();
    }
    assert_eq!(c.acked, 1, "a message the server could not write was acknowledged");

    let (code, stderr) = wait_exit(child);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot write to standard output") && stderr.contains("Broken pipe"),
        "stderr: {stderr}"
    );
}

#[test]
fn sighup_opens_the_output_file_again() {
    let dir = std::env::temp_dir().join(format!("soquete-sighup-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join("out.log");
    let rotated = dir.join("out.log.1");
    let spawn = spawning();
    let mut child = soquete()
        .args(["server", "--listen", "127.0.0.1:0", "--output"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn soquete server");
    drop(spawn);
    // The address is the file's first line.
    let deadline = Instant::now() + WAIT;
    let addr = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text.lines().next().and_then(|l| l.strip_prefix("listening on ")) {
            break addr.parse().expect("address");
        }
        assert!(Instant::now() < deadline, "no listening line in {}", log.display());
        // A file has no readiness signal for "a line was appended".
        thread::sleep(Duration::from_millis(10));
    };

    let mut c = BinClient::connect(addr, "ana");
    let mut sent = 0;
    for _ in 0..10 {
        sent += 1;
        c.send(format!("m{sent}").as_bytes());
    }
    c.wait("the first acknowledgements", |c| c.acked == 10);
    fs::rename(&log, &rotated).expect("rotate");
    let spawn = spawning();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    drop(spawn);
    assert!(status.success());
    // Once an acknowledged message is in the new file, the server has opened it.
    while !fs::read_to_string(&log).unwrap_or_default().contains(": m") {
        assert!(sent < 1000, "no message reached the new file");
        sent += 1;
        c.send(format!("m{sent}").as_bytes());
        c.wait("an acknowledgement", |c| c.acked == sent);
    }
    for _ in 0..10 {
        sent += 1;
        c.send(format!("m{sent}").as_bytes());
    }
    c.wait("the last acknowledgements", |c| c.acked == sent);

    let old = fs::read_to_string(&rotated).expect("old file");
    let new = fs::read_to_string(&log).expect("new file");
    let numbers = |text: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.split_once(": m").and_then(|(_, n)| n.parse().ok()))
            .collect()
    };
    let (before, after) = (numbers(&old), numbers(&new));
    assert!(
        before.len() >= 10 && !after.is_empty(),
        "old: {before:?}, new: {after:?}"
    );
    let all: Vec<u64> = before.iter().chain(&after).copied().collect();
    assert_eq!(all, (1..=sent).collect::<Vec<_>>(), "each message once, in order");
    assert!(c.session.is_open());
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn full_output_fails_clearly() {
    let spawn = spawning();
    let child = soquete()
        .args(["server", "--listen", "127.0.0.1:0", "--output", "/dev/full"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn soquete server");
    drop(spawn);
    let (code, stderr) = wait_exit(child);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot write to /dev/full") && stderr.contains("No space left"),
        "stderr: {stderr}"
    );
}
