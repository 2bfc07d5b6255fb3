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
        // As RocketMQ's FilterAPI: empty alternatives are skipped ("a ||" is "a"), and
        // "*" among others is a tag like any other (it matches the tag "*", not all).
        let tags: Vec<(String, u64)> = expr
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| (t.to_string(), java_hash(t) as i64 as u64))
            .collect();
        if tags.is_empty() {
            return Err(Error::invalid(format!(
                "tag expression {expr:?} names no tag: use \"*\" for all, or tags joined by \"||\""
            )));
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

    fn canonical(&self) -> String {
        match &self.tags {
            None => "*".to_string(),
            Some(tags) => {
                let mut names: Vec<&str> = tags.iter().map(|(t, _)| t.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                names.join(" || ")
            }
        }
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
        assert_eq!(TagFilter::parse("a || ").unwrap().canonical(), "a");
        let star = TagFilter::parse("a || *").unwrap();
        assert!(star.matches_tag(Some("a")) && !star.matches_tag(Some("b")));
        assert!(TagFilter::parse("||").is_err());
        assert!(TagFilter::parse(" || ").is_err());
        assert_eq!(
            TagFilter::parse("b||a || b").unwrap().canonical(),
            TagFilter::parse("a || b").unwrap().canonical()
        );
        assert_eq!(TagFilter::parse("").unwrap().canonical(), "*");
    }
}
