//! Message filters: which messages of a topic a subscription takes (RocketMQ's
//! `MessageFilter`). Matching is two-stage, as in RocketMQ: a cheap test on the
//! ConsumeQueue entry's tag code, then an exact test on the record's properties, so
//! a hash that collides never lets a message through.
//!
//! A new kind of filter (SQL92 over properties, say) implements [`MessageFilter`]
//! and is chosen in [`parse`]; consumers hold any filter behind the trait.

pub(crate) mod tag;

use std::sync::Arc;

use crate::Result;
pub(crate) use tag::TagFilter;

/// Decides whether a subscription takes a message.
pub(crate) trait MessageFilter: Send + Sync + std::fmt::Debug {
    /// The cheap stage: the tag code in the ConsumeQueue entry. False only when
    /// the message cannot match.
    fn matches_code(&self, code: u64) -> bool;
    /// The exact stage, on the record's encoded properties.
    fn matches(&self, properties: &[u8]) -> bool;
    /// Whether the filter takes every message (no exact stage needed).
    fn takes_all(&self) -> bool;
}

/// A subscription's filter from its tag expression (`"*"`, `"A"`, `"A || B"`).
pub(crate) fn parse(expression: &str) -> Result<Arc<dyn MessageFilter>> {
    Ok(Arc::new(TagFilter::parse(expression)?))
}
