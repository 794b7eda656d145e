//! The firmware's parameters, from QEMU's command line: `-append "key=value ..."`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `role` | `client` | `client`: send `messages` numbered messages to `connect`; `server` (with the `server` feature): take one session on `listen` and expect them; `secure-client` (with the `secure` feature): as `client`, through the secure layer (PROTOCOL.md §10) |
//! | `messages` | 1000 | how many messages, numbered `1` to `messages` (the payload is the number in decimal) |
//! | `connect` | `10.0.2.2:8800` | client: the `soquete server` (QEMU's user network reaches the host's 127.0.0.1 as 10.0.2.2) |
//! | `listen` | 8800 | server: the TCP port |
//! | `name` | `firmware` | client: the session's name, at most 32 bytes |
//! | `ip` | `10.0.2.15/24` | the firmware's address (QEMU's user network gives out 10.0.2.15) |
//! | `gateway` | `10.0.2.2` | default route, or `none` |
//! | `time` | 60 | give up (exit status 1) after this many seconds |
//! | `key` | — | `secure-client`: the device's static secret key: the base64 line of a `soquete keygen` key file, or 64 hex digits |
//! | `server-key` | — | `secure-client`: the server's static public key: `soquete-pk:…` as `soquete pubkey` prints it, or 64 hex digits |
//!
//! The first word of the command line is the program's path, and is skipped.

use core::net::Ipv4Addr;
use core::str::FromStr;

use smoltcp::wire::Ipv4Cidr;

/// What the firmware does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends the messages to a server.
    Client,
    /// Takes one session and expects the messages.
    Server,
}

/// Every parameter, defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params<'a> {
    /// Client or server.
    pub role: Role,
    /// How many messages.
    pub messages: u32,
    /// The server the client connects to.
    pub connect: (Ipv4Addr, u16),
    /// The port the server listens on.
    pub listen: u16,
    /// The client session's name.
    pub name: &'a str,
    /// This end's address.
    pub ip: Ipv4Cidr,
    /// The default route.
    pub gateway: Option<Ipv4Addr>,
    /// Seconds before giving up.
    pub time_secs: u32,
    /// The client's keys (`role=secure-client`): it runs through the secure layer.
    #[cfg(feature = "secure")]
    pub secure: Option<crate::secure::Keys>,
}

impl Default for Params<'_> {
    fn default() -> Self {
        Params {
            role: Role::Client,
            messages: 1000,
            connect: (Ipv4Addr::new(10, 0, 2, 2), 8800),
            listen: 8800,
            name: "firmware",
            ip: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24),
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            time_secs: 60,
            #[cfg(feature = "secure")]
            secure: None,
        }
    }
}

/// The roles this image takes, for [`USAGE`].
pub const ROLES: &str = match (cfg!(feature = "server"), cfg!(feature = "secure")) {
    (true, true) => "client|server|secure-client",
    (true, false) => "client|server",
    (false, true) => "client|secure-client",
    (false, false) => "client",
};

/// The parameters besides `role`, for [`USAGE`].
const REST: &str = if cfg!(feature = "secure") {
    "messages=N connect=IP:PORT listen=PORT name=NAME ip=IP/LEN gateway=IP|none time=SECS \
     key=BASE64|HEX server-key=soquete-pk:BASE64|HEX"
} else {
    "messages=N connect=IP:PORT listen=PORT name=NAME ip=IP/LEN gateway=IP|none time=SECS"
};

/// What to print when the command line has a word the firmware does not take: the
/// parameters of this image (its roles depend on its features).
pub struct Usage;

/// The usage line.
pub const USAGE: Usage = Usage;

impl core::fmt::Display for Usage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "parameters (-append \"...\"): role={ROLES} {REST}")
    }
}

/// A word of the command line the firmware does not take, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadParameter<'a> {
    /// The word as given.
    pub word: &'a str,
    /// What is wrong with it, and what to give instead.
    pub why: &'static str,
}

impl core::fmt::Display for BadParameter<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "bad parameter \"{}\": {}\n{}", self.word, self.why, USAGE)
    }
}

/// Why `key=` was refused.
#[cfg(feature = "secure")]
const KEY_FORM: &str = "key= is the device's secret key itself: the second line of a soquete keygen \
                        file (key=$(sed -n 2p device.key)) or 64 hex digits";
/// Why `server-key=` was refused.
#[cfg(feature = "secure")]
const SERVER_KEY_FORM: &str = "server-key= is the server's public key: soquete-pk:... as soquete pubkey \
                               prints it, or 64 hex digits";

impl<'a> Params<'a> {
    /// Parses a semihosting command line (program path first).
    ///
    /// # Errors
    /// The first word that is not a known `key=value` with a valid value, and why;
    /// with `role=secure-client`, that word if a key is missing.
    pub fn parse(cmdline: &'a str) -> Result<Self, BadParameter<'a>> {
        let mut params = Params::default();
        #[cfg(feature = "secure")]
        let mut keys = (None, None, None);
        for word in cmdline.split_ascii_whitespace().skip(1) {
            let bad = |why| BadParameter { word, why };
            let (key, value) = word.split_once('=').ok_or(bad("not key=value"))?;
            match (key, value) {
                ("role", "client") => params.role = Role::Client,
                ("role", "server") if cfg!(feature = "server") => params.role = Role::Server,
                ("role", "server") => return Err(bad("this image was built without the server role")),
                ("messages", v) => params.messages = v.parse().map_err(|_| bad("a count, 0 to 4294967295"))?,
                ("connect", v) => params.connect = endpoint(v).ok_or(bad("an IPv4 address and port, IP:PORT"))?,
                ("listen", v) => params.listen = v.parse().map_err(|_| bad("a port, 1 to 65535"))?,
                // What a HELLO can carry (PROTOCOL.md §3.2).
                ("name", v) if v.len() <= soquete_core::wire::MAX_NAME_LEN => params.name = v,
                ("name", _) => return Err(bad("a session's name is at most 32 bytes")),
                ("ip", v) => params.ip = cidr(v).ok_or(bad("an IPv4 address and prefix length, IP/LEN"))?,
                ("gateway", "none") => params.gateway = None,
                ("gateway", v) => {
                    params.gateway = Some(v.parse().map_err(|_| bad("an IPv4 address, or none"))?);
                }
                ("time", v) => params.time_secs = v.parse().map_err(|_| bad("whole seconds"))?,
                #[cfg(feature = "secure")]
                ("role", "secure-client") => {
                    params.role = Role::Client;
                    keys.0 = Some(word);
                }
                #[cfg(not(feature = "secure"))]
                ("role", "secure-client") | ("key" | "server-key", _) => {
                    return Err(bad(
                        "this image was built without the secure client (--features secure)",
                    ));
                }
                ("role", _) => return Err(bad("the roles of this image are listed below")),
                #[cfg(feature = "secure")]
                ("key", v) if v.starts_with("soquete-pk:") => {
                    return Err(bad("that is a public key (for server-key=); key= is the secret key"));
                }
                #[cfg(feature = "secure")]
                ("key", v) => keys.1 = Some(key32(v, "").ok_or(bad(KEY_FORM))?),
                #[cfg(feature = "secure")]
                ("server-key", v) => keys.2 = Some(key32(v, "soquete-pk:").ok_or(bad(SERVER_KEY_FORM))?),
                _ => return Err(bad("unknown parameter")),
            }
        }
        #[cfg(feature = "secure")]
        match keys {
            (Some(word), secret, server) => {
                let (Some(secret), Some(server)) = (secret, server) else {
                    return Err(BadParameter {
                        word,
                        why: "needs key= (the device's secret key) and server-key= (the server's public key)",
                    });
                };
                params.secure = Some(crate::secure::Keys::new(secret, server));
            }
            // Keys without `role=secure-client` would be ignored: refuse them.
            (None, Some(_), _) => {
                return Err(BadParameter {
                    word: "key=...",
                    why: "keys are for role=secure-client",
                })
            }
            (None, _, Some(_)) => {
                return Err(BadParameter {
                    word: "server-key=...",
                    why: "keys are for role=secure-client",
                })
            }
            (None, None, None) => {}
        }
        Ok(params)
    }
}

fn endpoint(s: &str) -> Option<(Ipv4Addr, u16)> {
    let (ip, port) = s.split_once(':')?;
    Some((Ipv4Addr::from_str(ip).ok()?, port.parse().ok()?))
}

fn cidr(s: &str) -> Option<Ipv4Cidr> {
    let (ip, len) = s.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some(Ipv4Cidr::new(Ipv4Addr::from_str(ip).ok()?, len))
}

/// A key's 32 bytes: `prefix` and standard base64 with padding (44 characters; the
/// forms of `soquete keygen` and `soquete pubkey`, PROTOCOL.md §10.2), or 64 hex
/// digits.
#[cfg(feature = "secure")]
fn key32(s: &str, prefix: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    if let Some(b64) = s.strip_prefix(prefix).filter(|b| b.len() == 44) {
        let mut out = [0u8; 32];
        // Room for 33 bytes: the decoder wants room for every 3-byte group.
        let mut buf = [0u8; 33];
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(b64, &mut buf)
            .ok()?;
        out.copy_from_slice(buf.get(..n).filter(|b| b.len() == 32)?);
        return Some(out);
    }
    hex32(s)
}

/// 32 bytes from 64 hex digits.
#[cfg(feature = "secure")]
fn hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 2 * out.len() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        // `from_str_radix` would take a sign as well.
        if !pair.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        *byte = u8::from_str_radix(core::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}
