//! Plain-text framing (PROTOCOL.md §7): one message per line, `\n` with optional `\r`.
//!
//! The recognition of HTTP, TLS and binary data (§7.3) needs the `detect` feature;
//! [`is_binary`] itself is always there.

/// Finds the first complete line in `buf`.
///
/// Returns the line without its terminator (`\n` or `\r\n`) and the number of bytes it
/// occupies including the terminator, or `None` if `buf` holds no `\n` yet.
pub fn split_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let line = buf.get(..nl)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, nl.saturating_add(1)))
}

/// Another protocol recognised in the first bytes of a plain-text connection
/// (PROTOCOL.md §7.3).
#[cfg(feature = "detect")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Foreign {
    /// An HTTP request line (`GET /`, `POST /`, ...) or a header such as `Host:`.
    Http,
    /// A TLS record carrying a handshake (ClientHello).
    Tls,
    /// Binary data, not text (see [`is_binary`]): an MQTT CONNECT, a PostgreSQL
    /// StartupMessage, random bytes.
    Binary,
}

#[cfg(feature = "detect")]
const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Recognises HTTP, TLS and binary data in a connection's first bytes.
///
/// TLS is recognised by its record header: content type 0x16 (handshake), major
/// version 3. Binary data by the bytes of the first line received so far (up to the
/// first `\n`, or all of `first_bytes`), as [`is_binary`] with `first_line`. HTTP on
/// the first complete line: a method followed by a path and ` HTTP/`, or a `Host:`
/// header (as Redis does for its port).
#[cfg(feature = "detect")]
pub fn detect_foreign(first_bytes: &[u8], complete_line: Option<&[u8]>) -> Option<Foreign> {
    if let [0x16, 0x03, ..] = first_bytes {
        return Some(Foreign::Tls);
    }
    let line_start = first_bytes.split(|&b| b == b'\n').next().unwrap_or(first_bytes);
    if is_binary(line_start, true) {
        return Some(Foreign::Binary);
    }
    let line = complete_line?;
    let is_request = HTTP_METHODS.iter().any(|m| line.starts_with(m)) && contains(line, b" HTTP/");
    let is_host = line.len() >= 5 && line.get(..5).is_some_and(|h| h.eq_ignore_ascii_case(b"host:"));
    (is_request || is_host).then_some(Foreign::Http)
}

/// How many bytes at the start of a plain-text peer's first line may not be ASCII
/// controls other than TAB, LF, CR, ESC, BS and BEL (§7.3).
pub const BINARY_SNIFF_LEN: usize = 64;

/// True when `line` (a line of a plain-text peer without its line end, or the start of
/// one) is binary data rather than text (§7.3): it holds a NUL byte, or, in the first
/// line (`first_line`), one of its first [`BINARY_SNIFF_LEN`] bytes is an ASCII
/// control other than TAB, LF, CR, ESC, BS and BEL (0x01..=0x06, 0x0B, 0x0C,
/// 0x0E..=0x1A, 0x1C..=0x1F): what text typed or pasted in a terminal, with its escape
/// sequences (BEL ends an OSC sequence), holds. DEL and bytes of 0x80 and more are
/// text: text in another encoding, such as Latin-1, is still text.
pub fn is_binary(line: &[u8], first_line: bool) -> bool {
    let sniffed = if first_line {
        line.get(..BINARY_SNIFF_LEN).unwrap_or(line)
    } else {
        &[]
    };
    sniffed
        .iter()
        .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x1b | 0x08 | 0x07))
        || line.contains(&0)
}

/// How many first bytes without a line end a server waits for before it stops
/// suspecting HTTP (§7.3).
#[cfg(feature = "detect")]
pub(crate) const SNIFF_LIMIT: usize = 64;

/// True while `first_bytes` (no complete line yet) could still turn out to be an HTTP
/// request: a prefix of a method or of `Host:`, or a method and more. A server waits for
/// the line before deciding (§7.3).
#[cfg(feature = "detect")]
pub fn might_be_foreign(first_bytes: &[u8]) -> bool {
    if first_bytes.len() >= SNIFF_LIMIT {
        return false;
    }
    let host = b"host:";
    let host_prefix = first_bytes.len() <= host.len()
        && host
            .get(..first_bytes.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(first_bytes));
    host_prefix
        || HTTP_METHODS
            .iter()
            .any(|m| m.starts_with(first_bytes) || first_bytes.starts_with(m))
}

#[cfg(feature = "detect")]
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_strip_terminators() {
        assert_eq!(split_line(b"abc\r\nrest"), Some((&b"abc"[..], 5)));
        assert_eq!(split_line(b"abc\nrest"), Some((&b"abc"[..], 4)));
        assert_eq!(split_line(b"\n"), Some((&b""[..], 1)));
        assert_eq!(split_line(b"no newline"), None);
    }

    #[cfg(feature = "detect")]
    #[test]
    fn foreign_protocols_are_recognised() {
        assert_eq!(
            detect_foreign(b"GET / HTTP/1.1\r\n", Some(b"GET / HTTP/1.1")),
            Some(Foreign::Http)
        );
        assert_eq!(detect_foreign(b"Host: x\r\n", Some(b"Host: x")), Some(Foreign::Http));
        assert_eq!(
            detect_foreign(&[0x16, 0x03, 0x01, 0x02, 0x00], None),
            Some(Foreign::Tls)
        );
        assert_eq!(detect_foreign(b"GET milk", Some(b"GET milk")), None);
        // MQTT CONNECT, PostgreSQL StartupMessage: binary from their first byte.
        assert_eq!(detect_foreign(&[0x10, 0x12, 0x00, 0x04], None), Some(Foreign::Binary));
        assert_eq!(detect_foreign(&[0, 0, 0, 8, 0, 3, 0, 0], None), Some(Foreign::Binary));
        // Only the first line counts here; later lines are checked as lines.
        assert_eq!(detect_foreign(b"hi\n\x01", Some(b"hi")), None);
        assert_eq!(detect_foreign(b"ol\xe1\tx\x1b[0m\r\n", Some(b"ol\xe1\tx\x1b[0m")), None);
        assert_eq!(detect_foreign(b"hello", Some(b"hello")), None);
    }

    #[cfg(feature = "detect")]
    #[test]
    fn http_prefixes_wait_for_the_line() {
        assert!(might_be_foreign(b"GE"));
        assert!(might_be_foreign(b"POST /submit"));
        assert!(might_be_foreign(b"ho"));
        assert!(!might_be_foreign(b"Go home"));
        assert!(!might_be_foreign(b"hello"));
        assert!(!might_be_foreign(&[b'G'; 80]));
    }

    #[test]
    fn binary_is_a_nul_anywhere_or_a_control_early_in_the_first_line() {
        assert!(is_binary(b"\0", false));
        assert!(is_binary(b"a long text line then \0", false));
        assert!(!is_binary(b"ol\xe1 \xff\x7f", true));
        assert!(!is_binary(b"tab\tcr\resc\x1b[1mbs\x08 \x1b]0;title\x07", true));
        for b in (0x01..0x20).filter(|b| !b"\t\n\r\x1b\x08\x07".contains(b)) {
            assert!(is_binary(&[b'a', b], true), "{b:#x}");
            assert!(!is_binary(&[b'a', b], false), "{b:#x}");
        }
        let mut late = [b'a'; BINARY_SNIFF_LEN + 1];
        late[BINARY_SNIFF_LEN - 1] = 0x01;
        assert!(is_binary(&late, true));
        late.swap(BINARY_SNIFF_LEN - 1, BINARY_SNIFF_LEN);
        assert!(!is_binary(&late, true));
    }
}
