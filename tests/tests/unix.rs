//! End-to-end tests of the Unix conventions of the real `soquete` binary: the forms
//! `--listen` takes, and the shell completions and man pages it prints.

use std::time::Duration;

use soquete_tests::{messages_of, soquete, ClientProcess as Client, Server, WAIT};

/// Upper bound of any wait in these tests.
const LIMIT: Duration = Duration::from_secs(15);

/// A client of the binary sends `lines` to `server` and exits 0; the server shows them.
fn serves_a_client(server: &mut Server, name: &str) {
    let mut client = Client::start(&server.addr.to_string(), &["--name", name], LIMIT);
    let _ = client.feed(b"one\ntwo\n".to_vec());
    let (code, _, stderr) = client.wait();
    assert_eq!(code, 0, "client failed: {stderr}");
    let id = server.named_session(name);
    server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains("closed"));
    assert_eq!(messages_of(&server.seen, &id), ["one", "two"]);
}

#[test]
fn listen_on_a_host_name_serves_a_client() {
    let mut server = Server::start_on("localhost:0", &[]);
    // The "listening on" line names the address bound, one of those `localhost` has.
    assert!(server.addr.ip().is_loopback(), "listening on {}", server.addr);
    assert_ne!(server.addr.port(), 0);
    serves_a_client(&mut server, "ana");
    server.stop();
    assert!(server.finish(WAIT).success());
}

#[test]
fn listen_on_a_bare_port_means_loopback() {
    let mut server = Server::start_on("0", &[]);
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    serves_a_client(&mut server, "bob");
}

#[test]
fn listen_in_a_bad_form_is_a_usage_error_with_examples() {
    for bad in ["localhost", "::1:8800", ":8800", "localhost:http", "80000"] {
        let out = soquete()
            .args(["server", "--listen", bad])
            .output()
            .expect("run soquete server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--listen {bad}: {stderr}");
        for example in ["localhost:8800", "[::]:8800", "8800"] {
            assert!(stderr.contains(example), "--listen {bad}: no {example} in {stderr}");
        }
        assert!(out.stdout.is_empty(), "--listen {bad} printed to stdout");
    }
}

#[test]
fn listen_on_an_address_in_use_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = soquete()
        .args(["server", "--listen", &addr])
        .output()
        .expect("run soquete server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
    assert!(stderr.contains("another server"), "{stderr}");
}

/// Runs `soquete ARGS`, which must succeed; its standard output.
fn stdout_of(args: &[&str]) -> String {
    let out = soquete().args(args).output().expect("run soquete");
    assert!(
        out.status.success(),
        "soquete {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn completions_for_every_shell_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for word in ["server", "client", "listen", "connect"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = soquete().args(["completions", "tcsh"]).output().expect("run soquete");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_document_the_subcommands() {
    let main = stdout_of(&["man"]);
    assert!(main.contains(".TH soquete 1"), "{main}");
    assert!(
        main.contains("soquete\\-server(1)") && main.contains("soquete\\-client(1)"),
        "{main}"
    );
    let server = stdout_of(&["man", "server"]);
    assert!(server.contains(".TH soquete-server 1"), "{server}");
    assert!(
        server.contains("\\-\\-listen") && server.contains("\\-\\-max\\-clients"),
        "{server}"
    );
    let client = stdout_of(&["man", "client"]);
    assert!(client.contains(".TH soquete-client 1"), "{client}");
    assert!(
        client.contains("\\-\\-connect") && client.contains("Exit status"),
        "{client}"
    );
    // Every page the main page names can be printed (soquete-keygen(1) once could not).
    let named: Vec<&str> = main
        .split("soquete\\-")
        .skip(1)
        .filter_map(|rest| rest.split_once("(1)").map(|(name, _)| name))
        .filter(|name| name.chars().all(|c| c.is_ascii_lowercase()))
        .collect();
    assert!(named.len() >= 4, "{named:?}");
    for name in named {
        let page = stdout_of(&["man", name]);
        assert!(page.contains(&format!(".TH soquete-{name} 1")), "{name}: {page}");
    }
}
