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
