//! Demo messages that say who sent them and in what order, so the receiver can check
//! each one: `client 3 message 41 ` followed by letters up to the requested size.

use std::io::Write;

use soquete_text::write_u64;

/// Longest message [`write()`] produces for any client and index (besides `size`).
pub const MAX_HEADER: usize = "client 4294967295 message 18446744073709551615 ".len();

/// Writes message `index` of `client`, `size` bytes long (longer if its header does not
/// fit in `size`), into `buf`; returns the message.
///
/// # Panics
/// If `buf` is shorter than `size.max(MAX_HEADER)`.
pub fn write(buf: &mut [u8], client: u32, index: u64, size: usize) -> &[u8] {
    let header = header(buf, client, index).len();
    let len = size.max(header);
    let (body, _) = buf[header..].split_at_mut(len - header);
    for chunk in body.chunks_mut(CYCLE.len() - 26) {
        chunk.copy_from_slice(filler(index, chunk.len()));
    }
    &buf[..len]
}

/// Checks a received message against what `client` must have sent as message `index`.
pub fn matches(payload: &[u8], client: u32, index: u64, size: usize) -> bool {
    let mut buf = [0u8; MAX_HEADER];
    let header = header(&mut buf, client, index);
    payload.len() == size.max(header.len())
        && payload.starts_with(header)
        && payload[header.len()..]
            .chunks(CYCLE.len() - 26)
            .all(|chunk| chunk == filler(index, chunk.len()))
}

/// The alphabet over and over: any run of the filler is a slice of it.
const CYCLE: [u8; 26 * 40] = {
    let mut cycle = [0; 26 * 40];
    let mut i = 0;
    while i < cycle.len() {
        cycle[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    cycle
};

/// `client {client} message {index} ` into `buf` (without `fmt`: this runs twice per
/// message, and `write!` was a twentieth of a run).
///
/// # Panics
/// If `buf` is shorter than [`MAX_HEADER`].
fn header(buf: &mut [u8], client: u32, index: u64) -> &[u8] {
    let room = buf.len();
    let mut cursor = &mut buf[..];
    let written = cursor
        .write_all(b"client ")
        .and_then(|()| write_u64(&mut cursor, u64::from(client)))
        .and_then(|()| cursor.write_all(b" message "))
        .and_then(|()| write_u64(&mut cursor, index))
        .and_then(|()| cursor.write_all(b" "));
    written.expect("buffer holds MAX_HEADER bytes");
    let len = room - cursor.len();
    &buf[..len]
}

/// The first `len` filler bytes of message `index` (at most `CYCLE.len() - 26`; the
/// filler repeats with period 26, so each such run starts it again): letters from
/// the `index`-th on, `a` after `z`.
fn filler(index: u64, len: usize) -> &'static [u8] {
    let start = (index % 26) as usize;
    &CYCLE[start..start + len]
}

/// The client number in a demo client's name (`client-3` → 3).
pub fn client_of_name(name: &str) -> Option<u32> {
    name.strip_prefix("client-")?.parse().ok()
}

/// The name a demo client introduces itself with.
pub fn client_name(client: u32) -> String {
    format!("client-{client}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_their_size_and_check() {
        let mut buf = [0u8; 64];
        assert_eq!(write(&mut buf, 3, 41, 30), b"client 3 message 41 pqrstuvwxy");
        assert!(matches(b"client 3 message 41 pqrstuvwxy", 3, 41, 30));
        assert!(!matches(b"client 3 message 41 pqrstuvwxy", 3, 42, 30));
        assert!(!matches(b"client 3 message 41 pqrstuvwxz", 3, 41, 30));
        // Too small for the header: the header alone.
        assert_eq!(write(&mut buf, 1, 2, 4), b"client 1 message 2 ");
    }

    #[test]
    fn long_messages_keep_the_alphabet_going() {
        let mut buf = vec![0u8; 4000];
        for index in [0, 25, 26, 1_000_003] {
            let message = write(&mut buf, 7, index, 3000).to_vec();
            let head = format!("client 7 message {index} ");
            assert!(message.starts_with(head.as_bytes()));
            for (i, &b) in message[head.len()..].iter().enumerate() {
                assert_eq!(
                    b,
                    b'a' + ((index as usize + i) % 26) as u8,
                    "byte {i} of message {index}"
                );
            }
            assert!(matches(&message, 7, index, 3000));
            let mut wrong = message.clone();
            wrong[2500] ^= 1;
            assert!(!matches(&wrong, 7, index, 3000));
        }
    }

    #[test]
    fn headers_hold_any_numbers() {
        let mut buf = [0u8; MAX_HEADER];
        for (client, index) in [(0, 0), (9, 10), (10, 99), (u32::MAX, u64::MAX)] {
            assert_eq!(
                header(&mut buf, client, index),
                format!("client {client} message {index} ").as_bytes()
            );
        }
        assert_eq!(header(&mut buf, u32::MAX, u64::MAX).len(), MAX_HEADER);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(client_of_name(&client_name(12)), Some(12));
        assert_eq!(client_of_name("ana"), None);
    }
}
