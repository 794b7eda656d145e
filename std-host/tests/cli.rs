//! The binary's command line (this test also makes `cargo test --workspace` build the
//! `soquete` binary that the end-to-end tests in `tests/` run).

use std::process::Command;

#[test]
fn help_lists_both_subcommands() {
    let out = Command::new(env!("CARGO_BIN_EXE_soquete"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("server") && text.contains("client"), "{text}");
    assert!(
        text.contains("soquete completions SHELL") && text.contains("soquete man"),
        "{text}"
    );
}

#[test]
fn bad_listen_address_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_soquete"))
        .args(["server", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}

/// `soquete server ARGS…` run with the console off; its exit code and standard error.
fn server_usage(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_soquete"))
        .args(["server", "--no-console", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn impossible_server_values_are_usage_errors() {
    for (args, flag, says) in [
        (&["--max-clients", "0"][..], "--max-clients", "at least 1"),
        (&["--idle-timeout", "5ms"][..], "--idle-timeout", "at least 1s"),
        (&["--idle-timeout", "0.5"][..], "--idle-timeout", "or 0 to disable"),
        (&["--resume-window", "10ms"][..], "--resume-window", "at least 100ms"),
        (&["--line-gap", "100us"][..], "--line-gap", "at least 1ms"),
        (
            &["--forward", "127.0.0.1:1", "--forward-duplicate-window", "0"][..],
            "--forward-duplicate-window",
            "at least 1s",
        ),
    ] {
        let (code, stderr) = server_usage(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn a_bare_number_is_seconds_and_the_help_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_soquete"))
        .args(["server", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for flag in ["--idle-timeout", "--line-gap", "--resume-window"] {
        let doc = help.split(flag).nth(1).unwrap_or_default();
        let doc = doc.split(" --").next().unwrap_or_default();
        assert!(doc.contains("a bare number is seconds"), "{flag}: {doc}");
    }
    let (code, stderr) = server_usage(&["--idle-timeout", "5", "--resume-window", "0", "--max-clients", "x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--max-clients"),
        "only the bad value is refused: {stderr}"
    );
}
