//! The server's console: lines typed at `soquete server` go to its clients (README
//! "The server talks back", PROTOCOL.md §9.5). The real binary, its standard input
//! a pipe; readiness is always a printed line or a message received.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use soquete_tests::watched::{lines_of, wait_line, Watched};
use soquete_tests::{plain, soquete, BinClient};

/// Pumps `client` until it has received `n` messages; returns them as text.
fn received(client: &mut BinClient, n: usize) -> Vec<String> {
    client.wait("messages from the server", |c| c.received.len() >= n);
    client
        .received
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

#[test]
fn console_lines_go_to_all_to_one_by_id_and_by_name() {
    let mut server = Watched::server(&[], "warn");
    let mut ana = BinClient::connect(server.addr, "ana");
    let mut bob = BinClient::connect(server.addr, "bob");
    server.stdout_line(|l| l.ends_with("connected as \"ana\""));
    let bob_line = server.stdout_line(|l| l.ends_with("connected as \"bob\""));
    let bob_id = bob_line.split(' ').next().unwrap().to_string();

    server.type_line("hello all");
    server.type_line(&format!("{bob_id} just bob"));
    server.type_line("@ana just ana");
    server.type_line("\\#1 not an address");
    server.type_line("#99 nobody");
    server.stderr_line(|l| l.contains("console: no session #99 is connected; line not sent"));
    server.type_line("@carol nobody");
    server.stderr_line(|l| l.contains("console: no client named \"carol\" is connected; line not sent"));
    server.type_line("end");

    assert_eq!(
        received(&mut ana, 4),
        ["hello all", "just ana", "#1 not an address", "end"]
    );
    assert_eq!(
        received(&mut bob, 4),
        ["hello all", "just bob", "#1 not an address", "end"]
    );
    // Acknowledged like any message: the session's counters say so.
    ana.wait("its acknowledgements out", |c| c.session.stats().received == 4);
    assert!(matches!(ana.close(), soquete_core::Closure::Orderly { .. }));
}

#[test]
fn plain_text_peer_receives_console_lines() {
    let mut server = Watched::server(&[], "warn");
    let mut peer = plain(server.addr);
    peer.write_all(b"hi\n").unwrap();
    server.stdout_line(|l| l.ends_with(": hi"));
    server.type_line("welcome, nc user");
    let mut reader = BufReader::new(peer.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "welcome, nc user\n");
}

#[test]
fn a_line_for_nobody_or_too_long_is_said_and_the_end_of_input_ends_only_the_console() {
    let mut server = Watched::server(&[], "soquete_host::server=info");
    server.type_line("anyone?");
    server.stderr_line(|l| l.contains("console: no client is connected; line not sent"));
    server.type_line(&"x".repeat(5000));
    server.stderr_line(|l| l.contains("console: a line of 5000 bytes is longer than 4096 bytes; not sent"));
    server.close_console();
    server.stderr_line(|l| l.contains("console: end of input; the server goes on"));
    // Still serving.
    let mut late = BinClient::connect(server.addr, "late");
    late.send(b"still here");
    late.wait("the acknowledgement", |c| c.acked == 1);
    server.stdout_line(|l| l.ends_with(": still here"));
}

#[test]
fn soquete_client_prints_what_it_receives_and_counts_it() {
    let mut server = Watched::server(&[], "warn");
    let mut client = soquete()
        .args(["client", "--timeout", "5s", "--name", "cli", "--connect"])
        .arg(server.addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(client.stdout.take().unwrap());
    let err = lines_of(client.stderr.take().unwrap());
    let mut seen = Vec::new();
    server.stdout_line(|l| l.ends_with("connected as \"cli\""));
    server.type_line("one");
    server.type_line("two \u{1b}[31m");
    wait_line(&out, &mut seen, "client stdout", |l| l == "one");
    // Shown escaped, like the server shows what it receives.
    wait_line(&out, &mut seen, "client stdout", |l| l == "two \\e[31m");
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"back\n").unwrap();
    drop(stdin);
    server.stdout_line(|l| l.ends_with(": back"));
    let summary = wait_line(&err, &mut seen, "client stderr", |l| l.starts_with("sent "));
    assert_eq!(summary, "sent 1 message, 1 acknowledged, 2 received");
    assert!(client.wait().unwrap().success());
}
