//! The real `soquete server` binary with its three standard streams in the test's
//! hands: lines written to its console (standard input), its output and its log
//! (standard error) read line by line as they come.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Instant;

use crate::WAIT;

/// A running `soquete server`, killed when dropped.
#[derive(Debug)]
pub struct Watched {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    console: Option<ChildStdin>,
    /// Its standard output, line by line.
    pub stdout: Receiver<String>,
    /// Its log, line by line.
    pub stderr: Receiver<String>,
    /// Every line seen so far, of either stream, for failure messages.
    pub seen: Vec<String>,
}

impl Watched {
    /// `soquete server --listen 127.0.0.1:0 EXTRA…` logging at `log` (`RUST_LOG`),
    /// its standard input a pipe; waits for its "listening on" line.
    pub fn server(extra: &[&str], log: &str) -> Watched {
        let mut cmd = crate::soquete();
        cmd.args(["server", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", log);
        Watched::start(cmd)
    }

    /// Runs `cmd` (a `soquete server --listen 127.0.0.1:0 …` command line) and waits
    /// for its "listening on" line.
    pub fn start(mut cmd: Command) -> Watched {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn soquete server");
        let console = child.stdin.take();
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        let mut w = Watched {
            child,
            addr: "0.0.0.0:0".parse().expect("addr"),
            console,
            stdout,
            stderr,
            seen: Vec::new(),
        };
        let first = w.stdout_line(|l| l.starts_with("listening on "));
        w.addr = first["listening on ".len()..].parse().expect("listen address");
        w
    }

    /// Types `line` at the server's console.
    pub fn type_line(&mut self, line: &str) {
        let console = self.console.as_mut().expect("console open");
        console
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to the console");
        console.flush().expect("flush the console");
    }

    /// Ends the console's input.
    pub fn close_console(&mut self) {
        self.console = None;
    }

    /// The next output line that satisfies `pred`, within [`WAIT`].
    pub fn stdout_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        wait_line(&self.stdout, &mut self.seen, "stdout", pred)
    }

    /// The next log line that satisfies `pred`, within [`WAIT`].
    pub fn stderr_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
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
pub fn wait_line(lines: &Receiver<String>, seen: &mut Vec<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if pred(&line) => {
                seen.push(format!("{what}: {line}"));
                return line;
            }
            Ok(line) => seen.push(format!("{what}: {line}")),
            Err(_) => panic!("no matching {what} line within {WAIT:?}; saw:\n{}", seen.join("\n")),
        }
    }
}

/// Forwards every line of `r` to a channel (lossy UTF-8, long lines cut short).
pub fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
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
