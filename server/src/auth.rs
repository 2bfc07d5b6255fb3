//! The `authorization` header of the RocketMQ 5 clients:
//! `MQv2-HMAC-SHA1 Credential=<access key>, SignedHeaders=x-mq-date-time, Signature=<hex>`,
//! where the signature is HMAC-SHA1 keyed with the secret over the `x-mq-date-time`
//! header's value (`yyyyMMddTHHmmssZ`). Node and Java send upper-case hex, Python
//! lower-case: both are accepted.
//!
//! The date is signed but its freshness is not checked: the Python client formats its
//! local time with a `Z` suffix, so a skew check would refuse it outside UTC hosts.
//! Over plaintext this is authentication, not secrecy; use TLS off loopback.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use tonic::metadata::MetadataMap;

use crate::config::Credentials;
use crate::proto::Code;
use crate::status::Refusal;

const ALGORITHM: &str = "MQv2-HMAC-SHA1";
const DATE_TIME: &str = "x-mq-date-time";

/// Checks a call's signature against `creds`.
pub(crate) fn verify(creds: &Credentials, md: &MetadataMap) -> Result<(), Refusal> {
    let refuse = |why: &str| Refusal::new(Code::Unauthorized, why.to_string());
    let header = md
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refuse("the authorization header is missing"))?;
    let parsed = parse(header).ok_or_else(|| refuse("the authorization header is malformed"))?;
    if parsed.credential != creds.access_key {
        return Err(refuse("unknown access key"));
    }
    if !parsed
        .signed_headers
        .split(';')
        .any(|h| h.eq_ignore_ascii_case(DATE_TIME))
    {
        return Err(refuse("the signature must cover x-mq-date-time"));
    }
    let date = md
        .get(DATE_TIME)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refuse("the x-mq-date-time header is missing"))?;
    let given = decode_hex(parsed.signature).ok_or_else(|| refuse("the signature is not hex"))?;
    let mut mac = Hmac::<Sha1>::new_from_slice(creds.secret_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(date.as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| refuse("the signature does not match"))
}

/// The signature a client with `secret` sends for `date_time` (upper-case hex, as Node).
pub fn sign(secret: &str, date_time: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(date_time.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The whole `authorization` value a client sends.
pub fn authorization(access_key: &str, secret: &str, date_time: &str) -> String {
    format!(
        "{ALGORITHM} Credential={access_key}, SignedHeaders={DATE_TIME}, Signature={}",
        sign(secret, date_time)
    )
}

struct Parsed<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse(header: &str) -> Option<Parsed<'_>> {
    let rest = header.trim().strip_prefix(ALGORITHM)?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed_headers = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    Some(Parsed {
        credential: credential?,
        signed_headers: signed_headers?,
        signature: signature?,
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key: "ak".into(),
            secret_key: "sk".into(),
        }
    }

    fn md(auth: &str, date: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", auth.parse().unwrap());
        m.insert("x-mq-date-time", date.parse().unwrap());
        m
    }

    #[test]
    fn signatures_in_either_case_pass() {
        let date = "20260101T000000Z";
        let upper = authorization("ak", "sk", date);
        assert!(verify(&creds(), &md(&upper, date)).is_ok());
        let lower = format!(
            "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature={}",
            sign("sk", date).to_lowercase()
        );
        assert!(verify(&creds(), &md(&lower, date)).is_ok());
    }

    #[test]
    fn a_known_vector_matches() {
        // HMAC-SHA1(key "key", "The quick brown fox jumps over the lazy dog")
        assert_eq!(
            sign("key", "The quick brown fox jumps over the lazy dog"),
            "DE7C9B85B8B78AA6BC8A7A36F70A90701C9DB4D9"
        );
    }

    #[test]
    fn wrong_keys_dates_and_shapes_are_unauthorized() {
        let date = "20260101T000000Z";
        for (auth, d) in [
            (authorization("ak", "wrong", date), date),
            (authorization("other", "sk", date), date),
            (authorization("ak", "sk", date), "20260101T000001Z"),
            (
                "MQv2-HMAC-SHA1 Credential=, SignedHeaders=x-mq-date-time, Signature=".into(),
                date,
            ),
            ("Basic abc".into(), date),
        ] {
            let r = verify(&creds(), &md(&auth, d)).unwrap_err();
            assert_eq!(r.code, Code::Unauthorized, "{auth}");
        }
        assert!(verify(&creds(), &MetadataMap::new()).is_err());
    }
}
