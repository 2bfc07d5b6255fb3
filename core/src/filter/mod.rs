//! Message filters: which messages of a topic a subscription takes (RocketMQ's
//! `MessageFilter`). Matching is two-stage, as in RocketMQ: a cheap test on the
//! ConsumeQueue entry's tag code, then an exact test on the record's properties, so
//! a hash that collides never lets a message through.
//!
//! A subscription filters by tags (tag.rs) or by an SQL92 expression over the
//! properties (sql92.rs); consumers hold either behind [`MessageFilter`].

pub(crate) mod sql92;
pub(crate) mod tag;

use std::sync::Arc;

use crate::{Error, Result};
pub(crate) use sql92::SqlFilter;
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
    /// The expression in a canonical form: two filters of the same kind with the
    /// same canonical form select the same messages.
    fn canonical(&self) -> String;
    /// Whether this is an SQL92 filter (else a tag expression).
    fn is_sql(&self) -> bool {
        false
    }
    /// How the filter reads in messages: `tags "a || b"` or `sql "amount > 1"`.
    fn describe(&self) -> String {
        format!("tags {:?}", self.canonical())
    }
}

/// Whether two filters are the same subscription.
pub(crate) fn same(a: &dyn MessageFilter, b: &dyn MessageFilter) -> bool {
    a.is_sql() == b.is_sql() && a.canonical() == b.canonical()
}

/// A subscription's filter from its tag expression (`"*"`, `"A"`, `"A || B"`).
pub(crate) fn parse(expression: &str) -> Result<Arc<dyn MessageFilter>> {
    Ok(Arc::new(TagFilter::parse(expression)?))
}

/// Checks an SQL92 filter expression (`ConsumerConfig::sql`): `InvalidArgument`
/// saying what is wrong with it, if anything.
pub fn check_sql(expression: &str) -> Result<()> {
    SqlFilter::parse(expression).map(|_| ())
}

/// Checks a consumer's `tags` and `sql` as joining checks them (`InvalidArgument`
/// for a bad expression, or for tags beside sql), for callers that filter elsewhere.
pub fn check_filter(tags: &str, sql: Option<&str>) -> Result<()> {
    from_config(tags, sql).map(|_| ())
}

/// A consumer's filter: its SQL92 expression if it has one (its tags then must be
/// `"*"`, as a RocketMQ subscription is by tag or by SQL), else its tags.
pub(crate) fn from_config(tags: &str, sql: Option<&str>) -> Result<Arc<dyn MessageFilter>> {
    match sql {
        None => parse(tags),
        Some(sql) => {
            let tags = tags.trim();
            if !(tags.is_empty() || tags == "*") {
                return Err(Error::invalid(format!(
                    "give tags or sql, not both (tags {tags:?}): a subscription filters by \
                     one of them; to test the tag in SQL, use TAGS = 'name'"
                )));
            }
            Ok(Arc::new(SqlFilter::parse(sql)?))
        }
    }
}

/// A filter expression parsed once, for testing messages already received: RocketMQ's
/// `MessageSelector.byTag` / `bySql`. A consumer filters by its `tags` or `sql` itself;
/// this is for code that holds messages of several subscriptions (a server whose
/// clients share a group under different expressions, a router) and would otherwise
/// parse an expression for every message.
///
/// Two selectors are equal when they are the same subscription: the same kind and the
/// same tags in any order and spacing, or the same SQL92 text.
#[derive(Clone)]
pub struct MessageSelector {
    kind: Selector,
    expression: String,
}

#[derive(Clone)]
enum Selector {
    Tags(TagFilter),
    Sql(Arc<SqlFilter>),
}

impl MessageSelector {
    /// A tag expression: `"*"` (or empty) for all, `"A"`, `"A || B"`; one that names no
    /// tag is `InvalidArgument`.
    pub fn by_tag(expression: &str) -> Result<MessageSelector> {
        Ok(MessageSelector {
            kind: Selector::Tags(TagFilter::parse(expression)?),
            expression: expression.trim().to_string(),
        })
    }

    /// An SQL92 expression over the properties, with the tag as `TAGS` and the keys as
    /// `KEYS` (`ConsumerConfig::sql`); a bad one is `InvalidArgument` saying what is wrong.
    pub fn by_sql(expression: &str) -> Result<MessageSelector> {
        Ok(MessageSelector {
            kind: Selector::Sql(Arc::new(SqlFilter::parse(expression)?)),
            expression: expression.trim().to_string(),
        })
    }

    /// Whether this is an SQL92 selector (else a tag expression).
    pub fn is_sql(&self) -> bool {
        matches!(self.kind, Selector::Sql(_))
    }

    /// The expression as given, without surrounding blanks.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether the subscription takes `m`.
    pub fn matches(&self, m: &crate::MessageExt) -> bool {
        match &self.kind {
            Selector::Tags(t) => t.matches_tag(m.tags.as_deref()),
            Selector::Sql(s) => m.matches_sql_filter(s),
        }
    }

    fn filter(&self) -> &dyn MessageFilter {
        match &self.kind {
            Selector::Tags(t) => t,
            Selector::Sql(s) => s.as_ref(),
        }
    }
}

impl PartialEq for MessageSelector {
    fn eq(&self, other: &MessageSelector) -> bool {
        same(self.filter(), other.filter())
    }
}

impl Eq for MessageSelector {}

impl std::fmt::Debug for MessageSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageSelector({self})")
    }
}

/// `tags "a || b"` or `sql "amount > 1"`.
impl std::fmt::Display for MessageSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_sql() { "sql" } else { "tags" };
        write!(f, "{kind} {:?}", self.expression)
    }
}
