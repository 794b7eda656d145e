//! The README's samples marked `<!-- sample: NAME -->` are the programs' own output:
//! each is captured here by running what the README describes, and compared with the
//! README, addresses and ports aside. `SOQUETE_README=write` writes what was captured
//! into the README instead (the server's port shown as 8800).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;

use soquete_tests::soquete;
use soquete_tests::watched::{lines_of, wait_line, Watched};

/// A `soquete client --connect ADDR EXTRA…` with its streams piped and read.
struct Client {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

impl Client {
    fn start(addr: std::net::SocketAddr, extra: &[&str]) -> Client {
        let mut child = soquete()
            .args(["client", "--timeout", "5s", "--connect", &addr.to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Client {
            child,
            stdout,
            stderr,
            seen: Vec::new(),
        }
    }

    fn input(&mut self, text: &str) {
        self.child.stdin.as_mut().unwrap().write_all(text.as_bytes()).unwrap();
    }

    fn stdout_line(&mut self, pred: impl Fn(&str) -> bool) {
        wait_line(&self.stdout, &mut self.seen, "client stdout", pred);
    }

    /// Ends the input, waits for the exit; its output: stdout's lines, then stderr's.
    fn finish(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        let mut out: Vec<String> = self
            .seen
            .iter()
            .filter_map(|l| l.strip_prefix("client stdout: ").map(str::to_string))
            .collect();
        // The process has exited: its pipes end, and so do the readers' channels.
        for lines in [&self.stdout, &self.stderr] {
            while let Ok(line) = lines.recv_timeout(soquete_tests::WAIT) {
                out.push(line);
            }
        }
        assert!(status.code().is_some(), "{out:?}");
        out
    }
}

/// What the server printed so far.
fn printed(server: &Watched) -> Vec<String> {
    server
        .seen
        .iter()
        .filter_map(|l| l.strip_prefix("stdout: ").map(str::to_string))
        .collect()
}

/// A scenario: the lines it captured, and the server's port.
type Scenario = fn() -> (Vec<String>, u16);

fn try_server() -> (Vec<String>, u16) {
    let mut server = Watched::server(&[], "warn");
    let mut ana = Client::start(server.addr, &["--name", "ana"]);
    ana.input("hello\nsecond line\n");
    ana.finish();
    server.stdout_line(|l| l.contains(" left ("));
    (printed(&server), server.addr.port())
}

fn stop_word() -> (Vec<String>, u16) {
    let server = Watched::server(&[], "warn");
    let mut client = Client::start(server.addr, &[]);
    client.input("one\nS\nthree\n");
    (client.finish(), server.addr.port())
}

fn console_client() -> (Vec<String>, u16) {
    let mut server = Watched::server(&[], "warn");
    let mut ana = Client::start(server.addr, &["--name", "ana"]);
    server.stdout_line(|l| l.ends_with("connected as \"ana\""));
    server.type_line("hello everyone");
    server.type_line("@ana just for you");
    ana.stdout_line(|l| l == "just for you");
    (ana.finish(), server.addr.port())
}

fn relay() -> (Vec<String>, u16) {
    let mut server = Watched::server(&["--relay"], "warn");
    let mut bob = Client::start(server.addr, &["--name", "bob"]);
    server.stdout_line(|l| l.ends_with("connected as \"bob\""));
    let mut ana = Client::start(server.addr, &["--name", "ana"]);
    ana.input("hi bob\n");
    bob.stdout_line(|l| l == "ana: hi bob");
    ana.finish();
    (bob.finish(), server.addr.port())
}

fn metrics() -> (Vec<String>, u16) {
    let mut server = Watched::server(&["--metrics", "127.0.0.1:0"], "soquete_host::server=info");
    let line = server.stderr_line(|l| l.contains("metrics on http://"));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap()
        .to_string();
    let mut client = Client::start(server.addr, &[]);
    client.input("one\ntwo\n");
    client.finish();
    server.stdout_line(|l| l.contains(" left ("));
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut s, &mut response).unwrap();
    let lines = response
        .lines()
        .filter(|l| l.contains("messages_received"))
        .map(str::to_string)
        .collect();
    (lines, server.addr.port())
}

/// `127.0.0.1:PORT` for every loopback address, whatever its port.
fn normalize(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("127.0.0.1:") {
        let (before, after) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(before);
        out.push_str("PORT");
        rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// The README's samples: name → (start, end) of the block's text.
fn samples(readme: &str) -> BTreeMap<String, (usize, usize)> {
    let mut found = BTreeMap::new();
    // At the start of a line: the README also mentions the marker in its text.
    let marker = "\n<!-- sample: ";
    let mut from = 0;
    while let Some(i) = readme[from..].find(marker) {
        let at = from + i + marker.len();
        let name_end = at + readme[at..].find(" -->").expect("a closed marker");
        let name = readme[at..name_end].to_string();
        let open = name_end + readme[name_end..].find("```\n").expect("a block after the marker") + 4;
        let close = open + readme[open..].find("```\n").expect("the block's end");
        found.insert(name, (open, close));
        from = close;
    }
    found
}

#[test]
fn readme_samples_are_what_the_programs_print() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let mut readme = std::fs::read_to_string(&path).unwrap();
    let blocks = samples(&readme);
    let scenarios: [(&str, Scenario); 5] = [
        ("try-server", try_server),
        ("metrics", metrics),
        ("stop-word", stop_word),
        ("console-client", console_client),
        ("relay", relay),
    ];
    assert_eq!(
        blocks.keys().collect::<Vec<_>>(),
        {
            let mut names: Vec<_> = scenarios.iter().map(|(n, _)| n).collect();
            names.sort();
            names
        },
        "every sample has a scenario, and every scenario a sample"
    );
    let write = std::env::var("SOQUETE_README").is_ok_and(|v| v == "write");
    let mut differ = Vec::new();
    // Last block first, so that the earlier offsets stay valid while writing.
    let mut captured: Vec<(usize, usize, String)> = Vec::new();
    for (name, scenario) in scenarios {
        let (lines, port) = scenario();
        let text = format!("{}\n", lines.join("\n")).replace(&format!("127.0.0.1:{port}"), "127.0.0.1:8800");
        let (open, close) = blocks[name];
        let shown = &readme[open..close];
        if normalize(shown) != normalize(&text) {
            differ.push(format!("{name}: README has\n{shown}the program printed\n{text}"));
        }
        captured.push((open, close, text));
    }
    if write {
        captured.sort_by_key(|(open, _, _)| std::cmp::Reverse(*open));
        for (open, close, text) in captured {
            readme.replace_range(open..close, &text);
        }
        std::fs::write(&path, readme).unwrap();
        return;
    }
    assert!(
        differ.is_empty(),
        "README samples drifted (SOQUETE_README=write captures them again):\n{}",
        differ.join("\n")
    );
}

/// The README's blocking poll loop is the text that `smoltcp-demo/examples/poll_loop.rs`
/// compiles (between its `README: poll-loop` markers, one level of indentation less).
#[test]
fn readme_poll_loop_is_the_compiled_example() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("smoltcp-demo/examples/poll_loop.rs")).unwrap();
    let begin = "// README: poll-loop begin\n";
    let start = example.find(begin).expect("the begin marker") + begin.len();
    let end = example.find("    // README: poll-loop end").expect("the end marker");
    let compiled: String = example[start..end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();

    let heading = readme.find("### The blocking poll loop").expect("the section");
    let open = heading + readme[heading..].find("```rust\n").expect("its code block") + "```rust\n".len();
    let close = open + readme[open..].find("```\n").expect("the block's end");
    assert_eq!(
        &readme[open..close],
        compiled,
        "the README's poll loop differs from smoltcp-demo/examples/poll_loop.rs"
    );
}
