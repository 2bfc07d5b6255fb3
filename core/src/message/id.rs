//! Message ids: 32 hex digits, the store's 64-bit nonce then the record's CommitLog
//! offset, so `get` finds a message without an index (RocketMQ's offsetMsgId idea).
//! A caller may give its own id instead (the RocketMQ 5 clients do: 34 hex digits);
//! the record keeps it as `UNIQ_KEY` and the key index finds it.

/// Longest id a caller may give.
pub(crate) const MAX_GIVEN_LEN: usize = 128;

/// Checks an id a caller gives: 1 to 128 printable ASCII characters, not the shape
/// of the engine's own ids (which name a record by its offset).
pub(crate) fn check_given(id: &str) -> crate::Result<()> {
    if id.is_empty() || id.len() > MAX_GIVEN_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(crate::Error::invalid(format!(
            "message id {id:?}: 1 to {MAX_GIVEN_LEN} printable ASCII characters"
        )));
    }
    if parse(id).is_some() {
        return Err(crate::Error::invalid(format!(
            "message id {id:?}: 32 hex digits is the shape of the engine's own ids"
        )));
    }
    Ok(())
}

/// Checks an id to look up: the engine's own shape, or one a caller may give.
pub(crate) fn check_lookup(id: &str) -> crate::Result<()> {
    if parse(id).is_some() || check_given(id).is_ok() {
        return Ok(());
    }
    Err(crate::Error::invalid(format!(
        "{id:?} is not a message id (32 hex digits, or 1 to {MAX_GIVEN_LEN} printable \
         ASCII characters given by the sender)"
    )))
}

/// A message id: the store's 64-bit nonce and the record's physical offset, 32 hex digits.
pub(crate) fn make(nonce: u64, offset: u64) -> String {
    thread_local! {
        // The last nonce and its digits: a store's ids share their nonce.
        static NONCE: std::cell::Cell<(u64, [u8; 16])> = const { std::cell::Cell::new((0, [b'0'; 16])) };
    }
    let mut out = [0u8; 32];
    let head = NONCE.with(|c| {
        let (last, digits) = c.get();
        if last == nonce {
            return digits;
        }
        let digits = hex(nonce);
        c.set((nonce, digits));
        digits
    });
    out[..16].copy_from_slice(&head);
    out[16..].copy_from_slice(&hex(offset));
    // SAFETY: hex digits are ASCII, so the bytes are UTF-8.
    unsafe { String::from_utf8_unchecked(out.to_vec()) }
}

/// The 16 uppercase hex digits of `v`, most significant first.
fn hex(v: u64) -> [u8; 16] {
    hex_digits(v, b'A')
}

/// The 16 hex digits of `v`, most significant first, letters from `a` (`b'A'` or
/// `b'a'`), all at once: each nibble spread to a byte of its own, then made a digit.
pub(crate) fn hex_digits(v: u64, a: u8) -> [u8; 16] {
    const ONES: u128 = u128::MAX / 0xFF;
    // Byte i (little-endian) of `x` is byte i of `v` from the top.
    let x = v.swap_bytes();
    let nibbles = 0x0F0F_0F0F_0F0F_0F0F;
    // Byte i of a u64 to byte 2i of a u128.
    let spread = |w: u64| {
        let mut w = w as u128;
        w = (w | (w << 32)) & 0x0000_0000_FFFF_FFFF_0000_0000_FFFF_FFFF;
        w = (w | (w << 16)) & 0x0000_FFFF_0000_FFFF_0000_FFFF_0000_FFFF;
        (w | (w << 8)) & 0x00FF_00FF_00FF_00FF_00FF_00FF_00FF_00FF
    };
    let n = spread((x >> 4) & nibbles) | (spread(x & nibbles) << 8);
    // 1 in each byte whose nibble is 10 or more: its digit is a letter.
    let letters = ((n + 6 * ONES) >> 4) & ONES;
    let gap = u128::from(a - b'0' - 10);
    (n + 0x30 * ONES + gap * letters).to_le_bytes()
}

/// Whether `id` has the shape of the engine's own ids (32 hex digits).
#[inline]
pub(crate) fn is_engine_id(id: &[u8]) -> bool {
    id.len() == 32 && id.iter().all(|b| b.is_ascii_hexdigit())
}

/// The (nonce, physical offset) of a message id, if it is one.
pub(crate) fn parse(id: &str) -> Option<(u64, u64)> {
    if !is_engine_id(id.as_bytes()) {
        return None;
    }
    let nonce = u64::from_str_radix(&id[..16], 16).ok()?;
    let offset = u64::from_str_radix(&id[16..], 16).ok()?;
    Some((nonce, offset))
}

/// Where a nonce of a store's message ids starts: records at `from` and past it (up
/// to the next one's start) take `nonce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Epoch {
    pub from: u64,
    pub nonce: u64,
}

/// A store's message-id nonces. A store starts with one, its identity. Each open
/// after an unclean exit starts another at the recovered end of the CommitLog: a
/// crash can lose records past that end whose ids were already handed out, and the
/// records written there next must not answer to them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Nonces {
    /// The store's first nonce, for records below every later start.
    pub first: u64,
    /// The later ones, by start, ascending.
    later: Vec<Epoch>,
}

impl Nonces {
    /// The nonces as persisted; `later` is put in order (of two with one start, the
    /// one listed last wins).
    pub fn new(first: u64, mut later: Vec<Epoch>) -> Nonces {
        later.sort_by_key(|e| e.from);
        later.dedup_by(|next, kept| {
            let same = next.from == kept.from;
            if same {
                *kept = *next;
            }
            same
        });
        Nonces { first, later }
    }

    /// The later nonces, for persisting.
    pub fn later(&self) -> &[Epoch] {
        &self.later
    }

    /// The nonce of the records written from now on.
    #[inline]
    pub fn current(&self) -> u64 {
        self.later.last().map_or(self.first, |e| e.nonce)
    }

    /// The nonce of the record at `phys`.
    #[inline]
    pub fn at(&self, phys: u64) -> u64 {
        match self.later.partition_point(|e| e.from <= phys) {
            0 => self.first,
            i => self.later[i - 1].nonce,
        }
    }

    /// Whether `(nonce, phys)`, a parsed id, names the record at `phys` of this store.
    #[inline]
    pub fn owns(&self, nonce: u64, phys: u64) -> bool {
        self.at(phys) == nonce
    }

    /// Records from `from` on take `nonce`; a start at or past `from` (whose records
    /// were all lost) is dropped.
    pub fn begin(&mut self, from: u64, nonce: u64) {
        self.later.retain(|e| e.from < from);
        self.later.push(Epoch { from, nonce });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_ids_round_trip() {
        let id = make(0xABCD, 123456);
        assert_eq!(id.len(), 32);
        assert_eq!(parse(&id), Some((0xABCD, 123456)));
        assert_eq!(parse("xyz"), None);
        assert_eq!(
            make(0x0123_4567_89AB_CDEF, 0xFF),
            "0123456789ABCDEF00000000000000FF"
        );
        for v in [0, 9, 10, 0xF0, u64::MAX, 0xA5A5_5A5A_0F0F_F0F0, 1 << 63] {
            assert_eq!(make(v, !v), format!("{v:016X}{:016X}", !v));
        }
    }

    #[test]
    fn each_range_of_the_log_has_its_nonce() {
        let mut n = Nonces::new(7, Vec::new());
        assert_eq!((n.current(), n.at(0), n.at(u64::MAX)), (7, 7, 7));
        n.begin(100, 8);
        n.begin(250, 9);
        assert_eq!((n.at(99), n.at(100), n.at(249), n.at(250)), (7, 8, 8, 9));
        assert_eq!(n.current(), 9);
        assert!(n.owns(8, 120) && !n.owns(7, 120) && !n.owns(9, 120));
        // A start whose records were all lost is replaced, not stacked.
        n.begin(250, 10);
        n.begin(200, 11);
        assert_eq!(
            n.later(),
            &[
                Epoch {
                    from: 100,
                    nonce: 8
                },
                Epoch {
                    from: 200,
                    nonce: 11
                }
            ]
        );
        assert_eq!((n.at(199), n.at(200), n.current()), (8, 11, 11));
        // Persisted lists are put in order; a repeated start keeps the last.
        let read = Nonces::new(
            1,
            vec![
                Epoch { from: 50, nonce: 3 },
                Epoch { from: 10, nonce: 2 },
                Epoch { from: 50, nonce: 4 },
            ],
        );
        assert_eq!((read.at(9), read.at(10), read.at(50)), (1, 2, 4));
    }

    #[test]
    fn given_ids_are_printable_and_never_the_engines_shape() {
        assert!(check_given("01AABBCCDDEEFF00112233445566778899").is_ok());
        assert!(check_given("order-42").is_ok());
        assert!(check_given(&"x".repeat(MAX_GIVEN_LEN)).is_ok());
        for bad in [
            "",
            "a b",
            "caf\u{e9}",
            "a\u{1}b",
            &"x".repeat(MAX_GIVEN_LEN + 1),
        ] {
            assert!(check_given(bad).is_err(), "{bad:?}");
        }
        assert!(check_given(&make(1, 2)).is_err());
    }
}
