//! How received bytes are shown: escaped, so that nothing a peer sends can drive a
//! terminal or make a line read differently from what it is.
//!
//! Printable text is written as is. The rest is escaped, and the escaping is
//! injective: different bytes never print the same.
//!
//! | Input | Shown as |
//! |---|---|
//! | `\` | `\\` |
//! | LF, CR, TAB, ESC | `\n`, `\r`, `\t`, `\e` |
//! | Other ASCII controls (U+0000..=U+001F, U+007F) | `\xNN`, two lowercase hex digits below `80` |
//! | C1 controls (U+0080..=U+009F), format characters (Unicode's `Cf`: bidirectional overrides, isolates and marks, zero-width characters, U+FEFF, soft hyphen, tags, ...), U+2028, U+2029 | `\u{H}`: the code point in lowercase hex, as in Rust (`\u{85}`, `\u{202e}`) |
//! | A byte that is not part of valid UTF-8 | `\xNN`, always `80` or more |
//! | `"`, in a quoted string only ([`write_quoted`]) | `\"` |
//!
//! So `\x85` is the raw byte 0x85 and `\u{85}` the character U+0085 sent as UTF-8.

use std::io::{self, Write};

/// The escaping of [`write_escaped`].
const TEXT: u8 = 0;
/// The escaping of [`write_quoted`]: [`TEXT`], and `"` as `\"`.
const QUOTED: u8 = 1;

/// The digits of `\xNN` and `\u{H}`.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` escaped as described in the module docs.
pub fn write_escaped<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    write_escaped_as::<W, TEXT>(out, bytes)
}

/// Writes `bytes` between double quotes, escaped as by [`write_escaped`] and with each
/// `"` written as `\"`: the string ends at the first `"` that no `\` escapes, whatever
/// the bytes, so a name such as `ana" as "bob` cannot pass for two.
pub fn write_quoted<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"\"")?;
    write_escaped_as::<W, QUOTED>(out, bytes)?;
    out.write_all(b"\"")
}

/// [`write_escaped`], or [`write_quoted`] without its quotes, as `STYLE` says.
///
/// Runs of plain bytes are found 32 bytes at a time (see [`plain_prefix_len`]) and
/// copied with one `write_all`.
/// At a byte of 0x80 or more, what follows is checked as UTF-8 by `simdutf8`'s
/// `compat::from_utf8` (the same answers as `str::from_utf8`, the check
/// `utf8_chunks` makes, with vector instructions; no byte is checked twice), and
/// each byte it rejects is escaped. In the valid part, the word scan stops at the bytes that lead
/// the characters [`is_hidden`] names (see [`specials`]); that character is decoded
/// and looked up. Other lead bytes and continuation bytes pass: most non-ASCII text
/// (Latin, Cyrillic, CJK) is copied a word at a time too.
fn write_escaped_as<W: Write + ?Sized, const STYLE: u8>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    // `bytes[start..i]` prints as is and is not written yet.
    let mut start = 0;
    let mut i = 0;
    loop {
        i += plain_prefix_len::<STYLE, false>(&bytes[i..]);
        let Some(&b) = bytes.get(i) else {
            break;
        };
        if b < 0x80 {
            out.write_all(&bytes[start..i])?;
            write_escape::<W, STYLE>(out, b)?;
            i += 1;
            start = i;
            continue;
        }
        let (valid, invalid) = match simdutf8::compat::from_utf8(&bytes[i..]) {
            Ok(s) => (s.len(), 0),
            Err(e) => (
                e.valid_up_to(),
                e.error_len().unwrap_or(bytes.len() - i - e.valid_up_to()),
            ),
        };
        let valid_end = i + valid;
        loop {
            i += plain_prefix_len::<STYLE, true>(&bytes[i..valid_end]);
            let Some(&b) = bytes[..valid_end].get(i) else {
                break;
            };
            if b < 0x80 {
                out.write_all(&bytes[start..i])?;
                write_escape::<W, STYLE>(out, b)?;
                i += 1;
                start = i;
                continue;
            }
            let (c, len) = decode(&bytes[i..valid_end]);
            if is_hidden(c) {
                out.write_all(&bytes[start..i])?;
                write_code_point(out, c)?;
                start = i + len;
            }
            i += len;
        }
        out.write_all(&bytes[start..i])?;
        for &b in &bytes[i..i + invalid] {
            write_escape::<W, STYLE>(out, b)?;
        }
        i += invalid;
        start = i;
    }
    out.write_all(&bytes[start..])
}

/// The code point of the character that starts `utf8` (valid UTF-8, at a lead byte),
/// and its length in bytes.
fn decode(utf8: &[u8]) -> (u32, usize) {
    let lead = utf8[0];
    let (len, bits) = match lead {
        ..0xe0 => (2, lead & 0x1f),
        0xe0..0xf0 => (3, lead & 0x0f),
        _ => (4, lead & 0x07),
    };
    let c = utf8[1..len]
        .iter()
        .fold(u32::from(bits), |c, &b| c << 6 | u32::from(b & 0x3f));
    (c, len)
}

/// True for a character at or above U+0080 that is shown as `\u{H}`: a C1 control,
/// a format character (general category `Cf`, Unicode 16.0), or the line or paragraph
/// separator. These are invisible or reorder, join or break what is around them.
fn is_hidden(c: u32) -> bool {
    matches!(
        c,
        0x80..=0x9f
            | 0xad
            | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x2028..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    )
}

/// Writes `\u{H}`: `c` in lowercase hex without leading zeros.
fn write_code_point<W: Write + ?Sized>(out: &mut W, c: u32) -> io::Result<()> {
    // `\u{`, at most six digits (c <= 0x10FFFF), `}`.
    let mut buf = *b"\\u{000000}";
    let digits = (32 - (c | 1).leading_zeros()).div_ceil(4) as usize;
    for k in 0..digits {
        buf[3 + digits - 1 - k] = HEX[((c >> (4 * k)) & 0xf) as usize];
    }
    buf[3 + digits] = b'}';
    out.write_all(&buf[..4 + digits])
}

/// Writes the escape for `b`: an ASCII byte not printed as is, or a byte that is not
/// UTF-8.
fn write_escape<W: Write + ?Sized, const STYLE: u8>(out: &mut W, b: u8) -> io::Result<()> {
    let letter = match b {
        b'"' if STYLE == QUOTED => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x1b => b'e',
        _ => return out.write_all(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]),
    };
    out.write_all(&[b'\\', letter])
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH: u64 = ONES * 0x80;

/// The high bit of each byte of `word` that may not print as is: ASCII controls, DEL,
/// `\` (and in the quoted style, `"`), and bytes of 0x80 and more; or with `UTF8`
/// (`word` is from valid UTF-8) instead of the last, only the bytes that lead a
/// character [`is_hidden`] may name (0xC2, 0xD8..=0xDC, 0xE0..=0xE2, 0xEF..=0xF3).
/// Exact per byte: each sum works on seven-bit values, so none carries into the next
/// byte.
const fn specials<const STYLE: u8, const UTF8: bool>(word: u64) -> u64 {
    let low = word & !HIGH;
    let below_space = !(low + ONES * (0x80 - 0x20));
    let delete = low + ONES;
    let backslash = !((low ^ (ONES * b'\\' as u64)) + ONES * 0x7f);
    let quote = if STYLE == QUOTED {
        !((low ^ (ONES * b'"' as u64)) + ONES * 0x7f)
    } else {
        0
    };
    let ascii = (below_space | delete | backslash | quote) & !word;
    let high = if !UTF8 {
        word
    } else {
        // The lead bytes of the characters `is_hidden` names.
        high_in(word, 0xc2, 0xc2) | high_in(word, 0xd8, 0xdc) | high_in(word, 0xe0, 0xe2) | high_in(word, 0xef, 0xf3)
    };
    (ascii | high) & HIGH
}

/// [`specials`] for one byte, written so that LLVM checks a whole block of them with
/// vector compares (SSE2 on x86_64): as a signed byte, everything from 0x80 up is
/// below 0x20 too.
#[inline(always)]
const fn is_special<const STYLE: u8, const UTF8: bool>(b: u8) -> bool {
    let control_or_high = (b as i8) < 0x20;
    let ascii = b == 0x7f || b == b'\\' || (STYLE == QUOTED && b == b'"');
    if !UTF8 {
        control_or_high || ascii
    } else {
        // Controls below 0x20, and the lead bytes of the characters `is_hidden` names.
        b < 0x20
            || ascii
            || b == 0xc2
            || b.wrapping_sub(0xd8) <= 0xdc - 0xd8
            || b.wrapping_sub(0xe0) <= 0xe2 - 0xe0
            || b.wrapping_sub(0xef) <= 0xf3 - 0xef
    }
}

/// The high bit of each byte of `word` in `lo..=hi` (both 0x80 or more). Each sum
/// works on seven-bit values and stays below 0x100.
const fn high_in(word: u64, lo: u8, hi: u8) -> u64 {
    let low = word & !HIGH;
    let at_least_lo = low + ONES * (0x80 - (lo & 0x7f)) as u64;
    let above_hi = low + ONES * (0x7f - (hi & 0x7f)) as u64;
    at_least_lo & !above_hi & word & HIGH
}

/// How many bytes at the start of `bytes` print as is (see [`specials`]).
///
/// Blocks of 32 bytes are checked first, a byte at a time by [`is_special`] with the
/// results or-ed together: LLVM makes that a few vector compares per 16 bytes (SSE2
/// on x86_64), and a block with nothing to escape costs one branch. The first block
/// that holds a special byte is then looked at a word at a time, to find the byte.
fn plain_prefix_len<const STYLE: u8, const UTF8: bool>(bytes: &[u8]) -> usize {
    let mut rest = bytes;
    while let Some((block, tail)) = rest.split_first_chunk::<32>() {
        let any = block
            .iter()
            .fold(0u8, |any, &b| any | u8::from(is_special::<STYLE, UTF8>(b)));
        if any != 0 {
            break;
        }
        rest = tail;
    }
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let special = specials::<STYLE, UTF8>(u64::from_le_bytes(*word));
        if special != 0 {
            return bytes.len() - rest.len() + (special.trailing_zeros() / 8) as usize;
        }
        rest = tail;
    }
    // The last few bytes, padded with plain spaces.
    let mut word = [b' '; 8];
    word[..rest.len()].copy_from_slice(rest);
    let special = specials::<STYLE, UTF8>(u64::from_le_bytes(word));
    bytes.len() - rest.len() + rest.len().min((special.trailing_zeros() / 8) as usize)
}

/// Writes `s` as a JSON string, quotes included, byte for byte as `serde_json` writes
/// it: `"` and `\` escaped, controls below U+0020 as `\b`, `\f`, `\n`, `\r`, `\t` or
/// `\u00NN`, everything else as is.
///
/// Runs are found with [`plain_prefix_len`] in the quoted UTF-8 style, whose special
/// bytes include JSON's; the others it stops at (DEL and some lead bytes) are copied.
pub(crate) fn write_json_str<W: Write + ?Sized>(out: &mut W, s: &str) -> io::Result<()> {
    let bytes = s.as_bytes();
    out.write_all(b"\"")?;
    let mut start = 0;
    let mut i = 0;
    loop {
        i += plain_prefix_len::<QUOTED, true>(&bytes[i..]);
        let Some(&b) = bytes.get(i) else {
            break;
        };
        let letter = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            ..0x20 => 0,
            _ => {
                i += 1;
                continue;
            }
        };
        out.write_all(&bytes[start..i])?;
        if letter == 0 {
            out.write_all(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ])?;
        } else {
            out.write_all(&[b'\\', letter])?;
        }
        i += 1;
        start = i;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
}

/// `bytes` escaped into a new string.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    // Writing to a Vec cannot fail.
    let _ = write_escaped(&mut out, bytes);
    String::from_utf8_lossy(&out).into_owned()
}

/// The escaper a character at a time, with Unicode's categories taken from
/// `regex-syntax`'s tables rather than from [`is_hidden`]: the oracle the fast path is
/// checked against, here and in the printer's tests.
#[cfg(test)]
pub(crate) mod oracle {
    use std::io::{self, Write};
    use std::sync::OnceLock;

    use proptest::prelude::*;
    use regex_syntax::hir::{Class, HirKind};

    /// Which escaping to make.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Style {
        /// `write_escaped`.
        Text,
        /// `write_quoted`, without its quotes.
        Quoted,
    }

    /// The characters of general category `Cf`, `Zl` or `Zp`.
    fn is_format_or_separator(c: char) -> bool {
        static RANGES: OnceLock<Vec<(char, char)>> = OnceLock::new();
        let ranges = RANGES.get_or_init(|| {
            let hir = regex_syntax::parse(r"[\p{Cf}\p{Zl}\p{Zp}]").unwrap();
            let HirKind::Class(Class::Unicode(class)) = hir.kind() else {
                panic!("not a class: {hir:?}");
            };
            class.ranges().iter().map(|r| (r.start(), r.end())).collect()
        });
        let after = ranges.partition_point(|&(start, _)| start <= c);
        after > 0 && c <= ranges[after - 1].1
    }

    /// `write_escaped` (or another style) as first written: the oracle for it.
    pub(crate) fn reference_escaped_as<W: Write + ?Sized>(out: &mut W, bytes: &[u8], style: Style) -> io::Result<()> {
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
                    '"' if style == Style::Quoted => Some("\\\""),
                    _ => None,
                };
                let hidden = c.is_control() || is_format_or_separator(c);
                if esc.is_none() && !hidden {
                    continue;
                }
                out.write_all(&valid.as_bytes()[start..i])?;
                match esc {
                    Some(e) => out.write_all(e.as_bytes())?,
                    None if c.is_ascii() => write!(out, "\\x{:02x}", c as u32)?,
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

    /// The oracle for `write_escaped`.
    pub(crate) fn reference_escaped<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
        reference_escaped_as(out, bytes, Style::Text)
    }

    /// Pieces that make interesting input when put together: plain runs long enough
    /// for whole words, any character, C1 controls, format characters, characters cut
    /// short, bytes that have an escape or start (or cannot start) a UTF-8 sequence,
    /// any byte.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        let special = [
            b'\\', b'"', b'\n', b'\r', b'\t', 0x1b, 0x00, 0x1f, b' ', b'~', 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
            0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, b'u', b'x', b'{', b'}',
        ];
        let format = [
            '\u{ad}',
            '\u{61c}',
            '\u{200b}',
            '\u{200d}',
            '\u{200e}',
            '\u{2028}',
            '\u{202e}',
            '\u{2060}',
            '\u{2066}',
            '\u{2069}',
            '\u{feff}',
            '\u{e0001}',
            '\u{e007f}',
        ];
        prop_oneof![
            prop::collection::vec(0x20u8..0x7f, 0..24),
            any::<char>().prop_map(|c| c.to_string().into_bytes()),
            (0x80u8..0xa0).prop_map(|c| vec![0xc2, c]),
            prop::sample::select(format.to_vec()).prop_map(|c| c.to_string().into_bytes()),
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

    use super::oracle::{input, reference_escaped_as, Style};
    use super::*;

    fn escaped(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_escaped(&mut out, bytes).unwrap();
        out
    }

    fn quoted(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_quoted(&mut out, bytes).unwrap();
        out
    }

    fn reference(bytes: &[u8], style: Style) -> Vec<u8> {
        let mut out = Vec::new();
        reference_escaped_as(&mut out, bytes, style).unwrap();
        out
    }

    /// Reads back what [`write_escaped`] wrote, or with `quoted` what [`write_quoted`]
    /// wrote followed by anything: the bytes, and what follows the closing quote.
    /// Panics on anything the escaper never writes: an unknown escape, a bare `"`
    /// inside quotes, an unescaped control or format character.
    fn decode_escaped(text: &str, quoted: bool) -> (Vec<u8>, &str) {
        let mut rest = text;
        if quoted {
            rest = rest
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("no opening quote in {text:?}"));
        }
        let mut bytes = Vec::new();
        let hex = |digits: &str| u32::from_str_radix(digits, 16).unwrap_or_else(|_| panic!("bad hex {digits:?}"));
        loop {
            // A run printed as is, up to the next escape (or closing quote).
            let end = rest.find(|c| c == '\\' || (quoted && c == '"')).unwrap_or(rest.len());
            let (run, after) = rest.split_at(end);
            assert!(
                !run.chars().any(|c| c.is_control() || is_hidden(c as u32)),
                "unescaped control or format character in {run:?}"
            );
            bytes.extend_from_slice(run.as_bytes());
            let mut chars = after.chars();
            match chars.next() {
                None => {
                    assert!(!quoted, "no closing quote in {text:?}");
                    return (bytes, "");
                }
                Some('"') => return (bytes, chars.as_str()),
                Some(_) => {}
            }
            let e = chars.next().expect("lone backslash");
            rest = chars.as_str();
            match e {
                '\\' => bytes.push(b'\\'),
                '"' if quoted => bytes.push(b'"'),
                'n' => bytes.push(b'\n'),
                'r' => bytes.push(b'\r'),
                't' => bytes.push(b'\t'),
                'e' => bytes.push(0x1b),
                'x' => {
                    let (digits, tail) = rest.split_at(2);
                    rest = tail;
                    let b = u8::try_from(hex(digits)).unwrap();
                    // Two hex digits below 0x80: an ASCII control, never one with its
                    // own letter; from 0x80: a byte that is not UTF-8.
                    assert!(
                        b >= 0x80 || (b.is_ascii_control() && !b"\n\r\t\x1b".contains(&b)),
                        "\\x{digits}"
                    );
                    bytes.push(b);
                }
                'u' => {
                    let (digits, tail) = rest.strip_prefix('{').and_then(|r| r.split_once('}')).expect("\\u{H}");
                    rest = tail;
                    let c = char::from_u32(hex(digits)).unwrap();
                    assert!(!c.is_ascii() && is_hidden(c as u32), "\\u{{{digits}}}");
                    assert_eq!(format!("{:x}", c as u32), digits, "not the shortest form");
                    bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => panic!("unknown escape \\{e}"),
            }
        }
    }

    /// Checks the escapes of `bytes` against the oracle, and that they read back.
    fn assert_same_as_reference(bytes: &[u8]) {
        let shown = &bytes[..bytes.len().min(16)];
        let text = escaped(bytes);
        assert_eq!(text, reference(bytes, Style::Text), "text escape of {shown:02x?}...");
        let mut inside = quoted(bytes);
        assert_eq!(inside.pop(), Some(b'"'));
        assert_eq!(inside.remove(0), b'"');
        assert_eq!(
            inside,
            reference(bytes, Style::Quoted),
            "quoted escape of {shown:02x?}..."
        );
        let text = String::from_utf8(text).unwrap();
        assert_eq!(decode_escaped(&text, false).0, bytes);
    }

    /// Bytes that matter to [`specials`], and any other.
    fn word_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(vec![
                0x00, 0x1f, 0x20, b'"', b'\\', 0x7e, 0x7f, 0x80, 0xa2, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xd7, 0xd8, 0xdc,
                0xdd, 0xdf, 0xe0, 0xe2, 0xe3, 0xee, 0xef, 0xf3, 0xf4, 0xff
            ]),
            any::<u8>(),
        ]
    }

    /// What [`specials`] computes, a byte at a time.
    fn specials_bytewise(word: [u8; 8], style: u8, utf8: bool) -> u64 {
        let special = |b: u8| match b {
            0x20..=0x7e => b == b'\\' || (style == QUOTED && b == b'"'),
            0x80.. if !utf8 => true,
            0x80.. => matches!(b, 0xc2 | 0xd8..=0xdc | 0xe0..=0xe2 | 0xef..=0xf3),
            _ => true,
        };
        u64::from_le_bytes(word.map(|b| if special(b) { 0x80 } else { 0 }))
    }

    proptest! {
        #[test]
        fn escaping_matches_reference(bytes in input()) {
            assert_same_as_reference(&bytes);
        }

        /// Different bytes never print the same: what is printed reads back to the
        /// bytes, and a quoted string ends where it was closed.
        #[test]
        fn escaping_is_injective(bytes in input(), after in input()) {
            let text = String::from_utf8(escaped(&bytes)).unwrap();
            prop_assert_eq!(decode_escaped(&text, false), (bytes.clone(), ""));
            let tail = escape(&after);
            let mut line = String::from_utf8(quoted(&bytes)).unwrap();
            line.push_str(&tail);
            prop_assert_eq!(decode_escaped(&line, true), (bytes, tail.as_str()));
        }

        #[test]
        fn one_byte_and_word_checks_agree(b in any::<u8>()) {
            for (style, utf8) in [(TEXT, false), (QUOTED, false), (TEXT, true), (QUOTED, true)] {
                let expected = specials_bytewise([b; 8], style, utf8) != 0;
                let got = match (style, utf8) {
                    (TEXT, false) => is_special::<TEXT, false>(b),
                    (QUOTED, false) => is_special::<QUOTED, false>(b),
                    (TEXT, true) => is_special::<TEXT, true>(b),
                    _ => is_special::<QUOTED, true>(b),
                };
                prop_assert_eq!(got, expected, "byte {:#04x} style {} utf8 {}", b, style, utf8);
            }
        }

        #[test]
        fn specials_flag_exactly_the_bytes_to_look_at(word in prop::array::uniform8(word_byte())) {
            let w = u64::from_le_bytes(word);
            prop_assert_eq!(specials::<TEXT, false>(w), specials_bytewise(word, TEXT, false));
            prop_assert_eq!(specials::<QUOTED, false>(w), specials_bytewise(word, QUOTED, false));
            prop_assert_eq!(specials::<TEXT, true>(w), specials_bytewise(word, TEXT, true));
            prop_assert_eq!(specials::<QUOTED, true>(w), specials_bytewise(word, QUOTED, true));
        }
    }

    #[test]
    fn escaping_matches_reference_for_every_char() {
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

    fn assert_json_as_serde(s: &str) {
        let mut ours = Vec::new();
        write_json_str(&mut ours, s).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(s).unwrap());
    }

    proptest! {
        #[test]
        fn json_strings_match_serde_json(bytes in input()) {
            assert_json_as_serde(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn json_strings_match_serde_json_for_every_ascii_byte_anywhere() {
        for b in 0..0x80u8 {
            for plain in ["x", "é"] {
                let run = plain.repeat(40);
                for at in (0..=run.len()).filter(|&at| run.is_char_boundary(at)) {
                    let mut s = run[..at].to_string();
                    s.push(char::from(b));
                    s.push_str(&run[at..]);
                    assert_json_as_serde(&s);
                }
            }
        }
        for c in (0x80..=0x10ffff).filter_map(char::from_u32) {
            assert_json_as_serde(&format!("a{c}\"{c}"));
        }
    }

    #[test]
    fn one_special_anywhere_in_long_plain_runs() {
        // Long runs are checked a block at a time: put each kind of byte that needs a
        // look at every offset of a few blocks, in plain ASCII and in plain UTF-8.
        let specials: [&[u8]; 6] = [b"\n", b"\\", b"\"", "\u{202e}".as_bytes(), b"\xff", "\u{85}".as_bytes()];
        for plain in ["x", "é"] {
            let run = plain.repeat(100);
            for special in specials {
                for at in 0..=run.len() {
                    if !run.is_char_boundary(at) {
                        continue;
                    }
                    let mut bytes = run.as_bytes()[..at].to_vec();
                    bytes.extend_from_slice(special);
                    bytes.extend_from_slice(&run.as_bytes()[at..]);
                    assert_same_as_reference(&bytes);
                }
            }
        }
    }

    #[test]
    fn every_hidden_character_is_shown_by_its_code_point() {
        let named = [
            // Bidirectional embeddings, overrides, isolates and marks.
            0x202a..=0x202e,
            0x2066..=0x2069,
            0x200e..=0x200f,
            0x061c..=0x061c,
            // Zero-width space, joiners, word joiner, invisible operators, BOM.
            0x200b..=0x200d,
            0x2060..=0x2064,
            0xfeff..=0xfeff,
            // C1 controls, line and paragraph separators, tags.
            0x80..=0x9f,
            0x2028..=0x2029,
            0xe0001..=0xe0001,
            0xe0020..=0xe007f,
        ];
        for c in named.into_iter().flatten() {
            assert!(is_hidden(c), "{c:x}");
            let ch = char::from_u32(c).unwrap();
            let expected = format!("\\u{{{c:x}}}");
            assert_eq!(escape(ch.to_string().as_bytes()), expected);
            assert_eq!(escape(format!("a{ch}b").as_bytes()), format!("a{expected}b"));
        }
        // Every other character above ASCII prints as is.
        let shown = (0x80..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| !is_hidden(c as u32));
        for c in shown {
            let s = c.to_string();
            assert_eq!(escape(s.as_bytes()), s);
        }
    }

    #[test]
    fn code_points_and_raw_bytes_print_differently() {
        // U+0085 sent as UTF-8, and the byte 0x85 that is not UTF-8.
        assert_eq!(escape(b"\xc2\x85"), "\\u{85}");
        assert_eq!(escape(b"\x85"), "\\x85");
        assert_eq!(escape(b"\\x85"), "\\\\x85");
        assert_eq!(escape(b"\\u{85}"), "\\\\u{85}");
        assert_eq!(escape(b"\xc2"), "\\xc2");
    }

    #[test]
    fn quoted_names_parse_one_way() {
        assert_eq!(quoted(b"ana"), b"\"ana\"");
        assert_eq!(quoted(br#"ana" as "bob"#), br#""ana\" as \"bob""#);
        assert_eq!(quoted(br#"a\"b"#), br#""a\\\"b""#);
        assert_eq!(quoted("\u{202e}bob".as_bytes()), br#""\u{202e}bob""#);
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
        assert_eq!(escape("c1 \u{85} \u{9b}".as_bytes()), "c1 \\u{85} \\u{9b}");
        assert_eq!(escape(b"\x7f"), "\\x7f");
        assert_eq!(escape(b"\"quoted\""), "\"quoted\"");
        assert_eq!(
            escape("evil\u{202e}txt.exe zero\u{200b}width \u{feff}bom".as_bytes()),
            "evil\\u{202e}txt.exe zero\\u{200b}width \\u{feff}bom"
        );
        assert_eq!(escape("日本語 ñ €".as_bytes()), "日本語 ñ €");
    }
}
