//! Tag expressions: `"*"` (or empty) takes everything; `"A || B"` takes those tags.
//! The ConsumeQueue entry's tag hash first, then the exact tag from the record, so
//! hash collisions ("Aa"/"BB") never leak.

use super::MessageFilter;
use crate::message::properties::{self, java_hash, prop};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagFilter {
    /// `None` takes everything.
    tags: Option<Vec<(String, u64)>>,
}

impl TagFilter {
    pub fn parse(expr: &str) -> Result<TagFilter> {
        let expr = expr.trim();
        if expr.is_empty() || expr == "*" {
            return Ok(TagFilter { tags: None });
        }
        let mut tags = Vec::new();
        for part in expr.split("||") {
            let t = part.trim();
            if t.is_empty() || t == "*" {
                return Err(Error::invalid(format!(
                    "tag expression {expr:?}: use \"*\" alone or tags joined by \"||\""
                )));
            }
            tags.push((t.to_string(), java_hash(t) as i64 as u64));
        }
        Ok(TagFilter { tags: Some(tags) })
    }

    /// The exact stage: the record's tag string.
    pub fn matches_tag(&self, tag: Option<&str>) -> bool {
        match (&self.tags, tag) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(tags), Some(t)) => tags.iter().any(|(s, _)| s == t),
        }
    }
}

impl MessageFilter for TagFilter {
    fn matches_code(&self, code: u64) -> bool {
        match &self.tags {
            None => true,
            Some(tags) => tags.iter().any(|(_, c)| *c == code),
        }
    }

    fn matches(&self, raw: &[u8]) -> bool {
        self.tags.is_none() || self.matches_tag(properties::value(raw, prop::TAGS))
    }

    fn takes_all(&self) -> bool {
        self.tags.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::properties::tag_code;

    #[test]
    fn collisions_pass_the_hash_but_not_the_tag() {
        let f = TagFilter::parse("Aa").unwrap();
        assert!(f.matches_code(tag_code(Some("BB"))));
        assert!(!f.matches_tag(Some("BB")));
        assert!(f.matches_tag(Some("Aa")));
        assert!(!f.matches_code(tag_code(Some("C"))));
        assert!(!f.matches_tag(None));
    }

    #[test]
    fn expressions_parse() {
        let f = TagFilter::parse(" paid ||shipped ").unwrap();
        assert!(f.matches_tag(Some("shipped")) && f.matches_tag(Some("paid")));
        assert!(TagFilter::parse("*").unwrap().matches_tag(None));
        assert!(TagFilter::parse("").unwrap().matches_code(12345));
        assert!(TagFilter::parse("a || ").is_err());
    }
}
