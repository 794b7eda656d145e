//! What the server prints: one line per event, as text or as JSON lines.
//!
//! Received bytes are shown *escaped*: printable text as is, `\` as `\\`, control
//! characters as `\n`, `\r`, `\t`, `\e` or `\xNN`, and bytes that are not UTF-8 as
//! `\xNN`. Nothing a client sends can move the cursor, change colours or be dropped.
//! Shared with the smoltcp demo, so both print the same lines.

use std::fmt::Display;
use std::io::{self, Write};

use soquete_core::Mode;

/// Writes `bytes` escaped as described in the module docs.
pub fn write_escaped<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let mut start = 0;
        for (i, c) in valid.char_indices() {
            let esc: Option<&str> = match c {
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                '\x1b' => Some("\\e"),
                _ => None,
            };
            if esc.is_none() && !c.is_control() {
                continue;
            }
            out.write_all(&valid.as_bytes()[start..i])?;
            match esc {
                Some(e) => out.write_all(e.as_bytes())?,
                None if (c as u32) < 0x100 => write!(out, "\\x{:02x}", c as u32)?,
                None => write!(out, "\\u{{{:x}}}", c as u32)?,
            }
            start = i + c.len_utf8();
        }
        out.write_all(&valid.as_bytes()[start..])?;
        for b in chunk.invalid() {
            write!(out, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// `bytes` escaped into a new string.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    // Writing to a Vec cannot fail.
    let _ = write_escaped(&mut out, bytes);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `s` as a JSON string literal.
fn write_json_str<W: Write + ?Sized>(out: &mut W, s: &[u8]) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.write_all(&s[start..i])?;
        if esc.is_empty() {
            write!(out, "\\u{b:04x}")?;
        } else {
            out.write_all(esc)?;
        }
        start = i + 1;
    }
    out.write_all(&s[start..])?;
    out.write_all(b"\"")
}

/// Text lines or JSON lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `#1 127.0.0.1:53422: hello`
    Text,
    /// `{"event":"message","id":1,"peer":"127.0.0.1:53422","seq":1,"text":"hello"}`
    Json,
}

/// Prints server events to a (buffered) writer. Call [`Printer::flush`] before
/// acknowledging what was printed.
#[derive(Debug)]
pub struct Printer<W: Write> {
    out: W,
    format: Format,
    scratch: Vec<u8>,
}

impl<W: Write> Printer<W> {
    /// A printer writing `format` lines to `out`.
    pub fn new(out: W, format: Format) -> Self {
        Printer {
            out,
            format,
            scratch: Vec::with_capacity(256),
        }
    }

    /// `listening on ADDR`
    pub fn listening(&mut self, addr: impl Display) -> io::Result<()> {
        match self.format {
            Format::Text => writeln!(self.out, "listening on {addr}"),
            Format::Json => writeln!(self.out, r#"{{"event":"listening","addr":"{addr}"}}"#),
        }
    }

    /// `#ID PEER connected as "NAME"` (or `connected (plain text)`, or just `connected`).
    pub fn connected(&mut self, id: u64, peer: impl Display, name: &str, mode: Mode) -> io::Result<()> {
        match self.format {
            Format::Text => {
                write!(self.out, "#{id} {peer} connected")?;
                if mode == Mode::Plain {
                    self.out.write_all(b" (plain text)")?;
                } else if !name.is_empty() {
                    self.out.write_all(b" as \"")?;
                    write_escaped(&mut self.out, name.as_bytes())?;
                    self.out.write_all(b"\"")?;
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
                    r#"{{"event":"connected","id":{id},"peer":"{peer}","mode":"{mode}","name":"#
                )?;
                self.scratch.clear();
                write_escaped(&mut self.scratch, name.as_bytes())?;
                write_json_str(&mut self.out, &self.scratch)?;
                self.out.write_all(b"}\n")
            }
        }
    }

    /// `#ID PEER: TEXT` with the text escaped.
    pub fn message(&mut self, id: u64, peer: impl Display, seq: u64, payload: &[u8]) -> io::Result<()> {
        match self.format {
            Format::Text => {
                write!(self.out, "#{id} {peer}: ")?;
                write_escaped(&mut self.out, payload)?;
                self.out.write_all(b"\n")
            }
            Format::Json => {
                write!(
                    self.out,
                    r#"{{"event":"message","id":{id},"peer":"{peer}","seq":{seq},"text":"#
                )?;
                self.scratch.clear();
                write_escaped(&mut self.scratch, payload)?;
                write_json_str(&mut self.out, &self.scratch)?;
                self.out.write_all(b"}\n")
            }
        }
    }

    /// `#ID PEER left (REASON) after N messages`
    pub fn left(&mut self, id: u64, peer: impl Display, reason: impl Display, messages: u64) -> io::Result<()> {
        match self.format {
            Format::Text => writeln!(self.out, "#{id} {peer} left ({reason}) after {messages} messages"),
            Format::Json => {
                write!(
                    self.out,
                    r#"{{"event":"left","id":{id},"peer":"{peer}","messages":{messages},"reason":"#
                )?;
                write_json_str(&mut self.out, reason.to_string().as_bytes())?;
                self.out.write_all(b"}\n")
            }
        }
    }

    /// `#ID PEER refused (REASON)`
    pub fn refused(&mut self, id: u64, peer: impl Display, reason: impl Display) -> io::Result<()> {
        match self.format {
            Format::Text => writeln!(self.out, "#{id} {peer} refused ({reason})"),
            Format::Json => {
                write!(self.out, r#"{{"event":"refused","id":{id},"peer":"{peer}","reason":"#)?;
                write_json_str(&mut self.out, reason.to_string().as_bytes())?;
                self.out.write_all(b"}\n")
            }
        }
    }

    /// Flushes what was printed.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_backslash_and_invalid_utf8() {
        assert_eq!(
            escape(b"plain text, acentua\xc3\xa7\xc3\xa3o"),
            "plain text, acentuação"
        );
        assert_eq!(escape(b"a\\b"), "a\\\\b");
        assert_eq!(escape(b"\x1b[2J\x07bell\r\n"), "\\e[2J\\x07bell\\r\\n");
        assert_eq!(escape(b"bad \xff\xfe end"), "bad \\xff\\xfe end");
        assert_eq!(escape("c1 \u{85} \u{9b}".as_bytes()), "c1 \\x85 \\x9b");
        assert_eq!(escape(b"\x7f"), "\\x7f");
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
             #1 127.0.0.1:5: hi\\e\n#1 127.0.0.1:5 left (closed by peer: normal close) after 1 messages\n\
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
        assert_eq!(lines[1]["text"], "q\"uote\\\\ \\x00 \\xff");
        assert_eq!(lines[2]["messages"], 1);
    }
}
