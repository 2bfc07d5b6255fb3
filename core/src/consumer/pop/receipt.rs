//! Receipt handles: a group's tag, the queue, the offset and the delivery's
//! generation, as 40 hex digits.

use std::hash::{BuildHasher, Hasher};

use crate::Error;

pub(super) fn group_tag(name: &str) -> u32 {
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(name.as_bytes());
    h.finish() as u32
}

/// A receipt handle: group tag, queue, offset and generation, in hex.
/// Built by hand: one is made per delivery, and `format!` cost more than the rest of
/// a delivery.
pub(crate) fn handle(tag: u32, queue: u32, offset: u64, gen: u32) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 40];
    let mut put = |at: usize, v: u64, digits: usize| {
        for i in 0..digits {
            out[at + i] = HEX[((v >> (4 * (digits - 1 - i))) & 0xf) as usize];
        }
    };
    put(0, tag.into(), 8);
    put(8, queue.into(), 8);
    put(16, offset, 16);
    put(32, gen.into(), 8);
    // All ASCII hex digits.
    std::str::from_utf8(&out)
        .map(str::to_owned)
        .unwrap_or_default()
}

pub(super) fn parse_handle(h: &str) -> Option<(u32, u32, u64, u32)> {
    let b = h.as_bytes();
    if b.len() != 40 {
        return None;
    }
    let field = |from: usize, to: usize| -> Option<u64> {
        b[from..to].iter().try_fold(0u64, |v, &c| {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return None,
            };
            Some(v << 4 | u64::from(d))
        })
    };
    Some((
        field(0, 8)? as u32,
        field(8, 16)? as u32,
        field(16, 32)?,
        field(32, 40)? as u32,
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
