//! Message properties: RocketMQ's `name\x01value\x02` encoding, the names the engine
//! owns (`MessageConst`), and the Java string hash RocketMQ keys tags and sharding
//! keys by, so stores and tools agree.
//!
//! Invariant: a user may set no name in [`RESERVED_PROPERTIES`], and no name or value
//! of a user's contains a separator; so a property the engine reads was set by the engine.

pub(crate) const NAME_SEP: u8 = 1;
pub(crate) const PROP_SEP: u8 = 2;

/// The largest properties block RocketMQ accepts (a signed short).
pub(crate) const MAX_PROPERTIES_LEN: usize = 32767;

/// Property names the engine sets (RocketMQ's `MessageConst`).
pub(crate) mod prop {
    pub const TAGS: &str = "TAGS";
    pub const KEYS: &str = "KEYS";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const DELAY: &str = "DELAY";
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QID: &str = "REAL_QID";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const PGROUP: &str = "PGROUP";
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    /// On a transactional message, set by its producer: whole seconds after it is
    /// stored before its first check-back (RocketMQ's user property of this name).
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    pub const DEDUP_ID: &str = "DEDUP_ID";
    /// On a transaction's op record: how it was resolved (`ROLLBACK` when dropped).
    pub const TX_RESOLUTION: &str = "TX_RESOLUTION";
    /// On a copy made by the backlog drill or a DLQ redrive: where the original
    /// was, `topic:queue:offset`. Resuming an interrupted drill reads it.
    pub const MOVED_FROM: &str = "MOVED_FROM";
}

/// Names a user may not set: the engine owns them.
pub(crate) const RESERVED_PROPERTIES: &[&str] = &[
    "TAGS",
    "KEYS",
    "UNIQ_KEY",
    "WAIT",
    "DELAY",
    "TIMER_DELIVER_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELAY_MS",
    "TRAN_MSG",
    "PGROUP",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "ORIGIN_MESSAGE_ID",
    "RECONSUME_TIME",
    "MAX_RECONSUME_TIMES",
    "TRANSACTION_CHECK_TIMES",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "CONSUME_START_TIME",
    "__SHARDINGKEY",
    "DEDUP_ID",
    "__CRC32#",
    "__transactionId__",
    "MOVED_FROM",
];

/// The longest delay before its first check-back a transactional message may ask
/// for with `CHECK_IMMUNITY_TIME_IN_SECONDS` (one day).
pub(crate) const MAX_IMMUNITY_SECS: u64 = 86_400;

/// A `CHECK_IMMUNITY_TIME_IN_SECONDS` value in milliseconds: whole seconds, at most
/// [`MAX_IMMUNITY_SECS`].
pub(crate) fn immunity_ms(value: &str) -> Option<u64> {
    let digits = !value.is_empty() && value.len() <= 6 && value.bytes().all(|b| b.is_ascii_digit());
    let secs: u64 = value.parse().ok().filter(|_| digits)?;
    (secs <= MAX_IMMUNITY_SECS).then_some(secs * 1000)
}

/// Whether `name` is one of [`RESERVED_PROPERTIES`]. Each of them begins with a capital
/// letter or `_`, so most users' names are told apart by their first byte.
#[inline]
pub(crate) fn is_reserved(name: &str) -> bool {
    matches!(name.as_bytes().first(), Some(b'A'..=b'Z' | b'_'))
        && RESERVED_PROPERTIES.contains(&name)
}

/// The one check of every string a user puts into a record (tags, keys, property
/// names and values, sharding keys, and any later one): non-empty, and free of the
/// separators that delimit properties, so it can never be read back as a property
/// of its own. `what` names the argument in the error.
pub(crate) fn check_user_text(what: &str, s: &str) -> crate::Result<()> {
    if s.is_empty() {
        return Err(crate::Error::invalid(format!("{what} is empty")));
    }
    if has_separator(s.as_bytes()) {
        return Err(crate::Error::invalid(format!(
            "{what} {s:?} contains \\x01 or \\x02, which separate a record's properties"
        )));
    }
    Ok(())
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// Whether a byte of `w` is zero.
#[inline]
fn zero_byte(w: u64) -> bool {
    w.wrapping_sub(ONES) & !w & 0x8080_8080_8080_8080 != 0
}

/// Whether `hit` finds what it looks for in a word of `s`, eight bytes a step: the
/// last step reads the last eight bytes (again in part), and a text shorter than
/// eight is read padded with zeros, so no byte is looked at alone.
#[inline]
fn any_word(s: &[u8], hit: impl Fn(u64) -> bool) -> bool {
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    if s.len() < 8 {
        let mut padded = [0u8; 8];
        padded[..s.len()].copy_from_slice(s);
        return hit(u64::from_le_bytes(padded));
    }
    s.chunks_exact(8).any(|c| hit(word(c))) || hit(word(&s[s.len() - 8..]))
}

/// Whether `s` holds `NAME_SEP` or `PROP_SEP`.
#[inline]
fn has_separator(s: &[u8]) -> bool {
    const _: () = assert!(NAME_SEP == 1 && PROP_SEP == 2);
    // A byte of `w` is 1 or 2 when that byte of `w ^ 1s` or of `w ^ 2s` is zero.
    any_word(s, |w| zero_byte(w ^ ONES) || zero_byte(w ^ (ONES * 2)))
}

/// Whether `s` holds a space (which separates the keys a record holds), eight bytes
/// a step (zero padding is no space).
#[inline]
pub(crate) fn has_space(s: &[u8]) -> bool {
    any_word(s, |w| zero_byte(w ^ (ONES * u64::from(b' '))))
}

/// Appends the pair `name\x01` + `parts` joined by `sep` + `\x02`, with no joined
/// value built first (message keys: `KEYS` holds them joined by spaces).
pub(crate) fn push_joined(out: &mut Vec<u8>, name: &str, parts: &[String], sep: u8) {
    out.extend_from_slice(name.as_bytes());
    out.push(NAME_SEP);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out.push(PROP_SEP);
}

/// Appends one `name\x01value\x02` pair.
pub(crate) fn push(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.push(NAME_SEP);
    out.extend_from_slice(value.as_bytes());
    out.push(PROP_SEP);
}

/// The place of each name of [`READ`].
pub(crate) mod at {
    pub const TAGS: usize = 0;
    pub const KEYS: usize = 1;
    pub const DEDUP_ID: usize = 2;
    pub const UNIQ_KEY: usize = 3;
    pub const TIMER_DELIVER_MS: usize = 4;
    pub const REAL_TOPIC: usize = 5;
    pub const PGROUP: usize = 6;
    pub const TX_RESOLUTION: usize = 7;
}

/// The names dispatch reads from every record, in the order of [`Found`].
pub(crate) const READ: [&str; 8] = {
    let mut r = [""; 8];
    r[at::TAGS] = prop::TAGS;
    r[at::KEYS] = prop::KEYS;
    r[at::DEDUP_ID] = prop::DEDUP_ID;
    r[at::UNIQ_KEY] = prop::UNIQ_KEY;
    r[at::TIMER_DELIVER_MS] = prop::TIMER_DELIVER_MS;
    r[at::REAL_TOPIC] = prop::REAL_TOPIC;
    r[at::PGROUP] = prop::PGROUP;
    r[at::TX_RESOLUTION] = prop::TX_RESOLUTION;
    r
};

/// Where a properties block holds the values dispatch reads, as the send that
/// encoded it knows, so that dispatch need not look for them: the start of each
/// of the first four names of [`READ`] (those a message sent as it is can carry),
/// 16 bits each, 0 for a name the block lacks. A value runs to the next
/// `PROP_SEP` (no value holds one). [`Found::UNKNOWN`]: the send does not know
/// (dispatch looks), as for every record but a plain send's. [`values`] reads the
/// same from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found(u64);

impl Found {
    /// Not known: dispatch reads the block.
    pub(crate) const UNKNOWN: Found = Found(u64::MAX);
    /// Known to hold none of [`READ`]'s names.
    pub(crate) const NONE: Found = Found(0);

    /// Notes that the value of `READ[i]` starts at `start` (a place past 16 bits, or
    /// a name past the first four, makes it unknown).
    #[inline]
    pub(crate) fn set(&mut self, i: usize, start: usize) {
        // Once unknown it stays so: no place OR-ed in changes all ones.
        match u16::try_from(start) {
            Ok(at) if i < 4 && at != u16::MAX => {
                self.0 |= (at as u64) << (16 * i);
            }
            _ => *self = Found::UNKNOWN,
        }
    }
}

/// [`values`] of [`READ`], taken from `found` when the encoder knew it.
#[inline]
pub(crate) fn read_values(raw: &[u8], found: Found) -> [Option<&[u8]>; READ.len()] {
    let mut out = [None; READ.len()];
    if found == Found::UNKNOWN {
        return values(raw, &READ);
    }
    let mut starts = found.0;
    for slot in out.iter_mut().take(4) {
        let start = (starts & 0xffff) as usize;
        starts >>= 16;
        if start != 0 {
            // As `values` reads them, an empty value is none.
            *slot = raw
                .get(start..)
                .map(|v| &v[..find_prop_sep(v).unwrap_or(v.len())])
                .filter(|v| !v.is_empty());
        }
    }
    debug_assert_eq!(out, values(raw, &READ), "a record's found properties");
    out
}

/// [`push`], noting in `found[i]` where the value went.
#[inline]
pub(crate) fn push_found(out: &mut Vec<u8>, name: &str, value: &str, found: &mut Found, i: usize) {
    found.set(i, out.len() + name.len() + 1);
    push(out, name, value);
}

/// Checks user properties a sender encoded ([`crate::Message::encoded_properties`]):
/// pairs of `name\x01value\x02`, each name and value non-empty and the value free
/// of `\x01` (the pairs' own structure keeps `\x02` out of both and `\x01` out of
/// the name), as [`check_user_text`] would find them; then each pair passes `check`
/// (what else every user property must be). One pass over the bytes, no copies.
pub(crate) fn check_encoded(
    s: &str,
    mut check: impl FnMut(&str, &str) -> crate::Result<()>,
) -> crate::Result<()> {
    // Each byte is looked at once: the first `\x01` of a pair ends its name, a
    // second one is an error in its value, `\x02` ends the pair. (Properties are
    // short: a byte loop beats searching for each separator apart.)
    let mut start = 0;
    let mut name_end = None;
    let mut two_name_seps = false;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b > PROP_SEP {
            continue;
        }
        if b == NAME_SEP {
            two_name_seps |= name_end.is_some();
            name_end = name_end.or(Some(i));
            continue;
        }
        if b != PROP_SEP {
            continue;
        }
        // Separators are ASCII, so these are char boundaries.
        let Some(name_end) = name_end.take() else {
            return Err(crate::Error::invalid(format!(
                "encoded properties: {:?} has no \\x01 between a name and a value",
                &s[start..i]
            )));
        };
        let (name, value) = (&s[start..name_end], &s[name_end + 1..i]);
        if name.is_empty() || value.is_empty() || two_name_seps {
            // The words of the one check of user text.
            check_user_text("property name", name)?;
            check_user_text("property value", value)?;
        }
        check(name, value)?;
        start = i + 1;
        two_name_seps = false;
    }
    if start < s.len() {
        return Err(crate::Error::invalid(format!(
            "encoded properties: {:?} does not end with \\x02 (each property is \
             its name, \\x01, its value, \\x02)",
            &s[start..]
        )));
    }
    Ok(())
}

/// The pairs of an encoded properties block (pairs with an empty value are dropped, as
/// RocketMQ's decoder does).
pub(crate) fn iter(raw: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    raw.split(|b| *b == PROP_SEP).filter_map(|pair| {
        let sep = pair.iter().position(|b| *b == NAME_SEP)?;
        let name = std::str::from_utf8(&pair[..sep]).ok()?;
        let value = std::str::from_utf8(&pair[sep + 1..]).ok()?;
        (!name.is_empty() && !value.is_empty()).then_some((name, value))
    })
}

pub(crate) fn value<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    // Compare names as bytes at each pair's start (a name holds no separator), and
    // skip to the next pair eight bytes at a time: dispatch looks up every record's
    // tags and keys. Only the value found is checked as text.
    let name = name.as_bytes();
    let mut rest = raw;
    while !rest.is_empty() {
        let end = find_prop_sep(rest).unwrap_or(rest.len());
        let pair = &rest[..end];
        if pair.len() > name.len() + 1 && pair[name.len()] == NAME_SEP && pair.starts_with(name) {
            if let Ok(v) = std::str::from_utf8(&pair[name.len() + 1..]) {
                return Some(v);
            }
        }
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    None
}

/// The values of each of `names` in one pass over `raw` (the first pair of a name wins,
/// as in [`value`]), as bytes: dispatch reads several names of every record, and checks
/// as text only those it uses ([`text`]).
pub(crate) fn values<'a, const N: usize>(
    raw: &'a [u8],
    names: &[&str; N],
) -> [Option<&'a [u8]>; N] {
    let mut out = [None; N];
    let mut missing = N;
    let mut rest = raw;
    while !rest.is_empty() && missing > 0 {
        let end = find_prop_sep(rest).unwrap_or(rest.len());
        let pair = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        let Some(sep) = pair.iter().position(|b| *b == NAME_SEP) else {
            continue;
        };
        let (name, value) = (&pair[..sep], &pair[sep + 1..]);
        if value.is_empty() {
            continue;
        }
        for (slot, want) in out.iter_mut().zip(names.iter()) {
            if want.len() == name.len() && slot.is_none() && want.as_bytes() == name {
                *slot = Some(value);
                missing -= 1;
                break;
            }
        }
    }
    out
}

/// A value of [`values`] as text (None when it is not UTF-8, as [`value`] skips it).
#[inline]
pub(crate) fn text(v: Option<&[u8]>) -> Option<&str> {
    v.and_then(|v| std::str::from_utf8(v).ok())
}

/// The position of the first `PROP_SEP` in `s`, eight bytes at a time.
#[inline]
fn find_prop_sep(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    for chunk in s.chunks_exact(8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) ^ (ONES * PROP_SEP as u64);
        if zero_byte(w) {
            break;
        }
        i += 8;
    }
    s[i..].iter().position(|b| *b == PROP_SEP).map(|p| p + i)
}

/// Fails when an encoded properties block is over RocketMQ's limit (a signed short),
/// leaving room for the engine's own.
pub(crate) fn check_len(p: &[u8]) -> crate::Result<()> {
    if p.len() > MAX_PROPERTIES_LEN - 32 {
        return Err(crate::Error::invalid(format!(
            "tags, keys and properties take {} bytes encoded together, the limit is {}",
            p.len(),
            MAX_PROPERTIES_LEN - 32
        )));
    }
    Ok(())
}

/// The encoded properties of `raw` without the names in `skip`.
pub(crate) fn copy_without(raw: &[u8], skip: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    for (k, v) in iter(raw) {
        if !skip.contains(&k) {
            push(&mut out, k, v);
        }
    }
    out
}

/// Java's `String.hashCode` over UTF-16 code units, as RocketMQ's tag codes use.
pub(crate) fn java_hash(s: &str) -> i32 {
    hash_units(s.encode_utf16())
}

/// `String.hashCode`'s fold over a string's UTF-16 code units.
#[inline]
fn hash_units(units: impl IntoIterator<Item = u16>) -> i32 {
    units
        .into_iter()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(u as i32))
}

/// The ConsumeQueue tag code of a tag (0 for none), as RocketMQ stores it.
pub(crate) fn tag_code(tags: Option<&str>) -> u64 {
    tags.map_or(0, |t| java_hash(t) as i64 as u64)
}

/// [`tag_code`] of a stored `TAGS` value, as bytes: ASCII (what tags nearly always
/// are) is hashed as it is, with no UTF-8 check; other text is decoded; bytes that
/// are not UTF-8 count as no tag, as [`text`] has it.
#[inline]
pub(crate) fn tag_code_of(tags: Option<&[u8]>) -> u64 {
    match tags {
        // An ASCII byte is its own UTF-16 code unit.
        Some(t) if t.is_ascii() => hash_units(t.iter().map(|&b| u16::from(b))) as i64 as u64,
        t => tag_code(text(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pairs `check_encoded` passes on, or its error's words.
    fn checked(s: &str) -> Result<Vec<(String, String)>, String> {
        let mut pairs = Vec::new();
        check_encoded(s, |n, v| {
            pairs.push((n.to_string(), v.to_string()));
            Ok(())
        })
        .map(|()| pairs)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn encoded_properties_are_checked_pair_by_pair() {
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(checked(""), Ok(vec![]));
        assert_eq!(
            checked("origin\x01web\x02région\x01eu west\x02"),
            Ok(vec![pair("origin", "web"), pair("région", "eu west")])
        );
        let refused = [
            (
                "origin\x01web",
                "\"origin\\u{1}web\" does not end with \\x02",
            ),
            ("a\x01b\x02origin\x02", "\"origin\" has no \\x01 between"),
            ("\x01web\x02", "property name is empty"),
            ("origin\x01\x02", "property value is empty"),
            ("origin\x01w\x01eb\x02", "contains \\x01 or \\x02"),
        ];
        for (text, words) in refused {
            let err = checked(text).expect_err(text);
            assert!(err.contains(words), "{text:?}: {err}");
        }
        // The check of each pair's contents comes after its structure's.
        let err = check_encoded("a\x01b\x02c\x01d\x02", |n, _| {
            if n == "c" {
                Err(crate::Error::invalid("no c"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("no c"), "{err}");
    }

    #[test]
    fn a_stored_tag_has_the_code_of_its_text_ascii_or_not() {
        for tag in ["paid", "", "TagA||x", "ordér", "支付", "pay-\u{1F600}"] {
            assert_eq!(
                tag_code_of(Some(tag.as_bytes())),
                tag_code(Some(tag)),
                "{tag:?}"
            );
        }
        // Java's "TagA".hashCode(), as RocketMQ stores it.
        assert_eq!(tag_code_of(Some(b"TagA")), 2_598_919);
        assert_eq!(tag_code_of(None), 0);
        assert_eq!(tag_code_of(Some(&[0x61, 0xff])), 0, "not UTF-8: no tag");
    }

    #[test]
    fn a_separator_is_found_at_any_place_of_any_length_and_nothing_else_is() {
        for len in 0..40 {
            let clean: Vec<u8> = (0..len).map(|i| [b'a', 0, 3, 0x81, 0xff][i % 5]).collect();
            assert!(!has_separator(&clean), "{len}");
            for at in 0..len {
                for sep in [NAME_SEP, PROP_SEP] {
                    let mut s = clean.clone();
                    s[at] = sep;
                    assert!(has_separator(&s), "{sep} at {at} of {len}");
                }
            }
        }
        assert!(check_user_text("id", "order-\u{2}42").is_err());
        assert!(check_user_text("id", "ordér-42").is_ok());
    }

    #[test]
    fn joined_pairs_encode_as_the_joined_value_would() {
        for parts in [vec![], vec!["a"], vec!["order-1", "user-7", "x"]] {
            let parts: Vec<String> = parts.into_iter().map(String::from).collect();
            let (mut joined, mut pushed) = (Vec::new(), Vec::new());
            push_joined(&mut joined, "KEYS", &parts, b' ');
            push(&mut pushed, "KEYS", &parts.join(" "));
            assert_eq!(joined, pushed);
        }
    }

    #[test]
    fn every_reserved_name_is_reserved_and_users_names_are_not() {
        for name in RESERVED_PROPERTIES {
            assert!(is_reserved(name), "{name}");
        }
        for name in ["origin", "Origin", "TAGS2", "tags", "_x", "", "REGION", "é"] {
            assert!(!is_reserved(name), "{name}");
        }
    }

    #[test]
    fn user_text_with_a_separator_anywhere_is_refused() {
        for len in [1usize, 15, 16, 17, 31, 32, 33, 100] {
            let clean = "a".repeat(len);
            assert!(check_user_text("tag", &clean).is_ok(), "{len}");
            for at in 0..len {
                for sep in [NAME_SEP, PROP_SEP] {
                    let mut b = clean.clone().into_bytes();
                    b[at] = sep;
                    let s = String::from_utf8(b).unwrap();
                    assert!(check_user_text("tag", &s).is_err(), "{len} {at} {sep}");
                }
            }
        }
        assert!(check_user_text("tag", "").is_err());
        assert!(check_user_text("tag", "caf\u{e9}\u{0}\u{3}\u{7f}").is_ok());
    }

    #[test]
    fn java_hash_matches_java() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("Aa"), 2112);
        assert_eq!(java_hash("BB"), 2112);
        assert_eq!(java_hash("hello"), 99162322);
        assert_eq!(java_hash("TagA"), 2598919);
    }

    #[test]
    fn a_value_is_found_by_its_exact_name() {
        let mut p = Vec::new();
        push(&mut p, "TAGSX", "no");
        push(&mut p, "A", "");
        push(&mut p, "LONG", &"v".repeat(37));
        push(&mut p, "TAGS", "paid");
        push(&mut p, "A", "1");
        assert_eq!(value(&p, "TAGS"), Some("paid"));
        assert_eq!(value(&p, "TAG"), None);
        assert_eq!(value(&p, "A"), Some("1"), "an empty value is skipped");
        assert_eq!(value(&p, "LONG").map(str::len), Some(37));
        assert_eq!(value(&p, ""), None);
        assert_eq!(value(b"", "TAGS"), None);
        // Several names in one pass agree with one lookup each.
        let names = ["TAGS", "TAG", "A", "LONG", "", "TAGSX", "MISSING"];
        assert_eq!(values(&p, &names).map(text), names.map(|n| value(&p, n)));
        push(&mut p, "TAGS", "second");
        assert_eq!(
            values(&p, &["TAGS"]),
            [Some(&b"paid"[..])],
            "the first pair wins"
        );
        assert_eq!(values(b"", &["TAGS", "KEYS"]), [None, None]);
        assert_eq!(
            value(b"TAGS\x01x", "TAGS"),
            Some("x"),
            "a last pair without its separator"
        );
        for n in 0..20 {
            let s = vec![b'a'; n];
            assert_eq!(find_prop_sep(&s), None);
            let mut t = s.clone();
            t.push(PROP_SEP);
            assert_eq!(find_prop_sep(&t), Some(n));
        }
    }

    #[test]
    fn empty_values_are_dropped_like_rocketmq() {
        let mut p = Vec::new();
        push(&mut p, "a", "");
        push(&mut p, "b", "1");
        assert_eq!(iter(&p).collect::<Vec<_>>(), vec![("b", "1")]);
    }
}
