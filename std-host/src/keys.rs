//! Device keys on the host (PROTOCOL.md §10.2): the text form of public keys, the
//! secret key file, and the allowed-keys file that maps each allowed device's public key
//! to its name.
//!
//! * Public key text: `soquete-pk:` followed by the 32 bytes in standard base64 with
//!   padding (44 characters), e.g. `soquete-pk:hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=`.
//! * Secret key file: the line `soquete secret key v1`, then the 32 secret bytes in
//!   standard base64 on one line. Created with mode 0600 and never overwritten; a file
//!   that group or others can read is refused, as ssh does.
//! * Allowed-keys file: one device per line, `PUBLIC_KEY NAME`; `#` starts a comment,
//!   blank lines are ignored; a key or a name listed twice is an error.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use soquete_core::secure::{PublicKey, SecretKey, KEY_LEN};

/// What starts a public key in its text form.
pub const PUBLIC_PREFIX: &str = "soquete-pk:";

/// Why a public key file is not a secret key file.
const PUBLIC_NOT_SECRET: &str = "it holds a public key (soquete-pk:…), not the secret key that soquete keygen wrote";

/// The first line of a secret key file.
pub const SECRET_HEADER: &str = "soquete secret key v1";

/// Longest device name, in bytes: what a HELLO can carry (PROTOCOL.md §3.2).
pub const MAX_NAME_LEN: usize = 32;

/// Length of 32 bytes in padded base64.
const B64_LEN: usize = 44;

/// Why a key's text could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTextError {
    /// The text does not start with [`PUBLIC_PREFIX`].
    MissingPrefix,
    /// What follows is not 32 bytes in padded standard base64.
    BadBase64,
}

impl fmt::Display for KeyTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyTextError::MissingPrefix => {
                write!(f, "a public key starts with {PUBLIC_PREFIX:?}")
            }
            KeyTextError::BadBase64 => write!(
                f,
                "a key is {B64_LEN} characters of base64 (32 bytes), as `soquete keygen` prints it"
            ),
        }
    }
}

impl std::error::Error for KeyTextError {}

/// The text form of a public key: [`PUBLIC_PREFIX`] and the base64 of its bytes.
pub fn public_to_text(key: &PublicKey) -> String {
    format!("{PUBLIC_PREFIX}{}", STANDARD.encode(key.as_bytes()))
}

/// A public key from its text form (surrounding whitespace is not allowed here).
///
/// # Errors
/// [`KeyTextError`] when `text` is not [`public_to_text`]'s form.
pub fn public_from_text(text: &str) -> Result<PublicKey, KeyTextError> {
    let b64 = text.strip_prefix(PUBLIC_PREFIX).ok_or(KeyTextError::MissingPrefix)?;
    Ok(PublicKey::from_bytes(decode32(b64)?))
}

fn decode32(b64: &str) -> Result<[u8; KEY_LEN], KeyTextError> {
    if b64.len() != B64_LEN {
        return Err(KeyTextError::BadBase64);
    }
    let bytes = STANDARD.decode(b64).map_err(|_| KeyTextError::BadBase64)?;
    bytes.try_into().map_err(|_| KeyTextError::BadBase64)
}

/// Why a secret key could not be made, written or read.
#[derive(Debug)]
pub enum KeyFileError {
    /// The OS random source failed.
    Random(getrandom::Error),
    /// A file already exists at the path: keys are never overwritten.
    Exists(PathBuf),
    /// Reading or writing the file failed.
    Io(PathBuf, io::Error),
    /// The file can be read by its group or others (mode shown).
    TooOpen(PathBuf, u32),
    /// The file is not a secret key file.
    Format(PathBuf, &'static str),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Random(e) => write!(f, "the system's random source failed: {e}"),
            KeyFileError::Exists(p) => write!(
                f,
                "{} already exists: keys are never overwritten (remove it first, or choose another --out)",
                p.display()
            ),
            KeyFileError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            KeyFileError::TooOpen(p, mode) => write!(
                f,
                "{}: secret key file has mode {mode:04o}, readable by others (run `chmod 600 {}`)",
                p.display(),
                p.display()
            ),
            KeyFileError::Format(p, why) => {
                write!(f, "{}: not a soquete secret key file: {why}", p.display())
            }
        }
    }
}

/// No `source`: the messages above already end with the cause, which a chain printed
/// with `{:#}` would repeat.
impl std::error::Error for KeyFileError {}

/// A new secret key: 32 bytes from the operating system's CSPRNG.
///
/// # Errors
/// [`KeyFileError::Random`] when the OS random source fails.
pub fn generate() -> Result<SecretKey, KeyFileError> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes).map_err(KeyFileError::Random)?;
    Ok(SecretKey::from_bytes(bytes))
}

/// The contents of a secret key file for `key`.
pub fn secret_to_file_text(key: &SecretKey) -> String {
    format!("{SECRET_HEADER}\n{}\n", STANDARD.encode(key.as_bytes()))
}

/// A secret key from a secret key file's contents.
///
/// # Errors
/// The reason, when the text is not [`secret_to_file_text`]'s form.
pub fn secret_from_file_text(text: &str) -> Result<SecretKey, &'static str> {
    if text.trim_start().starts_with(PUBLIC_PREFIX) {
        return Err(PUBLIC_NOT_SECRET);
    }
    let mut lines = text.lines();
    if lines.next() != Some(SECRET_HEADER) {
        return Err("the first line is not \"soquete secret key v1\"");
    }
    let b64 = lines.next().ok_or("the key line is missing")?;
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("text after the key line");
    }
    decode32(b64.trim())
        .map(SecretKey::from_bytes)
        .map_err(|_| "the key line is not 44 characters of base64 (32 bytes)")
}

/// Writes `key` to a new file at `path`, created with mode 0600: refuses an existing
/// path (no file is replaced, not even through a symbolic link).
///
/// # Errors
/// [`KeyFileError::Exists`] when something is at `path`, [`KeyFileError::Io`] otherwise.
pub fn write_secret(path: &Path, key: &SecretKey) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => KeyFileError::Exists(path.to_path_buf()),
            _ => KeyFileError::Io(path.to_path_buf(), e),
        })?;
    let written = file
        .write_all(secret_to_file_text(key).as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        // A truncated key file would fail later, far from the cause: leave none.
        drop(file);
        let _ = fs::remove_file(path);
        return Err(KeyFileError::Io(path.to_path_buf(), e));
    }
    Ok(())
}

/// Reads a secret key file, refusing one that its group or others can read.
///
/// # Errors
/// [`KeyFileError::Io`], [`KeyFileError::TooOpen`] or [`KeyFileError::Format`].
pub fn read_secret(path: &Path) -> Result<SecretKey, KeyFileError> {
    let io_err = |e| KeyFileError::Io(path.to_path_buf(), e);
    let mode = fs::metadata(path).map_err(io_err)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        // A public key file given by mistake: say so rather than ask to chmod it.
        if fs::read_to_string(path).is_ok_and(|text| text.trim_start().starts_with(PUBLIC_PREFIX)) {
            return Err(KeyFileError::Format(path.to_path_buf(), PUBLIC_NOT_SECRET));
        }
        return Err(KeyFileError::TooOpen(path.to_path_buf(), mode));
    }
    let text = fs::read_to_string(path).map_err(io_err)?;
    secret_from_file_text(&text).map_err(|why| KeyFileError::Format(path.to_path_buf(), why))
}

/// Why an allowed-keys file could not be read: the line (from 1) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedKeysError {
    /// The line, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub kind: AllowedKeysErrorKind,
}

/// What is wrong with a line of an allowed-keys file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedKeysErrorKind {
    /// The key is not a public key's text form.
    BadKey(KeyTextError),
    /// The key has no name after it.
    MissingName,
    /// The name is longer than [`MAX_NAME_LEN`] bytes or holds a control character.
    BadName,
    /// Something other than a comment follows the name.
    TrailingText,
    /// The key is already listed, on the line given.
    DuplicateKey(usize),
    /// The name is already given to another key, on the line given.
    DuplicateName(usize),
}

impl fmt::Display for AllowedKeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            AllowedKeysErrorKind::BadKey(e) => write!(f, "{e}"),
            AllowedKeysErrorKind::MissingName => {
                write!(f, "a key needs a name after it (PUBLIC_KEY NAME)")
            }
            AllowedKeysErrorKind::BadName => {
                write!(f, "a name is at most {MAX_NAME_LEN} bytes, without control characters")
            }
            AllowedKeysErrorKind::TrailingText => {
                write!(f, "only a # comment may follow the name")
            }
            AllowedKeysErrorKind::DuplicateKey(first) => {
                write!(f, "this key is already listed on line {first}")
            }
            AllowedKeysErrorKind::DuplicateName(first) => {
                write!(f, "this name is already given to the key on line {first}")
            }
        }
    }
}

impl std::error::Error for AllowedKeysError {}

/// The devices a server lets in: each allowed public key with its name.
///
/// Parsing is one pass over the text, so the server can read the file again whenever
/// it changes (on SIGHUP) and swap the whole map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedKeys {
    /// In file order, for [`AllowedKeys::to_text`].
    entries: Vec<(PublicKey, String)>,
    by_key: HashMap<PublicKey, usize>,
    by_name: HashMap<String, usize>,
}

impl AllowedKeys {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a device.
    ///
    /// # Errors
    /// [`AllowedKeysErrorKind::BadName`] for a name [`AllowedKeys::parse`] would not
    /// read back, and the duplicate kinds (with the 1-based position of the first) when
    /// the key or the name is already listed.
    pub fn insert(&mut self, key: PublicKey, name: &str) -> Result<(), AllowedKeysErrorKind> {
        if !valid_name(name) {
            return Err(AllowedKeysErrorKind::BadName);
        }
        if let Some(&i) = self.by_key.get(&key) {
            return Err(AllowedKeysErrorKind::DuplicateKey(i + 1));
        }
        if let Some(&i) = self.by_name.get(name) {
            return Err(AllowedKeysErrorKind::DuplicateName(i + 1));
        }
        self.by_key.insert(key, self.entries.len());
        self.by_name.insert(name.to_owned(), self.entries.len());
        self.entries.push((key, name.to_owned()));
        Ok(())
    }

    /// The name of an allowed key, or `None` for a key not listed.
    pub fn name(&self, key: &PublicKey) -> Option<&str> {
        let &i = self.by_key.get(key)?;
        self.entries.get(i).map(|(_, n)| n.as_str())
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no device is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The devices, in the order they were listed.
    pub fn iter(&self) -> impl Iterator<Item = (&PublicKey, &str)> {
        self.entries.iter().map(|(k, n)| (k, n.as_str()))
    }

    /// The list as an allowed-keys file: one `PUBLIC_KEY NAME` line per device.
    pub fn to_text(&self) -> String {
        self.entries
            .iter()
            .map(|(k, n)| format!("{} {n}\n", public_to_text(k)))
            .collect()
    }

    /// Reads an allowed-keys file's text.
    ///
    /// # Errors
    /// The first bad line, with its number and what is wrong.
    pub fn parse(text: &str) -> Result<Self, AllowedKeysError> {
        let mut keys = AllowedKeys::new();
        // The line of each entry, to name the first line of a duplicate.
        let mut lines = Vec::new();
        for (line, content) in (1..).zip(text.lines()) {
            let err = |kind| AllowedKeysError { line, kind };
            let content = content.split_once('#').map_or(content, |(before, _)| before);
            let mut words = content.split_whitespace();
            let Some(key) = words.next() else { continue };
            let key = public_from_text(key).map_err(|e| err(AllowedKeysErrorKind::BadKey(e)))?;
            let name = words.next().ok_or_else(|| err(AllowedKeysErrorKind::MissingName))?;
            if words.next().is_some() {
                return Err(err(AllowedKeysErrorKind::TrailingText));
            }
            let line_of = |entry: usize| entry.checked_sub(1).and_then(|i| lines.get(i)).copied().unwrap_or(0);
            keys.insert(key, name).map_err(|kind| {
                err(match kind {
                    AllowedKeysErrorKind::DuplicateKey(e) => AllowedKeysErrorKind::DuplicateKey(line_of(e)),
                    AllowedKeysErrorKind::DuplicateName(e) => AllowedKeysErrorKind::DuplicateName(line_of(e)),
                    other => other,
                })
            })?;
            lines.push(line);
        }
        Ok(keys)
    }

    /// Reads an allowed-keys file.
    ///
    /// # Errors
    /// A message naming the file, and the line for a bad line.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

impl FromStr for AllowedKeys {
    type Err = AllowedKeysError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A name the file format can carry: 1–32 bytes, no whitespace, no `#`, no control
/// character.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> PublicKey {
        PublicKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn spec_example_of_rfc7748_key() {
        // PROTOCOL.md §10.2's example: RFC 7748 §6.1, Alice's keys.
        let secret = SecretKey::from_bytes(
            STANDARD
                .decode("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        assert_eq!(
            public_to_text(&secret.public_key()),
            "soquete-pk:hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
        );
        assert_eq!(
            secret_to_file_text(&secret),
            "soquete secret key v1\ndwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n"
        );
    }

    #[test]
    fn public_text_rejects_other_forms() {
        let text = public_to_text(&key(7));
        assert_eq!(public_from_text(&text), Ok(key(7)));
        assert_eq!(
            public_from_text(&text[PUBLIC_PREFIX.len()..]),
            Err(KeyTextError::MissingPrefix)
        );
        assert_eq!(public_from_text(&text[..text.len() - 1]), Err(KeyTextError::BadBase64));
        assert_eq!(
            public_from_text(&format!("{PUBLIC_PREFIX}{}", "!".repeat(44))),
            Err(KeyTextError::BadBase64)
        );
    }

    #[test]
    fn secret_file_text_round_trips() {
        let secret = SecretKey::from_bytes([9; KEY_LEN]);
        let text = secret_to_file_text(&secret);
        assert!(text.starts_with("soquete secret key v1\n"));
        let back = secret_from_file_text(&text).unwrap();
        assert_eq!(back.as_bytes(), secret.as_bytes());
    }

    #[test]
    fn secret_file_text_rejects_other_files() {
        let good = secret_to_file_text(&SecretKey::from_bytes([9; KEY_LEN]));
        assert!(secret_from_file_text("").is_err());
        assert!(secret_from_file_text(&good.replace("v1", "v2")).is_err());
        assert!(secret_from_file_text(SECRET_HEADER).is_err());
        assert!(secret_from_file_text(&format!("{good}more\n")).is_err());
        // A public key pasted in place of the secret one.
        let public = public_to_text(&key(1));
        assert!(secret_from_file_text(&format!("{SECRET_HEADER}\n{public}\n")).is_err());
        // A public key file given for the secret one, whatever its mode.
        assert_eq!(
            secret_from_file_text(&format!("{public}\n")).err(),
            Some(PUBLIC_NOT_SECRET)
        );
        let dir = std::env::temp_dir().join(format!("soquete-keys-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.pub");
        fs::write(&path, format!("{public}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_secret(&path).unwrap_err().to_string();
        assert!(err.ends_with(PUBLIC_NOT_SECRET), "{err}");
        // The cause of a failed read is said once, with `{:#}` too.
        let missing = dir.join("missing.key");
        let err = format!("{:#}", anyhow::Error::new(read_secret(&missing).unwrap_err()));
        assert_eq!(err.matches("No such file").count(), 1, "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parse_skips_comments_and_blank_lines() {
        let text = format!(
            "# devices\n\n  {} sensor-1   # in the attic\n{}\tpump\n",
            public_to_text(&key(1)),
            public_to_text(&key(2))
        );
        let keys = AllowedKeys::parse(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.name(&key(1)), Some("sensor-1"));
        assert_eq!(keys.name(&key(2)), Some("pump"));
        assert_eq!(keys.name(&key(3)), None);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let k1 = public_to_text(&key(1));
        let k2 = public_to_text(&key(2));
        let cases = [
            (format!("# x\n{k1}\n"), 2, AllowedKeysErrorKind::MissingName),
            (
                "\nnot-a-key ana\n".to_string(),
                2,
                AllowedKeysErrorKind::BadKey(KeyTextError::MissingPrefix),
            ),
            (format!("{k1} ana bob\n"), 1, AllowedKeysErrorKind::TrailingText),
            (format!("{k1} {}\n", "n".repeat(33)), 1, AllowedKeysErrorKind::BadName),
            (
                format!("{k1} ana\n# c\n\n{k1} bob\n"),
                4,
                AllowedKeysErrorKind::DuplicateKey(1),
            ),
            (
                format!("# c\n{k1} ana\n{k2} ana\n"),
                3,
                AllowedKeysErrorKind::DuplicateName(2),
            ),
        ];
        for (text, line, kind) in cases {
            assert_eq!(
                AllowedKeys::parse(&text),
                Err(AllowedKeysError { line, kind }),
                "{text:?}"
            );
        }
        let e = AllowedKeys::parse(&format!("{k1} ana\n{k1} bob\n")).unwrap_err();
        assert_eq!(e.to_string(), "line 2: this key is already listed on line 1");
    }

    #[test]
    fn insert_refuses_names_the_file_cannot_carry() {
        let mut keys = AllowedKeys::new();
        for name in ["", "a b", "a#b", "a\u{7}", &"x".repeat(33)] {
            assert_eq!(
                keys.insert(key(1), name),
                Err(AllowedKeysErrorKind::BadName),
                "{name:?}"
            );
        }
        keys.insert(key(1), "é-32-bytes-are-fine").unwrap();
    }

    fn name() -> impl Strategy<Value = String> {
        "[^\\s#\\p{Cc}]{1,8}".prop_filter("at most 32 bytes", |n| n.len() <= MAX_NAME_LEN)
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(
            devices in proptest::collection::vec((any::<[u8; KEY_LEN]>(), name()), 0..16)
        ) {
            let mut keys = AllowedKeys::new();
            for (k, n) in &devices {
                // Duplicates the generator happens to make are left out.
                let _ = keys.insert(PublicKey::from_bytes(*k), n);
            }
            let back = AllowedKeys::parse(&keys.to_text()).unwrap();
            prop_assert_eq!(&back, &keys);
            for (k, n) in keys.iter() {
                prop_assert_eq!(back.name(k), Some(n));
            }
        }

        #[test]
        fn public_text_round_trips(bytes in any::<[u8; KEY_LEN]>()) {
            let k = PublicKey::from_bytes(bytes);
            prop_assert_eq!(public_from_text(&public_to_text(&k)), Ok(k));
        }

        #[test]
        fn parse_never_panics(text in "(soquete-pk:|[A-Za-z0-9+/=]{0,50}|[ #\t\n]|\\PC){0,40}") {
            let _ = AllowedKeys::parse(&text);
        }
    }
}
