//! Helpers for the end-to-end tests in `tests/`: start a server on `127.0.0.1:0` —
//! in this process through the library's `server::run`, or as the real `soquete`
//! binary — and read what it prints; find and run the binary.
//!
//! The server's "listening on ADDR" line is the readiness signal: tests never sleep to
//! wait for it.

use std::io::Write;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use soquete_host::cli::{Cli, Command as CliCommand};
use soquete_host::server::{self, Shutdown, Stopped, Trigger};

mod bin_client;
pub mod proxy;
pub mod watched;

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

/// A running server on `127.0.0.1:0`, stopped when dropped: in this process
/// ([`Server::in_process`]) or the real binary ([`Server::start`]).
#[derive(Debug)]
pub struct Server {
    runner: Runner,
    /// Where it listens.
    pub addr: SocketAddr,
    lines: Receiver<String>,
    /// Every stdout line seen so far by [`Server::wait_for`] and friends.
    pub seen: Vec<String>,
}

/// How a [`Server`] runs.
#[derive(Debug)]
enum Runner {
    Process(Child),
    InProcess {
        trigger: Trigger,
        done: Receiver<Result<Stopped, String>>,
    },
}

/// How a [`Server`] ended.
#[derive(Debug)]
pub enum Exit {
    /// The binary's exit status.
    Process(ExitStatus),
    /// What `server::run` returned.
    InProcess(Result<Stopped, String>),
}

impl Exit {
    /// A graceful stop: exit status 0, or `Stopped::Gracefully`.
    pub fn success(&self) -> bool {
        match self {
            Exit::Process(status) => status.success(),
            Exit::InProcess(result) => *result == Ok(Stopped::Gracefully),
        }
    }
}

impl Server {
    /// Runs `server::run` in a thread of this process, with the options that
    /// `soquete server --listen 127.0.0.1:0 EXTRA...` would have, printing into a pipe
    /// of lines and stopped by a [`Trigger`]; waits for its "listening on" line.
    pub fn in_process(extra: &[&str]) -> Server {
        let argv = ["soquete", "server", "--listen", "127.0.0.1:0"].iter().chain(extra);
        let CliCommand::Server(args) = Cli::try_parse_from(argv).expect("server flags").command else {
            panic!("not a server command line");
        };
        let listener = args.listen.bind("--listen").expect("bind 127.0.0.1:0");
        let (shutdown, trigger) = Shutdown::trigger().expect("stop trigger");
        let options = args.options();
        let (to_test, lines) = mpsc::channel();
        let (finished, done) = mpsc::channel();
        thread::Builder::new()
            .name("soquete server".into())
            .spawn(move || {
                let output = LineSender {
                    to: to_test,
                    partial: Vec::new(),
                };
                let result = server::run(listener, &options, output, shutdown).map_err(|e| {
                    let why = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    format!("{e}{why}")
                });
                let _ = finished.send(result);
            })
            .expect("spawn the server thread");
        Server::ready(Runner::InProcess { trigger, done }, lines)
    }

    /// Starts the binary, `soquete server --listen 127.0.0.1:0 EXTRA...`, and waits for
    /// its "listening on" line.
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
        Server::ready(Runner::Process(child), lines)
    }

    /// Waits for the first line, "listening on ADDR".
    fn ready(runner: Runner, lines: Receiver<String>) -> Server {
        let mut server = Server {
            runner,
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
                    .split_once(r#""event":"listening","addr":""#)
                    .and_then(|(_, s)| s.strip_suffix(r#""}"#))
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

    /// The binary's process id.
    pub fn pid(&self) -> u32 {
        match &self.runner {
            Runner::Process(child) => child.id(),
            Runner::InProcess { .. } => panic!("an in-process server has no process of its own"),
        }
    }

    /// Sends `signal` (e.g. `"TERM"`) to the binary.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Asks the server to stop gracefully: SIGTERM for the binary, the trigger in
    /// process.
    pub fn stop(&self) {
        match &self.runner {
            Runner::Process(_) => self.signal("TERM"),
            Runner::InProcess { trigger, .. } => trigger.stop().expect("the server is running"),
        }
    }

    /// Collects the remaining output lines until the server exits (bounded).
    pub fn finish(&mut self, timeout: Duration) -> Exit {
        let deadline = Instant::now() + timeout;
        while self
            .next_line(deadline.saturating_duration_since(Instant::now()))
            .is_some()
        {}
        match &mut self.runner {
            Runner::InProcess { done, .. } => {
                let left = deadline.saturating_duration_since(Instant::now());
                let result = done
                    .recv_timeout(left)
                    .unwrap_or_else(|_| panic!("server did not stop within {timeout:?}"));
                Exit::InProcess(result)
            }
            Runner::Process(child) => loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    return Exit::Process(status);
                }
                assert!(Instant::now() < deadline, "server did not exit within {timeout:?}");
                // A process's exit has no readiness signal to wait on; its stdout has
                // closed already, so this is a matter of milliseconds.
                thread::sleep(Duration::from_millis(10));
            },
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            // Two requests: stop at once. The thread ends by itself.
            Runner::InProcess { trigger, .. } => {
                let _ = trigger.stop();
                let _ = trigger.stop();
            }
        }
    }
}

/// An in-process server's output: each complete line goes to the test as it is
/// written, so a line is with the test before the server flushes and acknowledges.
struct LineSender {
    to: mpsc::Sender<String>,
    partial: Vec<u8>,
}

impl Write for LineSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            // The test may be gone (it failed, or dropped the server): nothing to do.
            let _ = self.to.send(text);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

/// `soquete keygen --out DIR/NAME.key`: returns the key file's path and the public key
/// as text (`soquete-pk:…`).
pub fn keygen(dir: &std::path::Path, name: &str) -> (String, String) {
    let path = dir.join(format!("{name}.key"));
    let out = soquete()
        .args(["keygen", "--out"])
        .arg(&path)
        .output()
        .expect("run soquete keygen");
    assert!(out.status.success(), "keygen: {out:?}");
    let public = String::from_utf8(out.stdout).expect("UTF-8").trim_end().to_owned();
    (path.to_str().expect("UTF-8 path").to_owned(), public)
}
