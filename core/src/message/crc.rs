//! CRC-32 (IEEE, as `java.util.zip.CRC32` and RocketMQ compute it) through crc32fast,
//! and the one thing crc32fast offers only slowly: carrying a CRC over a run of zero
//! bytes, with which the CRC of `a` then `b` follows from the CRCs of `a` and of `b`:
//!
//! `crc(a ++ b) = zeros(crc(a), b.len()) ^ crc(b)`
//!
//! A record carries the CRC of its body and a CRC of the whole record, body included.
//! Where crc32fast has no carry-less multiply to use (wasm), hashing the body a second
//! time costs 16 table lookups per 16 bytes; carrying the header's CRC over the body's
//! length costs 4.

/// The CRC register after byte `i` and then `k` zero bytes, from 0, for every `k`
/// below 16 (`[0]` is the usual byte table; crc32fast's slice-by-16 tables are the
/// same).
const fn zero_tables() -> [[u32; 256]; 16] {
    let mut t = [[0u32; 256]; 16];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
            bit += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

/// One zero byte: the usual byte table.
static BYTE: [u32; 256] = zero_tables()[0];
/// Sixteen zero bytes: byte `j` of the register goes in at the (j+1)-th zero and is
/// carried over the 15-j after it (`zero_tables()[15 - j]`).
static BLOCK: [[u32; 256]; 4] = {
    let t = zero_tables();
    [t[15], t[14], t[13], t[12]]
};

/// The register `crc` carried over `n` zero bytes, without the pre- and
/// post-inversions (linear in `crc`): `crc(a ++ [0; n]) = zeros(crc(a), n) ^
/// crc([0; n])`, and so `crc(a ++ b) = zeros(crc(a), b.len()) ^ crc(b)`.
#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
fn zeros(mut crc: u32, mut n: usize) -> u32 {
    let byte = |v: u32, i: u32| ((v >> (8 * i)) & 0xFF) as usize;
    while n >= 16 {
        crc = BLOCK[0][byte(crc, 0)]
            ^ BLOCK[1][byte(crc, 1)]
            ^ BLOCK[2][byte(crc, 2)]
            ^ BLOCK[3][byte(crc, 3)];
        n -= 16;
    }
    for _ in 0..n {
        crc = BYTE[byte(crc, 0)] ^ (crc >> 8);
    }
    crc
}

/// The CRC-32 of `data`.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    // The CPU's CRC instructions are looked up once, not for every record.
    static FRESH: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    let mut h = FRESH.get_or_init(crc32fast::Hasher::new).clone();
    h.update(data);
    h.finalize()
}

/// The CRC-32 of `rec`, whose bytes `body` (a range inside it) have the CRC
/// `body_crc` (unmasked).
pub(crate) fn record_crc(rec: &[u8], body: std::ops::Range<usize>, body_crc: u32) -> u32 {
    #[cfg(target_arch = "wasm32")]
    {
        around_body(rec, body, body_crc)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        // crc32fast folds many bytes per carry-less multiply here, while the
        // carry over zeros is a chain of dependent table lookups: hashing the body
        // again is the cheaper way.
        let _ = (body, body_crc);
        crc32(rec)
    }
}

/// `record_crc` without hashing the body again: the bytes before it, carried over
/// its length, combined with its CRC, continued over the bytes after it.
#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
fn around_body(rec: &[u8], body: std::ops::Range<usize>, body_crc: u32) -> u32 {
    let head = crc32(&rec[..body.start]);
    let through_body = zeros(head, body.len()) ^ body_crc;
    let mut h = crc32fast::Hasher::new_with_initial(through_body);
    h.update(&rec[body.end..]);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // java.util.zip.CRC32 of "123456789" (the CRC-32 check value).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(BYTE[1], 0x7707_3096);
    }

    /// One zero byte through crc32fast: the CRC of `crc`'s bytes and a zero, less
    /// the CRC of the zero alone.
    fn crc32fast_step(crc: u32) -> u32 {
        let mut h = crc32fast::Hasher::new_with_initial(crc);
        h.update(&[0]);
        h.finalize() ^ crc32(&[0])
    }

    #[test]
    fn zeros_agree_with_hashing_zeros_byte_by_byte() {
        for n in (0..100).chain([255, 256, 257, 271, 512, 600]) {
            for crc in [0, 1, 0x8000_0000, 0xCBF4_3926, u32::MAX] {
                let mut expect = crc;
                for _ in 0..n {
                    expect = crc32fast_step(expect);
                }
                assert_eq!(zeros(crc, n), expect, "crc {crc:#x} over {n} zeros");
            }
        }
    }

    proptest! {
        #[test]
        fn a_crc_combines_from_its_parts(
            a in proptest::collection::vec(any::<u8>(), 0..300),
            b in proptest::collection::vec(any::<u8>(), 0..2100),
        ) {
            let whole = [&a[..], &b[..]].concat();
            prop_assert_eq!(zeros(crc32(&a), b.len()) ^ crc32(&b), crc32(&whole));
        }

        #[test]
        fn a_record_crc_around_its_body_is_the_crc_of_all_of_it(
            rec in proptest::collection::vec(any::<u8>(), 0..1500),
            cut in (0usize..1500, 0usize..1500),
        ) {
            let (x, y) = (cut.0.min(rec.len()), cut.1.min(rec.len()));
            let body = x.min(y)..x.max(y);
            let body_crc = crc32(&rec[body.clone()]);
            prop_assert_eq!(around_body(&rec, body.clone(), body_crc), crc32(&rec));
            prop_assert_eq!(record_crc(&rec, body, body_crc), crc32(&rec));
        }
    }
}
