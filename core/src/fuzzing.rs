//! Entry points for the fuzz targets (`fuzz/`), behind the `fuzzing` feature: the
//! record codec and the tag filter are crate-private, and each must take any bytes
//! without panicking or reading out of bounds.

use bytes::Bytes;

use crate::filter::{self, MessageFilter};
use crate::message::id::{Epoch, Nonces};
use crate::message::properties;
use crate::message::record::{self, Parsed};
use crate::MessageExt;

/// Parses `data` as a CommitLog record at each of a few offsets, with and without
/// CRC checks, and decodes what parses as users see it.
pub fn record(data: &[u8]) {
    let at = data
        .get(..8)
        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
    for (buf, at) in [(data, at), (data, 0), (data.get(8..).unwrap_or(&[]), at)] {
        for verify in [false, true] {
            if let Parsed::Record(r) = record::parse(buf, at, verify) {
                let (body_at, len) = r.body_range();
                let body = Bytes::copy_from_slice(&r.buf[body_at..body_at + len]);
                let later = vec![Epoch {
                    from: at / 2,
                    nonce: at,
                }];
                let m = MessageExt::from_record(&r, &Nonces::new(at ^ 0x5A5A, later), body);
                let _ = (m.msg_id.len(), m.topic.len(), r.topic(), r.raw_properties());
                for (k, v) in properties::iter(r.raw_properties()) {
                    let _ = properties::value(r.raw_properties(), k) == Some(v);
                }
            }
        }
    }
}

/// Parses `expr` as a tag expression and as an SQL92 one, and matches each against tags
/// and a properties block made of `props`.
pub fn tag_expression(expr: &str, props: &[u8]) {
    if let Ok(f) = filter::SqlFilter::parse(expr) {
        let _ = (f.matches(props), f.canonical());
    }
    if let Ok(f) = filter::parse(expr) {
        for tag in [None, Some(expr), Some("a"), Some("")] {
            let code = properties::tag_code(tag);
            let _ = f.matches_code(code);
        }
        let _ = (f.matches(props), f.takes_all());
    }
    let _ = properties::iter(props).count();
    let _ = properties::value(props, "TAGS");
    let _ = properties::check_user_text("tag", expr);
}
