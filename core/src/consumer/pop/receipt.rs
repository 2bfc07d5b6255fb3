//! Receipt handles: the tag of a group on a topic, the queue, the offset and the delivery's
//! generation, as 40 hex digits.

use std::hash::{BuildHasher, Hasher};

use crate::message::id::hex_digits;
use crate::Error;

/// The tag of group `name`'s state on `topic` in the store of `salt` (its nonce),
/// for the topic's `incarnation` (where the log ended when it was last deleted, 0
/// for a topic never deleted): a handle of one topic's deliveries is refused by the
/// group's consumers of another, by those of the topic created again after a
/// delete, and by the consumers of another store.
pub(super) fn group_tag(salt: u64, name: &str, topic: &str, incarnation: u64) -> u32 {
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write_u64(salt);
    h.write(name.as_bytes());
    h.write_u8(0);
    h.write(topic.as_bytes());
    if incarnation != 0 {
        h.write_u64(incarnation);
    }
    h.finish() as u32
}

/// A receipt handle: group tag, queue, offset and generation, in hex.
/// Built by hand: one is made per delivery, and `format!` cost more than the rest of
/// a delivery.
pub(crate) fn handle(tag: u32, queue: u32, offset: u64, gen: u32) -> String {
    let mut out = [0u8; 40];
    out[..16].copy_from_slice(&hex_digits(u64::from(tag) << 32 | u64::from(queue), b'a'));
    out[16..32].copy_from_slice(&hex_digits(offset, b'a'));
    out[32..].copy_from_slice(&hex_digits(u64::from(gen), b'a')[8..]);
    // All ASCII hex digits.
    std::str::from_utf8(&out)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The eight hex digits of `chunk` (either case) as a number, eight bytes at a time;
/// None unless all eight are hex digits.
fn hex8(chunk: &[u8]) -> Option<u32> {
    const ONES: u64 = u64::MAX / 0xFF;
    const HIGH: u64 = ONES * 0x80;
    let x = u64::from_be_bytes(chunk.try_into().ok()?);
    if x & HIGH != 0 {
        return None;
    }
    // A byte (below 0x80) is within lo..=hi when adding 0x80 - lo sets its top bit
    // and adding 0x7F - hi does not; neither sum carries into the next byte.
    let within = |x: u64, lo: u64, hi: u64| (x + ONES * (0x80 - lo)) & !(x + ONES * (0x7F - hi));
    let digits = within(x, b'0'.into(), b'9'.into());
    let letters = within(x | (ONES * 0x20), b'a'.into(), b'f'.into());
    if (digits | letters) & HIGH != HIGH {
        return None;
    }
    // Each byte's value: its low nibble, plus 9 for a letter (bit 6 set).
    let v = (x & (ONES * 0x0F)) + ((x >> 6) & ONES) * 9;
    // Pairs of digits to bytes, bytes to halves, halves to the number.
    let v = (v | v >> 4) & 0x00FF_00FF_00FF_00FF;
    let v = (v | v >> 8) & 0x0000_FFFF_0000_FFFF;
    Some((v | v >> 16) as u32)
}

pub(super) fn parse_handle(h: &str) -> Option<(u32, u32, u64, u32)> {
    let b = h.as_bytes();
    if b.len() != 40 {
        return None;
    }
    let hi = u64::from(hex8(&b[16..24])?) << 32;
    Some((
        hex8(&b[0..8])?,
        hex8(&b[8..16])?,
        hi | u64::from(hex8(&b[24..32])?),
        hex8(&b[32..40])?,
    ))
}

pub(super) fn stale(h: &str, why: &str) -> Error {
    Error::InvalidReceiptHandle(format!("{h:?}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_handles_round_trip_and_reject_what_was_never_issued() {
        for (tag, q, off, gen) in [
            (0, 0, 0, 1),
            (u32::MAX, 7, u64::MAX, u32::MAX),
            (0xdead_beef, 3, 1 << 40, 9),
        ] {
            let h = handle(tag, q, off, gen);
            assert_eq!(h.len(), 40);
            assert_eq!(h, format!("{tag:08x}{q:08x}{off:016x}{gen:08x}"));
            assert_eq!(parse_handle(&h), Some((tag, q, off, gen)));
        }
        let upper = handle(0xABCD_EF01, 0xA, 0xFEDC_BA98_7654_3210, 0xF).to_uppercase();
        assert_eq!(
            parse_handle(&upper),
            Some((0xABCD_EF01, 0xA, 0xFEDC_BA98_7654_3210, 0xF))
        );
        // Each byte just outside the digits and letters, in every field.
        for c in ['/', ':', '@', 'G', '`', 'g', ' ', '\u{7f}'] {
            for at in [0, 7, 8, 15, 16, 31, 32, 39] {
                let mut h = "0".repeat(40).into_bytes();
                h[at] = c as u8;
                let h = String::from_utf8(h).unwrap();
                assert_eq!(parse_handle(&h), None, "{h:?}");
            }
        }
        for bad in [
            "",
            "xyz",
            &"g".repeat(40),
            &"0".repeat(39),
            &"0".repeat(41),
            &"é".repeat(20),
        ] {
            assert_eq!(parse_handle(bad), None, "{bad:?}");
        }
    }
}
