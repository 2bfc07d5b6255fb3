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
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = [0u8; 32];
    let (head, tail) = out.split_at_mut(16);
    for (half, v) in [(head, nonce), (tail, offset)] {
        for (pair, b) in half.chunks_exact_mut(2).zip(v.to_be_bytes()) {
            pair[0] = HEX[(b >> 4) as usize];
            pair[1] = HEX[(b & 0xF) as usize];
        }
    }
    std::str::from_utf8(&out).unwrap_or_default().to_owned()
}

/// The (nonce, physical offset) of a message id, if it is one.
pub(crate) fn parse(id: &str) -> Option<(u64, u64)> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let nonce = u64::from_str_radix(&id[..16], 16).ok()?;
    let offset = u64::from_str_radix(&id[16..], 16).ok()?;
    Some((nonce, offset))
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
