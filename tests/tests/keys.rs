//! `soquete keygen` and `soquete pubkey` as a user runs them, and the keys they make
//! used for a handshake of the secure layer (PROTOCOL.md §10).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use soquete_core::secure::{self, Error, Event, PublicKey, SecretKey, Secure};
use soquete_core::Instant;
use soquete_host::keys::{self, AllowedKeys};
use soquete_tests::soquete;

/// A fresh, empty directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("keys-{test}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    soquete().args(args).output().expect("run soquete")
}

/// `soquete keygen --out PATH`, which must succeed; the public key it printed.
fn keygen(path: &Path) -> String {
    let out = run(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "keygen failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.strip_suffix('\n').expect("one line");
    assert!(!line.contains('\n'), "one line: {stdout:?}");
    line.to_owned()
}

/// `soquete pubkey PATH`, which must succeed.
fn pubkey(path: &Path) -> String {
    let out = run(&["pubkey", path.to_str().unwrap()]);
    assert!(out.status.success(), "pubkey failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

#[test]
fn keygen_writes_a_0600_file_and_prints_its_public_key() {
    let dir = scratch("keygen");
    let path = dir.join("device.key");
    let public = keygen(&path);

    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("soquete secret key v1\n"), "{text:?}");
    assert!(public.starts_with("soquete-pk:") && public.len() == 11 + 44, "{public}");

    let secret = keys::read_secret(&path).unwrap();
    assert_eq!(keys::public_to_text(&secret.public_key()), public);
    assert_eq!(pubkey(&path), public);

    // A second key is another key.
    assert_ne!(keygen(&dir.join("other.key")), public);
}

#[test]
fn keygen_refuses_to_overwrite() {
    let dir = scratch("overwrite");
    let path = dir.join("device.key");
    let public = keygen(&path);
    let before = fs::read(&path).unwrap();

    let out = run(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no key printed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(fs::read(&path).unwrap(), before, "file unchanged");
    assert_eq!(pubkey(&path), public);
}

#[test]
fn keygen_into_a_missing_folder_says_where() {
    let dir = scratch("missing-folder");
    let path = dir.join("no-such-folder").join("device.key");
    let out = run(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no key printed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(!path.exists());
}

#[test]
fn pubkey_refuses_a_file_others_can_read_and_a_file_that_is_no_key() {
    let dir = scratch("pubkey-refuses");
    let path = dir.join("device.key");
    keygen(&path);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["pubkey", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("chmod 600"), "{stderr}");

    let other = dir.join("notes.txt");
    fs::write(&other, "hello\n").unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&["pubkey", other.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("not a soquete secret key file"), "{stderr}");
}

fn drain(s: &mut Secure<[u8; 1024], [u8; 1024]>) -> Vec<u8> {
    let out = s.poll_transmit().to_vec();
    s.advance_transmit(out.len());
    out
}

fn take_plain(s: &mut Secure<[u8; 1024], [u8; 1024]>) -> Vec<u8> {
    let out = s.poll_plaintext().to_vec();
    s.advance_plaintext(out.len()).unwrap();
    out
}

const T0: Instant = Instant::ZERO;

/// One handshake: the client with `client` and expecting `server_public`, the server
/// with `server`. The server accepts the client only if `allowed` names its key.
fn handshake(
    client: &SecretKey,
    server_public: PublicKey,
    server: &SecretKey,
    allowed: &AllowedKeys,
) -> Result<String, Error> {
    let cfg = secure::Config::DEFAULT;
    let mut c = Secure::client(cfg, client, server_public, [3; 32], [0; 1024], [0; 1024], T0)?;
    let mut s = Secure::server(cfg, server, [4; 32], [0; 1024], [0; 1024], T0)?;
    c.seal(b"hello")?;
    s.handle_input(T0, &drain(&mut c))?;
    let Some(Event::ClientKey(key)) = s.poll_event() else {
        panic!("no client key");
    };
    let name = allowed.name(&key).expect("an allowed key").to_owned();
    s.accept()?;
    assert_eq!(take_plain(&mut s), b"hello");
    s.seal(b"welcome")?;
    c.handle_input(T0, &drain(&mut s))?;
    assert_eq!(c.poll_event(), Some(Event::Established));
    assert_eq!(take_plain(&mut c), b"welcome");
    s.handle_input(T0, &drain(&mut c))?;
    assert_eq!(s.poll_event(), Some(Event::Established));
    Ok(name)
}

#[test]
fn generated_keys_complete_a_secure_handshake() {
    let dir = scratch("handshake");
    let (server_path, device_path) = (dir.join("server.key"), dir.join("sensor.key"));
    let server_public = keygen(&server_path);
    let device_public = keygen(&device_path);

    // The operator lists the device under a name, and gives the server's key to the device.
    let allowed_path = dir.join("allowed");
    fs::write(&allowed_path, format!("# devices\n{device_public} sensor-1\n")).unwrap();
    let allowed = AllowedKeys::load(&allowed_path).unwrap();
    let server_public = keys::public_from_text(&server_public).unwrap();

    let server = keys::read_secret(&server_path).unwrap();
    let device = keys::read_secret(&device_path).unwrap();
    assert_eq!(
        handshake(&device, server_public, &server, &allowed),
        Ok("sensor-1".to_owned())
    );

    // A server holding another key (a man in the middle) cannot even read the
    // client's first message: it was encrypted to the key the client was given.
    let impostor_path = dir.join("impostor.key");
    keygen(&impostor_path);
    let impostor = keys::read_secret(&impostor_path).unwrap();
    assert_eq!(
        handshake(&device, server_public, &impostor, &allowed),
        Err(Error::HandshakeFailed)
    );
}
