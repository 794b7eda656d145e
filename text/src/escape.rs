//! How received bytes are shown: escaped, so that nothing a peer sends can drive a
//! terminal.
//!
//! Printable text is written as is, `\` as `\\`, control characters as `\n`,
//! `\r`, `\t`, `\e` or `\xNN`, and bytes that are not UTF-8 as `\xNN`.
//! Nothing a client sends can move the cursor, change colours or be dropped.

use std::io::{self, Write};

/// Writes `bytes` escaped as described in the module docs.
pub fn write_escaped<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    write_escaped_as::<W, false>(out, bytes)
}

/// Writes `bytes` escaped as by [`write_escaped`], as a JSON string literal: the same
/// text with each `\` and `"` escaped once more, in one pass.
// Only its tests use it since JSON lines carry messages exactly.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn write_json_escaped<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"\"")?;
    write_escaped_as::<W, true>(out, bytes)?;
    out.write_all(b"\"")
}

/// [`write_escaped`], or with `JSON` its output escaped for a JSON string.
///
/// Runs of plain bytes are found a word at a time and copied with one `write_all`.
/// At a byte of 0x80 or more, what follows is checked as UTF-8 by `str::from_utf8`
/// (the check `utf8_chunks` makes; no byte is checked twice), and each byte it
/// rejects is escaped. In the valid part the only characters to escape besides ASCII
/// ones are the C1 controls U+0080..=U+009F: the controls (Unicode's `Cc`, which is
/// what `char::is_control` means) end there, so none needs more than `\xNN`.
fn write_escaped_as<W: Write + ?Sized, const JSON: bool>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    // `bytes[start..i]` prints as is and is not written yet.
    let mut start = 0;
    let mut i = 0;
    loop {
        i += plain_prefix_len::<JSON, false>(&bytes[i..]);
        let Some(&b) = bytes.get(i) else {
            break;
        };
        if b < 0x80 {
            out.write_all(&bytes[start..i])?;
            write_escape::<W, JSON>(out, b)?;
            i += 1;
            start = i;
            continue;
        }
        let (valid, invalid) = match std::str::from_utf8(&bytes[i..]) {
            Ok(s) => (s.len(), 0),
            Err(e) => (
                e.valid_up_to(),
                e.error_len().unwrap_or(bytes.len() - i - e.valid_up_to()),
            ),
        };
        let valid_end = i + valid;
        loop {
            i += plain_prefix_len::<JSON, true>(&bytes[i..valid_end]);
            let Some(&b) = bytes[..valid_end].get(i) else {
                break;
            };
            // In valid UTF-8, 0xC2 leads U+0080..=U+00BF: a C1 control below U+00A0.
            let (len, code) = match b {
                0xc2 if bytes[i + 1] >= 0xa0 => {
                    i += 2;
                    continue;
                }
                0xc2 => (2, bytes[i + 1]),
                _ => (1, b),
            };
            out.write_all(&bytes[start..i])?;
            write_escape::<W, JSON>(out, code)?;
            i += len;
            start = i;
        }
        out.write_all(&bytes[start..i])?;
        for &b in &bytes[i..i + invalid] {
            write_escape::<W, JSON>(out, b)?;
        }
        i += invalid;
        start = i;
    }
    out.write_all(&bytes[start..])
}

/// Writes the escape for `code`: an ASCII byte not printed as is, a C1 control's code
/// point or a byte that is not UTF-8.
fn write_escape<W: Write + ?Sized, const JSON: bool>(out: &mut W, code: u8) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if JSON && code == b'"' {
        return out.write_all(b"\\\"");
    }
    // In JSON the escape's own `\` is escaped too: `\n` becomes `\\n`.
    let at = if JSON { 2 } else { 1 };
    let mut buf = [b'\\'; 6];
    let letter = match code {
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x1b => b'e',
        _ => {
            buf[at] = b'x';
            buf[at + 1] = HEX[usize::from(code >> 4)];
            buf[at + 2] = HEX[usize::from(code & 0xf)];
            return out.write_all(&buf[..at + 3]);
        }
    };
    if letter == b'\\' {
        // Already backslashes: `\\`, or `\\\\` in JSON.
        return out.write_all(&buf[..2 * at]);
    }
    buf[at] = letter;
    out.write_all(&buf[..at + 1])
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH: u64 = ONES * 0x80;

/// The high bit of each byte of `word` that may not print as is: ASCII controls, DEL,
/// `\` (and with `JSON`, `"`), and bytes of 0x80 and more, or with `UTF8` (`word` is
/// from valid UTF-8) only 0xC2, which leads the C1 controls. Exact per byte: each sum
/// works on seven-bit values, so none carries into the next byte.
const fn specials<const JSON: bool, const UTF8: bool>(word: u64) -> u64 {
    let low = word & !HIGH;
    let below_space = !(low + ONES * (0x80 - 0x20));
    let delete = low + ONES;
    let backslash = !((low ^ (ONES * b'\\' as u64)) + ONES * 0x7f);
    let quote = if JSON {
        !((low ^ (ONES * b'"' as u64)) + ONES * 0x7f)
    } else {
        0
    };
    let ascii = (below_space | delete | backslash | quote) & !word;
    let high = if UTF8 {
        let c2 = word ^ (ONES * 0xc2);
        !(((c2 & !HIGH) + !HIGH) | c2)
    } else {
        word
    };
    (ascii | high) & HIGH
}

/// How many bytes at the start of `bytes` print as is (see [`specials`]).
fn plain_prefix_len<const JSON: bool, const UTF8: bool>(bytes: &[u8]) -> usize {
    let mut rest = bytes;
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let special = specials::<JSON, UTF8>(u64::from_le_bytes(*word));
        if special != 0 {
            return bytes.len() - rest.len() + (special.trailing_zeros() / 8) as usize;
        }
        rest = tail;
    }
    // The last few bytes, padded with plain spaces.
    let mut word = [b' '; 8];
    word[..rest.len()].copy_from_slice(rest);
    let special = specials::<JSON, UTF8>(u64::from_le_bytes(word));
    bytes.len() - rest.len() + rest.len().min((special.trailing_zeros() / 8) as usize)
}

/// `bytes` escaped into a new string.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    // Writing to a Vec cannot fail.
    let _ = write_escaped(&mut out, bytes);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `s` as a JSON string literal.
// Only its tests use it since JSON lines carry messages exactly.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn write_json_str<W: Write + ?Sized>(out: &mut W, s: &[u8]) -> io::Result<()> {
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

/// The escaper as first written, a character at a time: the oracle the fast path is
/// checked against, here and in the printer's tests.
#[cfg(test)]
pub(crate) mod oracle {
    use std::io::{self, Write};

    use proptest::prelude::*;

    use super::write_json_str;

    /// `write_escaped` as it was before the fast path: the oracle for it.
    pub(crate) fn reference_escaped<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
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

    /// A JSON string of the text escaped, as it was made before: in two passes.
    pub(crate) fn reference_json_escaped(bytes: &[u8]) -> Vec<u8> {
        let mut text = Vec::new();
        reference_escaped(&mut text, bytes).unwrap();
        let mut json = Vec::new();
        write_json_str(&mut json, &text).unwrap();
        json
    }

    /// Pieces that make interesting input when put together: plain runs long enough
    /// for whole words, any character, C1 controls, characters cut short, bytes that
    /// have an escape or start (or cannot start) a UTF-8 sequence, any byte.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        let special = [
            b'\\', b'"', b'\n', b'\r', b'\t', 0x1b, 0x00, 0x1f, b' ', b'~', 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
            0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
        ];
        prop_oneof![
            prop::collection::vec(0x20u8..0x7f, 0..24),
            any::<char>().prop_map(|c| c.to_string().into_bytes()),
            (0x80u8..0xa0).prop_map(|c| vec![0xc2, c]),
            (any::<char>(), any::<prop::sample::Index>()).prop_map(|(c, cut)| {
                let mut bytes = c.to_string().into_bytes();
                bytes.truncate(cut.index(bytes.len()).max(1));
                bytes
            }),
            prop::sample::select(special.to_vec()).prop_map(|b| vec![b]),
            any::<u8>().prop_map(|b| vec![b]),
        ]
    }

    pub(crate) fn input() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(piece(), 0..32).prop_map(|pieces| pieces.concat())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::oracle::{input, reference_escaped, reference_json_escaped};
    use super::*;

    fn escaped(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_escaped(&mut out, bytes).unwrap();
        out
    }

    fn json_escaped(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_json_escaped(&mut out, bytes).unwrap();
        out
    }

    fn reference(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        reference_escaped(&mut out, bytes).unwrap();
        out
    }

    /// Checks both escapes of `bytes` against the oracle.
    fn assert_same_as_reference(bytes: &[u8]) {
        let shown = &bytes[..bytes.len().min(16)];
        assert_eq!(escaped(bytes), reference(bytes), "text escape of {shown:02x?}...");
        assert_eq!(
            json_escaped(bytes),
            reference_json_escaped(bytes),
            "JSON escape of {shown:02x?}..."
        );
    }

    /// Bytes that matter to [`specials`], and any other.
    fn word_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(vec![
                0x00, 0x1f, 0x20, b'"', b'\\', 0x7e, 0x7f, 0x80, 0xa2, 0xc2, 0xdc, 0xff
            ]),
            any::<u8>(),
        ]
    }

    /// What [`specials`] computes, a byte at a time.
    fn specials_bytewise(word: [u8; 8], json: bool, utf8: bool) -> u64 {
        let special = |b: u8| match b {
            0x20..=0x7e => b == b'\\' || (json && b == b'"'),
            0x80.. => !utf8 || b == 0xc2,
            _ => true,
        };
        u64::from_le_bytes(word.map(|b| if special(b) { 0x80 } else { 0 }))
    }

    proptest! {
        #[test]
        fn escaping_matches_reference(bytes in input()) {
            prop_assert_eq!(escaped(&bytes), reference(&bytes));
            prop_assert_eq!(json_escaped(&bytes), reference_json_escaped(&bytes));
        }

        #[test]
        fn specials_flag_exactly_the_bytes_to_look_at(word in prop::array::uniform8(word_byte())) {
            let w = u64::from_le_bytes(word);
            prop_assert_eq!(specials::<false, false>(w), specials_bytewise(word, false, false));
            prop_assert_eq!(specials::<true, false>(w), specials_bytewise(word, true, false));
            prop_assert_eq!(specials::<false, true>(w), specials_bytewise(word, false, true));
            prop_assert_eq!(specials::<true, true>(w), specials_bytewise(word, true, true));
        }
    }

    #[test]
    fn escaping_matches_reference_for_every_char() {
        // The `\u{..}` branch of the oracle is never taken: no control is above U+009F.
        assert!((0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|c| c.is_control())
            .all(|c| (c as u32) < 0xa0));
        // In blocks, so word boundaries fall everywhere: each character whole, then cut
        // short (when it has more than one byte), then an ASCII byte.
        let chars: Vec<char> = (0..=0x10ffff).filter_map(char::from_u32).collect();
        for block in chars.chunks(509) {
            let mut bytes = Vec::new();
            for c in block {
                let mut buf = [0; 4];
                let encoded = c.encode_utf8(&mut buf).as_bytes();
                bytes.extend_from_slice(encoded);
                bytes.extend_from_slice(&encoded[..encoded.len() - 1]);
                bytes.push(b'a');
            }
            assert_same_as_reference(&bytes);
            // And ending on a cut character.
            bytes.pop();
            assert_same_as_reference(&bytes);
        }
    }

    #[test]
    fn escaping_matches_reference_for_every_two_bytes() {
        // Each lead byte with each second byte, alone and followed by continuations.
        for first in 0..=0xff {
            for second in 0..=0xff {
                for tail in [&[][..], &[0x80], &[0xbf, 0x80], &[0x80, 0x80, b'a']] {
                    let mut bytes = vec![first, second];
                    bytes.extend_from_slice(tail);
                    assert_same_as_reference(&bytes);
                }
            }
        }
    }

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
}
