//! Plain-text framing (PROTOCOL.md §7): one message per line, `\n` with optional `\r`.
//!
//! The recognition of HTTP and TLS (§7.3) needs the `detect` feature.

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

/// Recognises HTTP and TLS in a connection's first bytes.
///
/// HTTP is recognised on the first complete line: a method followed by a path and
/// ` HTTP/`, or a `Host:` header (as Redis does for its port). TLS by its record header:
/// content type 0x16 (handshake), major version 3.
#[cfg(feature = "detect")]
pub fn detect_foreign(first_bytes: &[u8], complete_line: Option<&[u8]>) -> Option<Foreign> {
    if let [0x16, 0x03, ..] = first_bytes {
        return Some(Foreign::Tls);
    }
    let line = complete_line?;
    let is_request = HTTP_METHODS.iter().any(|m| line.starts_with(m)) && contains(line, b" HTTP/");
    let is_host = line.len() >= 5 && line.get(..5).is_some_and(|h| h.eq_ignore_ascii_case(b"host:"));
    (is_request || is_host).then_some(Foreign::Http)
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
}
