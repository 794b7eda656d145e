//! The secure mode on a socket (PROTOCOL.md §10): [`Stream`], a non-blocking TCP
//! stream that the server and the client read and write as before, and that runs the
//! core's [`Secure`] layer beneath their session when the connection is a secure one.
//!
//! * Reads return the session's plaintext: ciphertext from the socket goes into the
//!   layer, decrypted bytes come out. A layer failure (a record that does not
//!   authenticate, a refused key, a server that cannot prove its key) is an
//!   [`io::ErrorKind::InvalidData`] error whose source is a [`SecureError`]; whatever
//!   the layer still had to say (an ALERT) is written first.
//! * Writes seal the session's bytes into records. [`Write::flush`] writes out what
//!   the layer queued by itself (the client's key confirmation, an ALERT); callers
//!   flush after each write turn.
//! * A server's stream starts undecided: the first four bytes tell a secure peer from
//!   a binary or plain-text one ([`secure::detect`]); the others' bytes pass through
//!   untouched.
//! * The server decides on a client's key from its [`ServerAuth`]'s allowed keys; the
//!   authenticated name is then in the stream's [`Identity`] cell before any of the
//!   client's bytes reach the session.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::rc::Rc;

use log::{debug, warn};
use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use soquete_core::secure::{self, Curve, Detection, Event, PublicKey, SecretKey, Secure, KEY_LEN, MAGIC};
use soquete_core::Instant;

use crate::keys::{self, AllowedKeys};
use crate::pump;
use crate::time;

pub use soquete_core::secure::{Alert, Error as SecureError};

/// The layer's receive buffer: one whole record. It sets the `max_record` announced to
/// the peer (16,365 bytes).
const LAYER_BUF: usize = 16 * 1024;
/// A server's transmit buffer: it sends acknowledgements and control frames, few
/// bytes, so records to it stay small and idle connections cheap.
const SERVER_TX: usize = 4 * 1024;
/// A client's transmit buffer: many messages sealed per write.
const CLIENT_TX: usize = 64 * 1024;
/// Ciphertext read from the socket and not yet taken by the layer.
const STAGING: usize = 8 * 1024;

/// Secure handshakes a server has in progress at most (from the secure magic to the
/// client's first data record). Each costs the server four X25519 operations; a
/// connection beyond the limit is refused with SERVER_FULL before any of them.
pub const MAX_HANDSHAKES: usize = 256;

/// X25519 on the host: AWS-LC's, about twice as fast as the core's portable ladder
/// here (same function, RFC 7748; `tests` compare the two on random and edge inputs).
///
/// AWS-LC takes a secret key as a parsed key, and parsing one computes its public key
/// (a base point multiplication, a fifth of an X25519 here). Two kinds of secret are
/// parsed once instead of at every use: a static key given to [`Fast::keep`] (the
/// server's, a client's own), kept for the process; and the ephemeral key of the
/// handshake in progress, which the handshake uses twice (`ee` and `se` on a server,
/// `es` and `ee` on a client), kept between its two uses only (the second use, the
/// next X25519 with another key, or the end of the handshake drops it).
#[derive(Debug)]
pub enum Fast {}

/// Static keys kept parsed ([`Fast::keep`]), found by their bytes.
static PARSED: std::sync::RwLock<Vec<([u8; KEY_LEN], aws_lc_rs::agreement::PrivateKey)>> =
    std::sync::RwLock::new(Vec::new());

thread_local! {
    /// The last key parsed for a single use, until its second use.
    static LAST: RefCell<Option<([u8; KEY_LEN], aws_lc_rs::agreement::PrivateKey)>> = const { RefCell::new(None) };
}

impl Fast {
    /// Static keys kept parsed at most; [`Fast::keep`] keeps no more.
    pub const KEEP_MAX: usize = 16;

    /// Parses `secret` once for every later X25519 with it. `false` if
    /// [`Fast::KEEP_MAX`] keys are kept already (it is then parsed at every use).
    pub fn keep(secret: &SecretKey) -> bool {
        use aws_lc_rs::agreement::{PrivateKey, X25519};
        let Ok(mut kept) = PARSED.write() else {
            return false;
        };
        if kept.iter().any(|(k, _)| k == secret.as_bytes()) {
            return true;
        }
        if kept.len() >= Fast::KEEP_MAX {
            return false;
        }
        let Ok(key) = PrivateKey::from_private_key(&X25519, secret.as_bytes()) else {
            return false;
        };
        kept.push((*secret.as_bytes(), key));
        true
    }

    /// Drops this thread's key parsed for a second use, if any: a handshake that
    /// ended before that use (refused, failed, abandoned) leaves no ephemeral key behind.
    pub fn forget() {
        LAST.with_borrow_mut(|last| *last = None);
    }

    /// Whether this thread holds `secret` parsed for its second use.
    #[cfg(test)]
    fn holds(secret: &[u8; KEY_LEN]) -> bool {
        LAST.with_borrow(|last| last.as_ref().is_some_and(|(k, _)| k == secret))
    }

    /// Whether `secret` is kept parsed.
    pub fn is_kept(secret: &SecretKey) -> bool {
        PARSED
            .read()
            .is_ok_and(|kept| kept.iter().any(|(k, _)| k == secret.as_bytes()))
    }
}

impl Curve for Fast {
    fn x25519(secret: &[u8; KEY_LEN], _public: &[u8; KEY_LEN], peer: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
        use aws_lc_rs::agreement::{agree, PrivateKey, UnparsedPublicKey, X25519};
        // Keys are found by their secret bytes (our own keys: no peer's input is
        // compared with them), so that a wrong `public` cannot pick another key.
        // AWS-LC refuses a result of all zeros (a low-order peer key); the all-zero
        // output says the same to the handshake, which refuses it.
        let agree_with = |key: &PrivateKey| {
            agree(key, UnparsedPublicKey::new(&X25519, peer), (), |shared| {
                <[u8; KEY_LEN]>::try_from(shared).map_err(|_| ())
            })
            .unwrap_or([0; KEY_LEN])
        };
        if let Ok(kept) = PARSED.read() {
            if let Some((_, key)) = kept.iter().find(|(k, _)| k == secret) {
                return agree_with(key);
            }
        }
        // The second use of the last key parsed: it is dropped after this one.
        let last = LAST.with_borrow_mut(|last| last.take_if(|(k, _)| k == secret));
        if let Some((_, key)) = last {
            return agree_with(&key);
        }
        let Ok(key) = PrivateKey::from_private_key(&X25519, secret) else {
            return [0; KEY_LEN];
        };
        let shared = agree_with(&key);
        LAST.with_borrow_mut(|last| *last = Some((*secret, key)));
        shared
    }
}

/// The handshake's X25519 in the host programs: a remembered pair of static keys from
/// the map ([`secure::Memo`]), any other from [`Fast`].
pub type X25519 = secure::Memo<Fast>;

/// Who a secure peer is: its static key and, on a server, its name in the allowed keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The authenticated name (from the allowed-keys file).
    pub name: String,
    /// The peer's static public key.
    pub key: PublicKey,
}

/// A server's keys: its own secret key and the client keys it lets in.
pub struct ServerAuth {
    secret: SecretKey,
    allowed: RefCell<AllowedKeys>,
    /// Where the allowed keys came from (read again on SIGHUP).
    allowed_path: PathBuf,
    /// Refuse every peer that is not secure.
    require: bool,
    /// Secure handshakes in progress.
    in_progress: Cell<usize>,
    /// The client key that opened each secure session, by resume token: a session
    /// resumes only for the same key (PROTOCOL.md §10.5).
    owners: RefCell<HashMap<u64, PublicKey>>,
}

impl fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAuth")
            .field("public", &keys::public_to_text(&self.secret.public_key()))
            .field("allowed", &self.allowed.borrow().len())
            .field("allowed_path", &self.allowed_path)
            .field("require", &self.require)
            .finish_non_exhaustive()
    }
}

impl ServerAuth {
    /// Reads the server's secret key and its allowed keys.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, with its name.
    pub fn load(key: &std::path::Path, allowed: &std::path::Path, require: bool) -> anyhow::Result<Self> {
        let secret = keys::read_secret(key).map_err(|e| anyhow::anyhow!("{e}"))?;
        Fast::keep(&secret);
        let list = AllowedKeys::load(allowed)?;
        Ok(ServerAuth {
            secret,
            allowed: RefCell::new(list),
            allowed_path: allowed.to_path_buf(),
            require,
            in_progress: Cell::new(0),
            owners: RefCell::new(HashMap::new()),
        })
    }

    /// The server's public key.
    pub fn public_key(&self) -> PublicKey {
        self.secret.public_key()
    }

    /// Whether peers that are not secure are refused.
    pub fn required(&self) -> bool {
        self.require
    }

    /// Number of allowed keys.
    pub fn allowed_len(&self) -> usize {
        self.allowed.borrow().len()
    }

    /// Notes that the session of `token` was opened by `key` (`None`: a peer that is
    /// not secure). `kept` tells which tokens may still be resumed, so that notes of
    /// forgotten sessions go once there are more than `limit`.
    pub fn bind(&self, token: u64, key: Option<PublicKey>, limit: usize, kept: impl Fn(u64) -> bool) {
        let mut owners = self.owners.borrow_mut();
        match key {
            Some(key) => {
                if owners.len() >= limit.max(1) {
                    owners.retain(|t, _| kept(*t));
                }
                owners.insert(token, key);
            }
            None => {
                owners.remove(&token);
            }
        }
    }

    /// Whether a peer with `key` (`None`: not secure) may resume the session of
    /// `token`: only the key that opened it, and a session opened without a key only
    /// without one.
    pub fn may_resume(&self, token: u64, key: Option<PublicKey>) -> bool {
        self.owners.borrow().get(&token).copied() == key
    }

    /// Reads the allowed keys again; on an error the old list stays.
    ///
    /// # Errors
    /// The file cannot be read or has a bad line.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let list = AllowedKeys::load(&self.allowed_path)?;
        let n = list.len();
        secure::Memo::retain(&self.secret.public_key(), |key| list.name(key).is_some());
        *self.allowed.borrow_mut() = list;
        Ok(n)
    }
}

/// A client's keys: its own and the server's.
#[derive(Clone)]
pub struct ClientKeys {
    /// The client's secret key.
    pub secret: SecretKey,
    /// The public key the server must prove it holds.
    pub server: PublicKey,
}

impl ClientKeys {
    /// Reads the client's secret key file and the server's public key: its text form
    /// `soquete-pk:…`, or a file holding it (as `soquete pubkey` prints it).
    ///
    /// # Errors
    /// A file that cannot be read, or a key that is not valid, naming it.
    pub fn load(key: &std::path::Path, server: &str) -> anyhow::Result<Self> {
        let secret = keys::read_secret(key).map_err(|e| anyhow::anyhow!("{e}"))?;
        let server = if server.starts_with(keys::PUBLIC_PREFIX) {
            keys::public_from_text(server).map_err(|e| anyhow::anyhow!("server key {server}: {e}"))?
        } else {
            let text = std::fs::read_to_string(server).map_err(|e| {
                anyhow::anyhow!(
                    "--server-key {server} is neither a key ({}…) nor a file that can be read ({e})",
                    keys::PUBLIC_PREFIX
                )
            })?;
            keys::public_from_text(text.trim())
                .map_err(|e| anyhow::anyhow!("server key {server}: {e} (expected a file holding soquete-pk:…)"))?
        };
        Ok(ClientKeys { secret, server })
    }
}

impl fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKeys")
            .field("public", &keys::public_to_text(&self.secret.public_key()))
            .field("server", &keys::public_to_text(&self.server))
            .finish()
    }
}

/// The secure layer's error inside an [`io::Error`], if that is what `e` is.
pub fn secure_error(e: &io::Error) -> Option<SecureError> {
    e.get_ref()?.downcast_ref::<LayerError>().map(|l| l.0)
}

/// The layer's failure as an `io::Error` source.
#[derive(Debug)]
struct LayerError(SecureError);

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LayerError {}

fn layer_error(e: SecureError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, LayerError(e))
}

/// What runs on a connection.
enum Mode {
    /// Server: fewer than four bytes seen, all a prefix of the secure magic.
    Detect {
        auth: Rc<ServerAuth>,
        first: [u8; MAGIC.len()],
        len: usize,
    },
    /// A binary or plain-text peer: bytes pass through; `first[start..end]` (the
    /// bytes read to decide) go to the session first.
    Clear {
        first: [u8; MAGIC.len()],
        start: usize,
        end: usize,
    },
    Secure(Box<Layer>),
}

/// The secure layer of one connection and what the stream keeps around it.
struct Layer {
    secure: Secure<Vec<u8>, Vec<u8>, X25519>,
    /// Ciphertext read and not yet taken: `staging[start..end]`.
    staging: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Server: its keys; counts this handshake while it is in progress.
    auth: Option<Rc<ServerAuth>>,
    counted: bool,
    /// Server: why the client was refused before its session began, until taken.
    refusal: Option<String>,
    refusal_taken: bool,
}

impl Layer {
    /// The server's handshake is over, done or failed.
    fn uncount(&mut self) {
        if let (true, Some(auth)) = (self.counted, &self.auth) {
            auth.in_progress.set(auth.in_progress.get().saturating_sub(1));
            self.counted = false;
            // A failed handshake may leave its ephemeral key parsed.
            Fast::forget();
        }
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        self.uncount();
        // A client's handshake abandoned between its two uses of its ephemeral key.
        Fast::forget();
    }
}

/// A connection's socket, with the secure layer when it is a secure connection. See
/// the [module docs](self).
pub struct Stream {
    socket: TcpStream,
    mode: Mode,
    identity: Rc<OnceCell<Identity>>,
    /// Skips the read that would block after a short one (see [`pump::Drained`]).
    drained: pump::Drained,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.mode {
            Mode::Detect { .. } => "detect",
            Mode::Clear { .. } => "clear",
            Mode::Secure(_) => "secure",
        };
        f.debug_struct("Stream")
            .field("socket", &self.socket)
            .field("mode", &mode)
            .field("identity", &self.identity.get())
            .finish()
    }
}

/// 32 fresh bytes from the OS's random source, for an ephemeral key.
fn ephemeral() -> io::Result<[u8; KEY_LEN]> {
    let mut bytes = [0; KEY_LEN];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no random bytes: {e}")))?;
    Ok(bytes)
}

impl Stream {
    /// A stream without the secure mode: bytes pass through.
    pub fn clear(socket: TcpStream) -> Self {
        Stream {
            socket,
            mode: Mode::Clear {
                first: [0; MAGIC.len()],
                start: 0,
                end: 0,
            },
            identity: Rc::new(OnceCell::new()),
            drained: pump::Drained::default(),
        }
    }

    /// A server's stream: secure if the peer starts with the secure magic, clear
    /// otherwise. Without `auth`, always clear.
    pub fn server(socket: TcpStream, auth: Option<Rc<ServerAuth>>) -> Self {
        match auth {
            Some(auth) => Stream {
                socket,
                mode: Mode::Detect {
                    auth,
                    first: [0; MAGIC.len()],
                    len: 0,
                },
                identity: Rc::new(OnceCell::new()),
                drained: pump::Drained::default(),
            },
            None => Stream::clear(socket),
        }
    }

    /// A client's secure stream: the handshake starts with the session's first bytes.
    ///
    /// # Errors
    /// No random bytes for the ephemeral key.
    pub fn client(socket: TcpStream, keys: &ClientKeys) -> io::Result<Self> {
        // The static–static X25519 once per process, not once per connection.
        Fast::keep(&keys.secret);
        X25519::remember(&keys.secret, &keys.server);
        let secure = Secure::<_, _, X25519>::client_with(
            secure::Config::DEFAULT,
            &keys.secret,
            keys.server,
            ephemeral()?,
            vec![0; LAYER_BUF],
            vec![0; CLIENT_TX],
            time::now(),
        )
        .map_err(layer_error)?;
        Ok(Stream {
            socket,
            mode: Mode::Secure(Box::new(Layer {
                secure,
                staging: vec![0; STAGING],
                start: 0,
                end: 0,
                eof: false,
                auth: None,
                counted: false,
                refusal: None,
                refusal_taken: false,
            })),
            identity: Rc::new(OnceCell::new()),
            drained: pump::Drained::default(),
        })
    }

    /// The peer's authenticated identity, set (on a server) once its key is accepted.
    pub fn identity(&self) -> Rc<OnceCell<Identity>> {
        Rc::clone(&self.identity)
    }

    /// True once the connection is known to be a secure one.
    pub fn is_secure(&self) -> bool {
        matches!(self.mode, Mode::Secure(_))
    }

    /// A secure connection whose handshake is not complete: on a server, the client
    /// has not yet proven it is live (PROTOCOL.md §10.3 step 7), and what its first
    /// message asks could be a replay.
    pub fn awaits_liveness(&self) -> bool {
        matches!(&self.mode, Mode::Secure(layer) if !layer.secure.is_established())
    }

    /// Server: answers the handshake now, before the session answers the client (which
    /// then waits for [`Stream::awaits_liveness`] to turn false).
    pub fn respond_early(&mut self) {
        if let Mode::Secure(layer) = &mut self.mode {
            if let Err(e) = layer.secure.respond() {
                debug!("respond: {e}");
            }
            let _ = write_out(&mut self.socket, &mut layer.secure);
        }
    }

    /// Registered with mio: reads of the socket stop at a short one (see
    /// [`pump::Drained`]); report each readable event with [`Stream::readable`].
    pub fn edge_triggered(&mut self) {
        self.drained = pump::Drained::edge_triggered();
    }

    /// mio reported the socket readable; `ended` if the event also said the peer
    /// finished sending, hung up or failed.
    pub fn readable(&mut self, ended: bool) {
        self.drained.event(ended);
    }

    /// The socket itself, for what bypasses the layer (reading and dropping a closed
    /// connection's last bytes).
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// Shuts the socket down (`shutdown(2)`).
    ///
    /// # Errors
    /// As [`TcpStream::shutdown`].
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }

    /// Server: why a secure client was refused before its session began (once).
    pub fn take_refusal(&mut self) -> Option<String> {
        let Mode::Secure(layer) = &mut self.mode else {
            return None;
        };
        if layer.refusal_taken {
            return None;
        }
        let why = layer.refusal.take().or_else(|| {
            let e = layer.secure.error()?;
            (layer.auth.is_some() && self.identity.get().is_none()).then(|| e.to_string())
        })?;
        layer.refusal_taken = true;
        Some(why)
    }

    /// The layer's handshake deadline, while the handshake is in progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.mode {
            Mode::Secure(layer) => layer.secure.poll_timeout(),
            _ => None,
        }
    }

    /// Runs the layer's handshake timer; a handshake past its deadline fails (the
    /// next read or flush reports it).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Mode::Secure(layer) = &mut self.mode {
            layer.secure.handle_timeout(now);
            if layer.secure.error().is_some() {
                layer.uncount();
                let _ = write_out(&mut self.socket, &mut layer.secure);
            }
        }
    }

    /// Server: the first bytes decide the mode; `WouldBlock` while undecided and the
    /// socket has nothing more (at its end the mode is `Clear`).
    fn detect(&mut self) -> io::Result<()> {
        let Mode::Detect { auth, first, len } = &mut self.mode else {
            return Ok(());
        };
        loop {
            match secure::detect(first.get(..*len).unwrap_or(&[])) {
                Detection::Undecided => {}
                Detection::Other => {
                    self.mode = Mode::Clear {
                        first: *first,
                        start: 0,
                        end: *len,
                    };
                    return Ok(());
                }
                Detection::Secure => {
                    let auth = Rc::clone(auth);
                    let first = *first;
                    return self.start_secure(auth, first);
                }
            }
            // At most the magic's length in all: the bytes after it are the layer's.
            let Some(buf) = first.get_mut(*len..).filter(|b| !b.is_empty()) else {
                return Ok(());
            };
            match self.socket.read(buf) {
                // The end before a decision: what was read goes to the session.
                Ok(0) => {
                    self.mode = Mode::Clear {
                        first: *first,
                        start: 0,
                        end: *len,
                    };
                    return Ok(());
                }
                Ok(n) => *len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn start_secure(&mut self, auth: Rc<ServerAuth>, magic: [u8; MAGIC.len()]) -> io::Result<()> {
        let mut secure = Secure::<_, _, X25519>::server_with(
            secure::Config::DEFAULT,
            &auth.secret,
            ephemeral()?,
            vec![0; LAYER_BUF],
            vec![0; SERVER_TX],
            time::now(),
        )
        .map_err(layer_error)?;
        let full = auth.in_progress.get() >= MAX_HANDSHAKES;
        let mut refusal = None;
        if full {
            refusal = Some(format!(
                "too many secure handshakes in progress (at most {MAX_HANDSHAKES})"
            ));
            let _ = secure.refuse(Alert::ServerFull);
        } else {
            auth.in_progress.set(auth.in_progress.get() + 1);
            secure.handle_input(time::now(), &magic).map_err(layer_error)?;
        }
        self.mode = Mode::Secure(Box::new(Layer {
            secure,
            staging: vec![0; STAGING],
            start: 0,
            end: 0,
            eof: false,
            auth: Some(auth),
            counted: !full,
            refusal,
            refusal_taken: false,
        }));
        Ok(())
    }

    /// Writes out what the layer has queued; `WouldBlock` if some is left.
    fn flush_layer(&mut self) -> io::Result<()> {
        match &mut self.mode {
            Mode::Secure(layer) => write_out(&mut self.socket, &mut layer.secure),
            _ => Ok(()),
        }
    }
}

/// Writes the layer's ciphertext to the socket until none is left (`Ok`) or the socket
/// would block.
fn write_out(socket: &mut TcpStream, secure: &mut Secure<Vec<u8>, Vec<u8>, X25519>) -> io::Result<()> {
    loop {
        let out = secure.poll_transmit();
        if out.is_empty() {
            return Ok(());
        }
        match socket.write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => secure.advance_transmit(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Layer {
    /// Server: decides on the client's key as the allowed keys say.
    fn decide(&mut self, identity: &OnceCell<Identity>) {
        while let Some(event) = self.secure.poll_event() {
            match event {
                Event::ClientKey(key) => {
                    let Some(auth) = &self.auth else { continue };
                    let name = auth.allowed.borrow().name(&key).map(str::to_owned);
                    match name {
                        Some(name) => {
                            debug!("client key {} allowed as {name:?}", keys::public_to_text(&key));
                            // Its next handshakes skip the static–static X25519.
                            X25519::remember(&auth.secret, &key);
                            let _ = identity.set(Identity { name, key });
                            if let Err(e) = self.secure.accept() {
                                debug!("accept: {e}");
                            }
                        }
                        None => {
                            let text = keys::public_to_text(&key);
                            warn!(
                                "unknown client key {text}, refused; to let it in, add a line \"{text} NAME\" to {} and send the server SIGHUP",
                                auth.allowed_path.display()
                            );
                            self.refusal = Some(format!("unknown key {text}"));
                            let _ = self.secure.refuse(Alert::UnknownKey);
                        }
                    }
                }
                Event::Established => self.uncount(),
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.detect()?;
        match &mut self.mode {
            // Undecided and the socket has nothing more.
            Mode::Detect { .. } => Err(io::ErrorKind::WouldBlock.into()),
            Mode::Clear { first, start, end } => {
                if *start < *end {
                    let staged = first.get(*start..*end).unwrap_or(&[]);
                    let n = staged.len().min(buf.len());
                    buf.get_mut(..n)
                        .unwrap_or_default()
                        .copy_from_slice(staged.get(..n).unwrap_or_default());
                    *start += n;
                    return Ok(n);
                }
                self.drained.read(&mut self.socket, buf)
            }
            Mode::Secure(layer) => loop {
                let plain = layer.secure.poll_plaintext();
                if !plain.is_empty() {
                    let n = plain.len().min(buf.len());
                    buf.get_mut(..n)
                        .unwrap_or_default()
                        .copy_from_slice(plain.get(..n).unwrap_or_default());
                    // A failure in the next record shows at the next read.
                    let _ = layer.secure.advance_plaintext(n);
                    layer.decide(&self.identity);
                    return Ok(n);
                }
                if let Some(e) = layer.secure.error() {
                    layer.uncount();
                    let _ = write_out(&mut self.socket, &mut layer.secure);
                    return Err(layer_error(e));
                }
                layer.decide(&self.identity);
                if !layer.secure.poll_plaintext().is_empty() || layer.secure.error().is_some() {
                    continue;
                }
                if layer.start < layer.end {
                    let staged = layer.staging.get(layer.start..layer.end).unwrap_or_default();
                    match layer.secure.handle_input(time::now(), staged) {
                        Ok(0) => return Err(io::ErrorKind::WouldBlock.into()),
                        Ok(n) => layer.start += n,
                        Err(_) => {}
                    }
                    continue;
                }
                if layer.eof {
                    return match layer.secure.handle_eof(time::now()) {
                        Ok(()) => Ok(0),
                        Err(e) => Err(layer_error(e)),
                    };
                }
                match self.drained.read(&mut self.socket, &mut layer.staging) {
                    Ok(0) => layer.eof = true,
                    Ok(n) => {
                        layer.start = 0;
                        layer.end = n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Mode::Secure(layer) = &mut self.mode else {
            return self.socket.write(buf);
        };
        match write_out(&mut self.socket, &mut layer.secure) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let n = match layer.secure.seal(buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = write_out(&mut self.socket, &mut layer.secure);
                return Err(layer_error(e));
            }
        };
        if n == 0 && !buf.is_empty() && layer.secure.poll_transmit().is_empty() && layer.auth.is_some() {
            // A server's session speaks before the client's first message was read:
            // only its own handshake timeout makes it do that.
            let _ = layer.secure.refuse(Alert::HandshakeTimeout);
            layer.uncount();
            let _ = write_out(&mut self.socket, &mut layer.secure);
            return Err(layer_error(SecureError::HandshakeTimeout));
        }
        match write_out(&mut self.socket, &mut layer.secure) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Writes out what the layer queued; `WouldBlock` if the socket took not all of
    /// it; the layer's failure once everything it had to say is out.
    fn flush(&mut self) -> io::Result<()> {
        self.flush_layer()?;
        match &self.mode {
            Mode::Secure(layer) => match layer.secure.error() {
                Some(e) => Err(layer_error(e)),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

impl Source for Stream {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.socket.register(registry, token, interests)
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.socket.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.socket.deregister(registry)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use soquete_core::secure::{Curve, Ladder, KEY_LEN};

    use super::Fast;

    fn both(secret: [u8; KEY_LEN], peer: [u8; KEY_LEN]) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
        (
            Fast::x25519(&secret, &[0; KEY_LEN], &peer),
            Ladder::x25519(&secret, &[0; KEY_LEN], &peer),
        )
    }

    #[test]
    fn fast_matches_rfc7748_vectors() {
        // RFC 7748 §5.2, the two single-call vectors.
        let hex = |s: &str| -> [u8; KEY_LEN] {
            core::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        };
        let cases = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
        ];
        for (secret, peer, want) in cases {
            assert_eq!(both(hex(secret), hex(peer)), (hex(want), hex(want)));
        }
    }

    #[test]
    fn fast_equals_the_ladder_on_edge_points() {
        // Little-endian u: 0, 1, p-1, p, p+1, p+2, 2^255-1 (non-canonical forms of
        // 0, 1, 2 and p-1 among them), the two points of order 8, and 9; each also
        // with the top bit set, which X25519 ignores. Low-order points give the
        // all-zero output, which the handshake refuses: both functions must say so.
        let points = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "0900000000000000000000000000000000000000000000000000000000000000",
        ];
        let hex = |s: &str| -> [u8; KEY_LEN] {
            core::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        };
        let mut zeros = 0;
        for point in points {
            for top in [false, true] {
                let mut peer = hex(point);
                if top {
                    peer[31] |= 0x80;
                }
                for secret in [[0x11; KEY_LEN], [0xfe; KEY_LEN], [0; KEY_LEN]] {
                    let (fast, ladder) = both(secret, peer);
                    assert_eq!(fast, ladder, "peer {peer:02x?}");
                    zeros += usize::from(fast == [0; KEY_LEN]);
                }
            }
        }
        // Most of these points are of low order: the all-zero output came up.
        assert!(zeros > 0);
    }

    #[test]
    fn keys_parsed_once_give_the_same_results() {
        use soquete_core::secure::SecretKey;
        // A kept static key, and the last key parsed reused once, in any order.
        let kept = SecretKey::from_bytes([0x21; KEY_LEN]);
        assert!(Fast::keep(&kept));
        assert!(Fast::keep(&kept), "keeping a key again is no error");
        assert!(Fast::is_kept(&kept));
        assert!(!Fast::is_kept(&SecretKey::from_bytes([0x22; KEY_LEN])));
        let (a, b) = ([0x23; KEY_LEN], [0x24; KEY_LEN]);
        let calls = [a, a, a, b, a, *kept.as_bytes(), b, b, *kept.as_bytes(), a];
        for (i, secret) in calls.into_iter().enumerate() {
            let peer = [u8::try_from(i).unwrap() + 9; KEY_LEN];
            assert_eq!(both(secret, peer).0, both(secret, peer).1, "call {i}");
            assert_eq!(
                Fast::x25519(&secret, &[0; KEY_LEN], &peer),
                Ladder::x25519(&secret, &[0; KEY_LEN], &peer)
            );
        }
    }

    #[test]
    fn a_key_parsed_for_one_use_is_held_until_its_second_use_or_forgotten() {
        let (a, b, peer) = ([0x31; KEY_LEN], [0x32; KEY_LEN], [9; KEY_LEN]);
        Fast::x25519(&a, &[0; KEY_LEN], &peer);
        assert!(Fast::holds(&a));
        Fast::x25519(&a, &[0; KEY_LEN], &peer);
        assert!(!Fast::holds(&a), "the second use drops it");
        Fast::x25519(&a, &[0; KEY_LEN], &peer);
        Fast::x25519(&b, &[0; KEY_LEN], &peer);
        assert!(!Fast::holds(&a) && Fast::holds(&b), "another key replaces it");
        Fast::forget();
        assert!(!Fast::holds(&b));
    }

    proptest! {
        #[test]
        fn fast_is_the_ladder(secret in any::<[u8; KEY_LEN]>(), peer in any::<[u8; KEY_LEN]>(), top in any::<bool>()) {
            // Any 32 bytes, the top bit (which X25519 ignores) set or not.
            let mut peer = peer;
            if top {
                peer[31] |= 0x80;
            }
            let (fast, ladder) = both(secret, peer);
            prop_assert_eq!(fast, ladder);
        }
    }
}
