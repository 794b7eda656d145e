//! Helpers for the end-to-end tests in `tests/`: find the real `soquete` binary, start
//! a server on `127.0.0.1:0` and read what it prints.
//!
//! The server's "listening on ADDR" line is the readiness signal: tests never sleep to
//! wait for it.

use std::io::Write;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

mod bin_client;
pub mod proxy;

pub use bin_client::BinClient;

/// Longest wait for any one thing in the end-to-end tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// Path of the `soquete` binary built by this workspace.
///
/// `cargo test --workspace` builds it (soquete-host's own integration tests need it);
/// when it is missing (e.g. `cargo test -p soquete-tests`), it is built once here.
pub fn soquete_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>/soquete
        let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
        let bin = dir.join(format!("soquete{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "soquete-host", "--bin", "soquete"]);
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "building soquete failed");
        }
        bin
    })
    .clone()
}

/// A `soquete` command with logging kept quiet unless the test run asks for it.
pub fn soquete() -> Command {
    let mut cmd = Command::new(soquete_bin());
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    cmd
}

/// A running `soquete server` on `127.0.0.1:0`, killed when dropped.
#[derive(Debug)]
pub struct Server {
    /// The server process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    lines: Receiver<String>,
    /// Every stdout line seen so far by [`Server::wait_for`] and friends.
    pub seen: Vec<String>,
}

impl Server {
    /// Starts `soquete server --listen 127.0.0.1:0 EXTRA...` and waits for its
    /// "listening on" line.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_on("127.0.0.1:0", extra)
    }

    /// Starts `soquete server --listen LISTEN EXTRA...` and waits for its "listening on"
    /// line.
    pub fn start_on(listen: &str, extra: &[&str]) -> Server {
        let mut child = soquete()
            .args(["server", "--listen", listen])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn soquete server");
        let lines = spawn_line_reader(child.stdout.take().expect("stdout"));
        let mut server = Server {
            child,
            addr: "0.0.0.0:0".parse().expect("addr"),
            lines,
            seen: Vec::new(),
        };
        let first = server
            .next_line(Duration::from_secs(20))
            .expect("server printed nothing");
        let addr = first
            .strip_prefix("listening on ")
            .or_else(|| {
                first
                    .strip_prefix(r#"{"event":"listening","addr":""#)
                    .and_then(|s| s.strip_suffix(r#""}"#))
            })
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        server.addr = addr.parse().expect("listen address");
        server
    }

    /// The next stdout line, within `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads lines until one satisfies `pred`; panics after `timeout` with what was seen.
    pub fn wait_for(&mut self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if pred(&line) => return line,
                Some(_) => {}
                None => panic!("no matching line within {timeout:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The `#ID` of the session whose "connected" line matches `pred` (waits for it).
    pub fn session_id(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let line = self.wait_for(WAIT, |l| l.contains(" connected") && pred(l));
        line.split(' ').next().expect("a #ID").to_string()
    }

    /// The `#ID` of the session of the client named `name` (waits for it).
    pub fn named_session(&mut self, name: &str) -> String {
        let end = format!("connected as \"{name}\"");
        self.session_id(|l| l.ends_with(&end))
    }

    /// Sends `signal` (e.g. `"TERM"`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Collects the remaining stdout lines until the server exits (bounded).
    pub fn finish(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        while self
            .next_line(deadline.saturating_duration_since(Instant::now()))
            .is_some()
        {}
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit within {timeout:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `soquete client` with piped standard streams.
#[derive(Debug)]
pub struct ClientProcess {
    stdin: Option<ChildStdin>,
    done: Receiver<Output>,
    pid: u32,
    limit: Duration,
}

impl ClientProcess {
    /// Starts `soquete client --timeout 5s --connect ADDR EXTRA...`; every later wait
    /// on it is bounded by `limit`.
    pub fn start(addr: &str, extra: &[&str], limit: Duration) -> ClientProcess {
        let mut child = soquete()
            .args(["client", "--timeout", "5s", "--connect", addr])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn soquete client");
        let stdin = child.stdin.take();
        let pid = child.id();
        let (tx, done) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait_with_output().expect("wait for client"));
        });
        ClientProcess {
            stdin,
            done,
            pid,
            limit,
        }
    }

    /// Writes `bytes` to the client's stdin (from a thread: it may block on a full pipe).
    pub fn write(&mut self, bytes: Vec<u8>) -> thread::JoinHandle<()> {
        let mut stdin = self.stdin.take().expect("stdin open");
        let (tx, rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            // The client may stop reading (an `S` line, an error): a broken pipe is fine.
            let _ = stdin.write_all(&bytes);
            let _ = tx.send(stdin);
        });
        self.stdin = rx.recv_timeout(self.limit).ok();
        handle
    }

    /// Writes `bytes` to the client's stdin from a thread, then closes it (end of
    /// input), without waiting: the client takes the lines at its own pace.
    pub fn feed(&mut self, bytes: Vec<u8>) -> thread::JoinHandle<()> {
        let mut stdin = self.stdin.take().expect("stdin open");
        thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        })
    }

    /// Closes the client's standard input (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the client to exit; kills it and fails after the limit. Returns the
    /// exit code, stdout and stderr.
    pub fn wait(self) -> (i32, String, String) {
        let ClientProcess {
            stdin,
            done,
            pid,
            limit,
        } = self;
        let output = match done.recv_timeout(limit) {
            Ok(output) => output,
            Err(_) => {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
                panic!("soquete client did not exit within {limit:?}");
            }
        };
        drop(stdin);
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// Message texts printed for session `id` (`#N`), in order.
pub fn messages_of(seen: &[String], id: &str) -> Vec<String> {
    let prefix = format!("{id} ");
    seen.iter()
        .filter_map(|l| l.strip_prefix(&prefix)?.split_once(' '))
        .filter(|(peer, _)| peer.ends_with(':'))
        .map(|(_, text)| text.to_string())
        .collect()
}

/// A raw (plain-text) connection to `addr`, reads bounded by [`WAIT`].
pub fn plain(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream
}

/// Reads until the server closes the connection.
pub fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read until the server closes");
    out
}

/// Forwards every line of `out` to a channel (lossy UTF-8, terminator removed).
pub fn spawn_line_reader(out: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Reads everything from `r` into a string (lossy).
pub fn read_all(mut r: impl Read) -> String {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
