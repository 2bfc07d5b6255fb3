//! What receives hand out: a stored message as users see it, the receipt that
//! finds it again, and the record taken under the lock that becomes one.

use std::cell::Cell;

use super::*;
use crate::message::id::Nonces;

/// Where a delivered message came from, so `ack`/`nack` find it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub(crate) consumer: u64,
    pub(crate) slot: usize,
    pub(crate) queue_offset: u64,
    pub(crate) epoch: u64,
}

/// Most bytes of records one read hands out (a receive of either consumer kind,
/// `browse`, the queries, `dead_letters`) once it has its first message: past it the
/// read returns fewer than asked, as one RocketMQ pull stops at its byte caps. It
/// bounds what one call copies out (a wasm engine has 4 GiB for everything).
pub(crate) const READ_BUDGET: u64 = 64 << 20;

/// A message a receive took under the engine lock, built into a `MessageExt` after
/// the lock is released: the parsing and allocating of a delivery run on the
/// receiving thread while others send and receive.
pub(crate) struct Taken {
    /// The whole record, a zero-copy view of its segment.
    pub record: Bytes,
    pub phys: u64,
    pub how: Delivery,
}

/// The list a receive takes its messages into, room for `capacity`: the one this
/// thread used last, cleared, so a steady receiver allocates nothing under the lock.
/// (A list of 32 is a large request to glibc's malloc, and a large request first
/// merges every small block freed since: the strings of the batch the caller just
/// dropped, which would then serve the next batch's strings by the slow path.)
pub(crate) fn taken_list(capacity: usize) -> Vec<Taken> {
    let mut list = SPARE_TAKEN.try_with(Cell::take).unwrap_or_default();
    list.reserve(capacity);
    list
}

/// Keeps an emptied list `taken_list` handed out for the thread's next receive
/// (unless it is longer than `SPARE_MAX`).
pub(crate) fn keep_taken_list(list: Vec<Taken>) {
    if list.capacity() <= SPARE_MAX {
        // A thread past its locals' end (a receive from one's destructor) keeps none.
        let _ = SPARE_TAKEN.try_with(|spare| spare.set(list));
    }
}

/// The longest lists a thread keeps between receives (a receive of thousands is rare,
/// and its lists are not worth their memory while the thread does other work).
const SPARE_MAX: usize = 1024;

/// The messages of what a receive took (`Taken::build`), in a list allocated at the
/// end of the thread's previous receive, for the reason `taken_list` gives: then few
/// small blocks were free, and its strings now take the ones freed since as they
/// are. A list more than a quarter too long is not handed out (a caller may keep
/// many); the taken list goes back for the next receive. No list over `SPARE_MAX`
/// is kept.
pub(crate) fn build_all(mut taken: Vec<Taken>, ids: &Nonces) -> Vec<MessageExt> {
    let n = taken.len();
    let spare = SPARE_BUILT.try_with(Cell::take).unwrap_or_default();
    let mut out = if (n..=n + n / 4).contains(&spare.capacity()) {
        spare
    } else {
        Vec::with_capacity(n)
    };
    out.extend(taken.drain(..).filter_map(|t| t.build(ids)));
    keep_taken_list(taken);
    if n <= SPARE_MAX {
        let _ = SPARE_BUILT.try_with(|spare| spare.set(Vec::with_capacity(n)));
    }
    out
}

thread_local! {
    static SPARE_TAKEN: Cell<Vec<Taken>> = const { Cell::new(Vec::new()) };
    static SPARE_BUILT: Cell<Vec<MessageExt>> = const { Cell::new(Vec::new()) };
}

/// What a delivery adds to the stored message.
pub(crate) enum Delivery {
    /// A classic consumer's: the receipt acks name, and reconsumes an orderly queue
    /// counted in place.
    Classic { receipt: Receipt, retries: u32 },
    /// A simple consumer's: the receipt handle's parts, and which attempt this is.
    Simple {
        tag: u32,
        queue: u32,
        offset: u64,
        gen: u32,
        attempt: u32,
    },
}

impl Taken {
    /// The message; None (logged) when the record does not parse, which recovery's
    /// checks leave to damage after startup.
    pub fn build(self, ids: &Nonces) -> Option<MessageExt> {
        let record::Parsed::Record(r) = record::parse(&self.record, self.phys, false) else {
            log::error!("the record at {} no longer parses; skipped", self.phys);
            return None;
        };
        let (at, len) = r.body_range();
        let mut m = MessageExt::from_record(&r, ids, self.record.slice(at..at + len));
        match self.how {
            Delivery::Classic { receipt, retries } => {
                m.reconsume_times += retries;
                m.receipt = Some(receipt);
            }
            Delivery::Simple {
                tag,
                queue,
                offset,
                gen,
                attempt,
            } => {
                m.receipt_handle = Some(crate::consumer::pop::handle(tag, queue, offset, gen));
                m.delivery_attempt = attempt;
                m.reconsume_times = attempt - 1;
            }
        }
        Some(m)
    }
}

/// A stored message, as `receive`, `get` and `query` return it.
#[derive(Debug, Clone, Default)]
pub struct MessageExt {
    /// The message id: the engine's (32 hex digits naming its record), or the one
    /// the producer gave (`Message::msg_id`).
    pub msg_id: String,
    /// The topic the producer sent to (also on a redelivery from the retry topic).
    pub topic: String,
    /// The queue of the topic it was read from.
    pub queue_id: u32,
    /// Its offset in that queue.
    pub queue_offset: u64,
    /// Its record's offset in the CommitLog.
    pub commitlog_offset: u64,
    /// The body.
    pub body: Bytes,
    /// The tag, if the producer set one.
    pub tags: Option<String>,
    /// The keys the producer set (indexed: `Broker::query` finds it by them).
    pub keys: Vec<String>,
    /// User properties, plus the engine's where it set some (`RETRY_TOPIC`, `ORIGIN_MESSAGE_ID`, ...).
    pub properties: BTreeMap<String, String>,
    /// When the producer sent it (ms since the epoch).
    pub born_timestamp: u64,
    /// When the broker stored it (ms since the epoch).
    pub store_timestamp: u64,
    /// Deliveries before this one that failed (0 on the first).
    pub reconsume_times: u32,
    /// RocketMQ's system flags of its record (transaction state bits and others).
    pub sys_flag: u32,
    /// For a committed transactional message: the CommitLog offset of its half message.
    pub prepared_transaction_offset: u64,
    /// From a simple consumer: this delivery's receipt handle (new on every delivery
    /// and change of invisibility); None elsewhere.
    pub receipt_handle: Option<String>,
    /// From a simple consumer: which delivery this is (1 the first); 1 elsewhere.
    pub delivery_attempt: u32,
    pub(crate) receipt: Option<Receipt>,
}

impl MessageExt {
    /// The body as UTF-8 text, if it is.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// Whether a subscription with this tag expression (`"*"`, `"A"`, `"A || B"`)
    /// takes the message; a bad expression is `InvalidArgument`. To test many
    /// messages, parse the expression once: [`crate::MessageSelector`].
    pub fn matches_tags(&self, expression: &str) -> crate::Result<bool> {
        Ok(crate::filter::TagFilter::parse(expression)?.matches_tag(self.tags.as_deref()))
    }

    /// Whether a subscription with this SQL92 expression (`ConsumerConfig::sql`) takes
    /// the message; a bad expression is `InvalidArgument`. It sees the properties,
    /// and the tag and keys as `TAGS` and `KEYS` (keys joined by spaces). To test many
    /// messages, parse the expression once: [`crate::MessageSelector`].
    pub fn matches_sql(&self, expression: &str) -> crate::Result<bool> {
        Ok(self.matches_sql_filter(&crate::filter::SqlFilter::parse(expression)?))
    }

    /// Whether `filter` takes the message: it sees the properties, the tag as `TAGS`
    /// and the keys joined by spaces as `KEYS`.
    pub(crate) fn matches_sql_filter(&self, filter: &crate::filter::SqlFilter) -> bool {
        let keys = self.keys.join(" ");
        let get = |name: &str| -> Option<&str> {
            match name {
                prop::TAGS => self.tags.as_deref(),
                prop::KEYS => (!keys.is_empty()).then_some(keys.as_str()),
                _ => self.properties.get(name).map(String::as_str),
            }
        };
        filter.matches_with(&get)
    }

    /// The message as users see it. `body` is the record's body (a zero-copy slice
    /// of the segment where the backend allows).
    pub(crate) fn from_record(r: &RecordView<'_>, ids: &Nonces, body: Bytes) -> MessageExt {
        let mut properties = BTreeMap::new();
        let mut tags = None;
        let mut keys = Vec::new();
        let mut msg_id = None;
        for (k, v) in properties::iter(r.raw_properties()) {
            match k {
                prop::TAGS => tags = Some(v.to_string()),
                prop::KEYS => {
                    keys = v
                        .split(' ')
                        .filter(|k| !k.is_empty())
                        .map(String::from)
                        .collect()
                }
                // A copy (retry, delay, dead letter) keeps its original's id. An id
                // of the engine's shape is taken only from this store, so no record
                // can claim another's; a sender's own id (never of that shape:
                // `id::check_given`) is the sender's promise.
                prop::UNIQ_KEY if id::parse(v).map_or(!v.is_empty(), |(n, p)| ids.owns(n, p)) => {
                    msg_id = Some(v.to_string())
                }
                prop::UNIQ_KEY => {}
                _ => {
                    properties.insert(k.to_string(), v.to_string());
                }
            }
        }
        // Messages waiting in an engine topic show where they are going; retries show
        // the topic they were first sent to.
        let stored = r.topic();
        let mut topic = stored.to_string();
        let mut queue_id = r.queue_id;
        if matches!(
            stored,
            topic::SCHEDULE_TOPIC | topic::TIMER_TOPIC | topic::TRANS_HALF_TOPIC
        ) {
            if let Some(real) = properties.get(prop::REAL_TOPIC) {
                topic = real.clone();
                queue_id = properties
                    .get(prop::REAL_QID)
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(queue_id);
            }
        }
        if topic.starts_with(topic::RETRY_PREFIX) {
            if let Some(original) = properties.get(prop::RETRY_TOPIC) {
                topic = original.clone();
            }
        }
        MessageExt {
            msg_id: msg_id.unwrap_or_else(|| id::make(ids.at(r.phys), r.phys)),
            topic,
            queue_id,
            queue_offset: r.queue_offset,
            commitlog_offset: r.phys,
            body,
            tags,
            keys,
            properties,
            born_timestamp: r.born_ts,
            store_timestamp: r.store_ts,
            reconsume_times: r.reconsume_times,
            sys_flag: r.sys_flag,
            prepared_transaction_offset: r.prepared_tx_offset,
            receipt_handle: None,
            delivery_attempt: 1,
            receipt: None,
        }
    }
}
