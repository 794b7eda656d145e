//! What a soquete server prints: one line per event, as text or as JSON lines.
//!
//! Shared by `soquete server` and the smoltcp demo, so that both print the same lines.
//! Received text goes through [`crate::escape`](mod@crate::escape) in text lines; JSON lines carry it
//! exactly (JSON escaping only, base64 for bytes that are not UTF-8), in the schema
//! [`JSON_VERSION`] that the README documents.

use std::fmt::Display;
use std::io::{self, Write};
use std::time::SystemTime;

use base64::Engine as _;

use soquete_core::Mode;

use crate::escape::{write_escaped, write_quoted};

/// The version of the JSON lines' schema, their `"v"` field.
pub const JSON_VERSION: u32 = 1;

/// Text lines or JSON lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `#1 127.0.0.1:53422: hello`
    Text,
    /// `{"v":1,"ts":"2026-01-02T03:04:05.678Z","event":"message","id":1,...,"text":"hello"}`
    Json,
}

/// Prints server events to a (buffered) writer. Call [`Printer::flush`] before
/// acknowledging what was printed.
#[derive(Debug)]
pub struct Printer<W: Write> {
    out: W,
    format: Format,
    /// [`Printer::message`]'s line up to the text (text) or up to `seq` (JSON), as
    /// last formatted, for session `head_id`: it is the same for all messages of a
    /// session, and formatting the peer each time costs as much as escaping a short
    /// message.
    head: Vec<u8>,
    head_id: Option<u64>,
    /// Text lines start with the time (JSON lines always have it).
    timestamps: bool,
}

impl<W: Write> Printer<W> {
    /// A printer writing `format` lines to `out`.
    pub fn new(out: W, format: Format) -> Self {
        Printer {
            out,
            format,
            head: Vec::with_capacity(64),
            head_id: None,
            timestamps: false,
        }
    }

    /// Text lines start with the time, RFC 3339 in UTC with milliseconds.
    pub fn with_timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// Starts a line: the time if asked (text), or the JSON object up to its
    /// `"event"` (version and time).
    fn start(&mut self) -> io::Result<()> {
        match self.format {
            Format::Text if self.timestamps => {
                write!(self.out, "{} ", humantime::format_rfc3339_millis(SystemTime::now()))
            }
            Format::Text => Ok(()),
            Format::Json => write!(
                self.out,
                r#"{{"v":{JSON_VERSION},"ts":"{}","#,
                humantime::format_rfc3339_millis(SystemTime::now())
            ),
        }
    }

    /// `listening on ADDR`
    pub fn listening(&mut self, addr: impl Display) -> io::Result<()> {
        self.start()?;
        match self.format {
            Format::Text => writeln!(self.out, "listening on {addr}"),
            Format::Json => writeln!(self.out, r#""event":"listening","addr":"{addr}"}}"#),
        }
    }

    /// `#ID PEER connected as "NAME"` (or `connected (plain text)`, or just `connected`).
    pub fn connected(&mut self, id: u64, peer: impl Display, name: &str, mode: Mode) -> io::Result<()> {
        self.connected_auth(id, peer, name, mode, None)
    }

    /// [`Printer::connected`] for a peer that may be authenticated: `auth` is the name
    /// its key has in the server's allowed keys (secure mode), distinct from the name
    /// it gives itself. Text lines add `(authenticated as "AUTH")`; JSON lines add
    /// `"auth"` after `"name"` (only for an authenticated peer).
    pub fn connected_auth(
        &mut self,
        id: u64,
        peer: impl Display,
        name: &str,
        mode: Mode,
        auth: Option<&str>,
    ) -> io::Result<()> {
        self.forget(id);
        self.start()?;
        match self.format {
            Format::Text => {
                write!(self.out, "#{id} {peer} connected")?;
                if mode == Mode::Plain {
                    self.out.write_all(b" (plain text)")?;
                } else if !name.is_empty() {
                    self.out.write_all(b" as ")?;
                    write_quoted(&mut self.out, name.as_bytes())?;
                }
                if let Some(auth) = auth {
                    self.out.write_all(b" (authenticated as ")?;
                    write_quoted(&mut self.out, auth.as_bytes())?;
                    self.out.write_all(b")")?;
                }
                self.out.write_all(b"\n")
            }
            Format::Json => {
                let mode = match mode {
                    Mode::Binary => "binary",
                    Mode::Plain => "plain",
                };
                write!(
                    self.out,
                    r#""event":"connected","id":{id},"peer":"{peer}","mode":"{mode}","name":"#
                )?;
                write_json(&mut self.out, name)?;
                write_auth(&mut self.out, auth)?;
                self.out.write_all(b"}\n")
            }
        }
    }

    /// `#ID PEER: TEXT` with the text escaped.
    ///
    /// `peer` is formatted once for a run of messages with the same `id`: pass the
    /// same peer for an `id` from its [`Printer::connected`] (or [`Printer::resumed`])
    /// line to its [`Printer::left`] (or [`Printer::lost`]) line, as the server does.
    pub fn message(&mut self, id: u64, peer: impl Display, seq: u64, payload: &[u8]) -> io::Result<()> {
        self.message_from(id, peer, "", 0, seq, payload)
    }

    /// [`Printer::message`], with the client's name and session token in JSON lines
    /// (`"session"` is 16 hex digits, or `null` for 0: a plain-text session).
    /// `name` and `session` are part of the cached head too: pass the same for an `id`
    /// until its "left" line.
    pub fn message_from(
        &mut self,
        id: u64,
        peer: impl Display,
        name: &str,
        session: u64,
        seq: u64,
        payload: &[u8],
    ) -> io::Result<()> {
        self.message_auth(id, peer, name, None, session, seq, payload)
    }

    /// [`Printer::message_from`], with the peer's authenticated name (`"auth"` after
    /// `"name"` in JSON lines, only for an authenticated peer), part of the cached head
    /// like `name`.
    #[allow(clippy::too_many_arguments)] // the fields of one line, in its order
    pub fn message_auth(
        &mut self,
        id: u64,
        peer: impl Display,
        name: &str,
        auth: Option<&str>,
        session: u64,
        seq: u64,
        payload: &[u8],
    ) -> io::Result<()> {
        if self.head_id != Some(id) {
            // Unset until the head is whole, in case `peer` fails to format.
            self.head_id = None;
            self.head.clear();
            let (before_id, before_peer, after_peer): (&[u8], &[u8], &[u8]) = match self.format {
                Format::Text => (b"#", b" ", b": "),
                Format::Json => (br#""event":"message","id":"#, br#","peer":""#, br#"","name":"#),
            };
            self.head.extend_from_slice(before_id);
            write_u64(&mut self.head, id)?;
            self.head.extend_from_slice(before_peer);
            write!(self.head, "{peer}")?;
            self.head.extend_from_slice(after_peer);
            if self.format == Format::Json {
                write_json(&mut self.head, name)?;
                write_auth(&mut self.head, auth)?;
                if session == 0 {
                    self.head.extend_from_slice(br#","session":null,"seq":"#);
                } else {
                    write!(self.head, r#","session":"{session:016x}","seq":"#)?;
                }
            }
            self.head_id = Some(id);
        }
        self.start()?;
        self.out.write_all(&self.head)?;
        match self.format {
            Format::Text => {
                write_escaped(&mut self.out, payload)?;
                self.out.write_all(b"\n")
            }
            Format::Json => {
                write_u64(&mut self.out, seq)?;
                match std::str::from_utf8(payload) {
                    Ok(text) => {
                        self.out.write_all(br#","text":"#)?;
                        write_json(&mut self.out, text)?;
                    }
                    Err(_) => {
                        self.out.write_all(br#","payload_b64":""#)?;
                        let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
                        self.out.write_all(b64.as_bytes())?;
                        self.out.write_all(b"\"")?;
                    }
                }
                self.out.write_all(b"}\n")
            }
        }
    }

    /// `#ID PEER left (REASON) after N messages`
    pub fn left(&mut self, id: u64, peer: impl Display, reason: impl Display, messages: u64) -> io::Result<()> {
        self.forget(id);
        self.start()?;
        match self.format {
            Format::Text => writeln!(self.out, "#{id} {peer} left ({reason}) after {}", count(messages)),
            Format::Json => {
                write!(
                    self.out,
                    r#""event":"left","id":{id},"peer":"{peer}","messages":{messages},"reason":"#
                )?;
                write_json(&mut self.out, &reason.to_string())?;
                self.out.write_all(b"}\n")
            }
        }
    }

    /// `#ID PEER lost (REASON) after N messages; may resume within WINDOW`: the
    /// connection went away, the session waits for its client to resume it.
    pub fn lost(
        &mut self,
        id: u64,
        peer: impl Display,
        reason: impl Display,
        messages: u64,
        window: impl Display,
    ) -> io::Result<()> {
        self.forget(id);
        self.start()?;
        match self.format {
            Format::Text => writeln!(
                self.out,
                "#{id} {peer} lost ({reason}) after {}; may resume within {window}",
                count(messages)
            ),
            Format::Json => {
                write!(
                    self.out,
                    r#""event":"lost","id":{id},"peer":"{peer}","messages":{messages},"window":"{window}","reason":"#
                )?;
                write_json(&mut self.out, &reason.to_string())?;
                self.out.write_all(b"}\n")
            }
        }
    }

    /// `#ID PEER resumed after N messages`: a lost session continues on a new
    /// connection from `PEER`.
    pub fn resumed(&mut self, id: u64, peer: impl Display, messages: u64) -> io::Result<()> {
        self.resumed_auth(id, peer, messages, None)
    }

    /// [`Printer::resumed`] for a peer that may be authenticated, as
    /// [`Printer::connected_auth`]: JSON lines add `"auth"` after `"messages"` (only
    /// for an authenticated peer); text lines, which do not name the client, stay as
    /// they are.
    pub fn resumed_auth(&mut self, id: u64, peer: impl Display, messages: u64, auth: Option<&str>) -> io::Result<()> {
        // Its messages now come from another address.
        self.forget(id);
        self.start()?;
        match self.format {
            Format::Text => writeln!(self.out, "#{id} {peer} resumed after {}", count(messages)),
            Format::Json => {
                write!(
                    self.out,
                    r#""event":"resumed","id":{id},"peer":"{peer}","messages":{messages}"#
                )?;
                write_auth(&mut self.out, auth)?;
                self.out.write_all(b"}\n")
            }
        }
    }

    /// `#ID PEER taken over by NEW after N messages`: the client resumed its session
    /// on a new connection from `NEW` while the old one, from `PEER`, was still open;
    /// the old connection is closed.
    pub fn taken_over(&mut self, id: u64, peer: impl Display, new: impl Display, messages: u64) -> io::Result<()> {
        self.forget(id);
        self.start()?;
        match self.format {
            Format::Text => writeln!(self.out, "#{id} {peer} taken over by {new} after {}", count(messages)),
            Format::Json => writeln!(
                self.out,
                r#""event":"taken_over","id":{id},"peer":"{peer}","by":"{new}","messages":{messages}}}"#
            ),
        }
    }

    /// `#ID PEER refused (REASON)`
    pub fn refused(&mut self, id: u64, peer: impl Display, reason: impl Display) -> io::Result<()> {
        self.forget(id);
        self.start()?;
        match self.format {
            Format::Text => writeln!(self.out, "#{id} {peer} refused ({reason})"),
            Format::Json => {
                write!(self.out, r#""event":"refused","id":{id},"peer":"{peer}","reason":"#)?;
                write_json(&mut self.out, &reason.to_string())?;
                self.out.write_all(b"}\n")
            }
        }
    }

    /// Drops the cached line head of session `id`: its number may be given again, with
    /// another peer.
    fn forget(&mut self, id: u64) {
        if self.head_id == Some(id) {
            self.head_id = None;
        }
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The writer, e.g. to take what was printed into a buffer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Flushes what was printed.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes `s` as a JSON string, exactly (JSON's own escapes only).
/// `,"auth":NAME` for an authenticated peer; nothing for another, so that the lines
/// of peers that are not secure stay as they were.
fn write_auth<W: Write>(out: &mut W, auth: Option<&str>) -> io::Result<()> {
    match auth {
        Some(auth) => {
            out.write_all(br#","auth":"#)?;
            write_json(out, auth)
        }
        None => Ok(()),
    }
}

fn write_json<W: Write>(out: &mut W, s: &str) -> io::Result<()> {
    crate::escape::write_json_str(out, s)
}

/// Writes `n` in decimal, without `core::fmt` (it runs for every line).
///
/// # Errors
/// Those of `out`.
pub fn write_u64<W: Write + ?Sized>(out: &mut W, mut n: u64) -> io::Result<()> {
    let mut buf = [0; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.write_all(&buf[at..])
}

/// `N NOUNs`, or `1 NOUN` for one: `plural(1, "message")` is `1 message`, `plural(3,
/// "message")` is `3 messages`.
#[must_use]
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn count(messages: u64) -> String {
    plural(messages, "message")
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use proptest::prelude::*;

    use super::*;
    use crate::escape::oracle::{input, reference_escaped};

    /// `out` with every JSON line's timestamp emptied, after checking its form
    /// (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
    fn without_ts(out: &[u8]) -> String {
        let text = String::from_utf8_lossy(out);
        let mut lines = String::new();
        for line in text.split_inclusive('\n') {
            match line.split_once(r#""ts":""#) {
                Some((before, rest)) => {
                    let (ts, after) = rest.split_once('"').unwrap();
                    // Empty in the reference lines.
                    if !ts.is_empty() {
                        let b = ts.as_bytes();
                        assert!(b.len() == 24 && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z', "{ts}");
                    }
                    lines.push_str(before);
                    lines.push_str(r#""ts":"""#);
                    lines.push_str(after);
                }
                None => lines.push_str(line),
            }
        }
        lines
    }

    /// A message line as `Printer::message` wrote it before the cached head.
    fn reference_message(format: Format, id: u64, peer: impl Display, seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match format {
            Format::Text => {
                write!(out, "#{id} {peer}: ").unwrap();
                reference_escaped(&mut out, payload).unwrap();
                out.push(b'\n');
            }
            Format::Json => {
                let body = match std::str::from_utf8(payload) {
                    Ok(text) => format!(r#""text":{}"#, serde_json::to_string(text).unwrap()),
                    Err(_) => format!(
                        r#""payload_b64":"{}""#,
                        base64::engine::general_purpose::STANDARD.encode(payload)
                    ),
                };
                writeln!(
                    out,
                    r#"{{"v":1,"ts":"","event":"message","id":{id},"peer":"{peer}","name":"","session":null,"seq":{seq},{body}}}"#
                )
                .unwrap();
            }
        }
        out
    }

    proptest! {
        /// Sessions' messages interleaved, and numbers given again to new peers: the
        /// cached line heads must follow.
        #[test]
        fn message_lines_match_reference(
            json in any::<bool>(),
            steps in prop::collection::vec(
                (0..3usize, any::<bool>(), prop_oneof![Just(0), Just(u64::MAX), any::<u64>()], input()),
                0..24,
            ),
        ) {
            let format = if json { Format::Json } else { Format::Text };
            let mut p = Printer::new(Vec::new(), format);
            let mut expected = Vec::new();
            // Session `k` is number `k` (0 included), its peer changes when it reconnects.
            let mut peers: Vec<SocketAddr> = (0..3).map(|k| SocketAddr::from(([10, 0, 0, k], 5000))).collect();
            for (k, reconnect, seq, payload) in steps {
                let id = k as u64;
                if reconnect {
                    let old = peers[k];
                    peers[k].set_port(old.port() + 1);
                    // A fresh printer for the expected lines: these never use the cache.
                    let mut lines = Printer::new(Vec::new(), format);
                    for printer in [&mut p, &mut lines] {
                        printer.left(id, old, "eof", 1).unwrap();
                        printer.connected(id, peers[k], "ana", Mode::Binary).unwrap();
                    }
                    expected.extend(lines.out);
                }
                expected.extend(reference_message(format, id, peers[k], seq, &payload));
                p.message(id, peers[k], seq, &payload).unwrap();
            }
            prop_assert_eq!(without_ts(&p.out), without_ts(&expected));
        }
    }

    #[test]
    fn message_heads_follow_the_session() {
        let a = "127.0.0.1:5";
        let b = "127.0.0.1:6";
        let c = "127.0.0.1:7";
        let mut p = Printer::new(Vec::new(), Format::Text);
        p.message(1, a, 1, b"one").unwrap();
        p.message(1, a, 2, b"two").unwrap();
        p.message(2, b, 1, b"three").unwrap();
        p.message(1, a, 3, b"four").unwrap();
        p.left(1, a, "eof", 3).unwrap();
        p.connected(1, c, "", Mode::Binary).unwrap();
        p.message(1, c, 1, b"five").unwrap();
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            "#1 127.0.0.1:5: one\n#1 127.0.0.1:5: two\n#2 127.0.0.1:6: three\n#1 127.0.0.1:5: four\n\
             #1 127.0.0.1:5 left (eof) after 3 messages\n#1 127.0.0.1:7 connected\n#1 127.0.0.1:7: five\n"
        );

        let mut p = Printer::new(Vec::new(), Format::Json);
        p.message_from(1, a, "ana", 0xabc, 1, b"one").unwrap();
        p.message(2, b, 18_446_744_073_709_551_615, b"two").unwrap();
        p.message_from(1, a, "ana", 0xabc, 10, b"\"three\"").unwrap();
        assert_eq!(
            without_ts(&p.out),
            r#"{"v":1,"ts":"","event":"message","id":1,"peer":"127.0.0.1:5","name":"ana","session":"0000000000000abc","seq":1,"text":"one"}
{"v":1,"ts":"","event":"message","id":2,"peer":"127.0.0.1:6","name":"","session":null,"seq":18446744073709551615,"text":"two"}
{"v":1,"ts":"","event":"message","id":1,"peer":"127.0.0.1:5","name":"ana","session":"0000000000000abc","seq":10,"text":"\"three\""}
"#
        );
    }

    #[test]
    fn resumed_sessions_of_authenticated_peers_carry_the_name() {
        let mut p = Printer::new(Vec::new(), Format::Json);
        p.resumed_auth(1, "127.0.0.1:6", 2, Some("sensor-1")).unwrap();
        p.resumed_auth(2, "127.0.0.1:7", 0, None).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(p.out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "resumed");
        assert_eq!(lines[0]["messages"], 2);
        assert_eq!(lines[0]["auth"], "sensor-1");
        assert_eq!(lines[1]["event"], "resumed");
        assert!(lines[1].get("auth").is_none(), "{}", lines[1]);

        let mut p = Printer::new(Vec::new(), Format::Text);
        p.resumed_auth(1, "127.0.0.1:6", 2, Some("sensor-1")).unwrap();
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            "#1 127.0.0.1:6 resumed after 2 messages\n"
        );
    }

    #[test]
    fn authenticated_peers_are_marked_apart_from_their_own_name() {
        let mut p = Printer::new(Vec::new(), Format::Text);
        p.connected_auth(1, "127.0.0.1:5", "ana", Mode::Binary, Some("sensor-1"))
            .unwrap();
        p.connected_auth(2, "127.0.0.1:6", "", Mode::Binary, Some("sensor-2"))
            .unwrap();
        p.message_auth(1, "127.0.0.1:5", "ana", Some("sensor-1"), 7, 1, b"hi")
            .unwrap();
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            "#1 127.0.0.1:5 connected as \"ana\" (authenticated as \"sensor-1\")\n\
             #2 127.0.0.1:6 connected (authenticated as \"sensor-2\")\n#1 127.0.0.1:5: hi\n"
        );

        let mut p = Printer::new(Vec::new(), Format::Json);
        p.connected_auth(1, "127.0.0.1:5", "ana", Mode::Binary, Some("sensor-1"))
            .unwrap();
        p.message_auth(1, "127.0.0.1:5", "ana", Some("sensor-1"), 7, 1, b"hi")
            .unwrap();
        p.message_auth(2, "127.0.0.1:6", "bob", None, 8, 1, b"yo").unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(p.out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["event"], "connected");
        assert_eq!(
            (&lines[0]["name"], &lines[0]["auth"]),
            (&"ana".into(), &"sensor-1".into())
        );
        assert_eq!(
            (&lines[1]["name"], &lines[1]["auth"]),
            (&"ana".into(), &"sensor-1".into())
        );
        assert_eq!(lines[1]["text"], "hi");
        assert!(lines[2].get("auth").is_none(), "{}", lines[2]);
    }

    #[test]
    fn text_lines() {
        let mut p = Printer::new(Vec::new(), Format::Text);
        p.listening("127.0.0.1:8800").unwrap();
        p.connected(1, "127.0.0.1:5", "ana", Mode::Binary).unwrap();
        p.connected(2, "127.0.0.1:6", "", Mode::Plain).unwrap();
        p.message(1, "127.0.0.1:5", 1, b"hi\x1b").unwrap();
        p.left(1, "127.0.0.1:5", "closed by peer: normal close", 1).unwrap();
        p.refused(3, "127.0.0.1:7", "server full").unwrap();
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            "listening on 127.0.0.1:8800\n#1 127.0.0.1:5 connected as \"ana\"\n#2 127.0.0.1:6 connected (plain text)\n\
             #1 127.0.0.1:5: hi\\e\n#1 127.0.0.1:5 left (closed by peer: normal close) after 1 message\n\
             #3 127.0.0.1:7 refused (server full)\n"
        );
    }

    #[test]
    fn json_lines_parse_back() {
        let mut p = Printer::new(Vec::new(), Format::Json);
        p.connected(1, "127.0.0.1:5", "a\"b", Mode::Binary).unwrap();
        p.message(1, "127.0.0.1:5", 7, b"q\"uote\\ \x00 \xff").unwrap();
        p.left(1, "127.0.0.1:5", "eof", 1).unwrap();
        let text = String::from_utf8(p.out).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["name"], "a\"b");
        assert_eq!(lines[1]["seq"], 7);
        assert_eq!(lines[1]["text"], serde_json::Value::Null);
        let b64 = lines[1]["payload_b64"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        assert_eq!(bytes, b"q\"uote\\ \x00 \xff");
        assert_eq!(lines[2]["messages"], 1);
        assert!(lines.iter().all(|l| l["v"] == 1 && l["ts"].is_string()));
    }

    #[test]
    fn text_lines_with_timestamps() {
        let mut p = Printer::new(Vec::new(), Format::Text).with_timestamps(true);
        p.listening("127.0.0.1:8800").unwrap();
        p.message(1, "127.0.0.1:5", 1, b"hi").unwrap();
        let text = String::from_utf8(p.out).unwrap();
        let rest: Vec<&str> = text
            .lines()
            .map(|l| {
                let (ts, rest) = l.split_once(' ').unwrap();
                let t = humantime::parse_rfc3339(ts).unwrap();
                assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
                assert!(t.elapsed().unwrap() < std::time::Duration::from_secs(60));
                rest
            })
            .collect();
        assert_eq!(rest, ["listening on 127.0.0.1:8800", "#1 127.0.0.1:5: hi"]);
    }

    #[test]
    fn resumed_session_messages_show_the_new_peer() {
        let mut p = Printer::new(Vec::new(), Format::Text);
        p.message(1, "127.0.0.1:5", 1, b"a").unwrap();
        p.lost(1, "127.0.0.1:5", "connection closed by peer", 1, "60s").unwrap();
        p.resumed(1, "127.0.0.1:6", 1).unwrap();
        p.message(1, "127.0.0.1:6", 2, b"b").unwrap();
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            "#1 127.0.0.1:5: a\n#1 127.0.0.1:5 lost (connection closed by peer) after 1 message; may resume within 60s\n\
             #1 127.0.0.1:6 resumed after 1 message\n#1 127.0.0.1:6: b\n"
        );
    }
}
