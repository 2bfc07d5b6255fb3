//! The consumer RPCs of RocketMQ 5 (POP): ReceiveMessage, AckMessage,
//! ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue (server-mode.md §3.3, §4).
//!
//! One pool per (group, topic) serves every ReceiveMessage of the group from all the
//! topic's queues, whatever queue the client names (as Apache's proxy). Requests are
//! validated here, each rule with its code; a receive answers with the stream shape
//! both clients read to the end:
//! - found: `{status OK}`, `{message}` × n, `{delivery_timestamp}`;
//! - nothing: `{status MESSAGE_NOT_FOUND}`, `{delivery_timestamp}`;
//! - refused: one `{status}`.
//!
//! Receipt handles come from the engine and pass through opaque. An `auto_renew`
//! delivery (PushConsumer) is renewed by the server while its client lives: the
//! renewal gets a new handle from the engine, and `Renewals` maps the handle the
//! client holds to the current one, so its ack still lands. NotifyClientTermination
//! makes its renewed deliveries visible again at once; so does the client's loss (it
//! is forgotten: no Telemetry stream and no call for the idle timeout), at the next
//! renewal. Renewals stop after `auto_renew_max` (3 h, as Apache's proxy): the
//! delivery then expires and comes back as a failed one would.
//!
//! The engine side, core's simple consumer, is behind `pool.rs` (`Pool`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::Request;

use crate::convert::{self, Delivery};
use crate::proto::receive_message_response::Content;
use crate::proto::*;
use crate::resource::{self, Use};
use crate::service::Shared;
use crate::status::{self, Outcome, Refusal};

mod pool;
mod renewal;

pub(crate) use pool::Pools;

/// Most messages one receive hands out.
pub(crate) const MAX_BATCH: usize = 32;
/// Kept between the end of a poll and the client's deadline, for the reply to travel.
const DEADLINE_MARGIN: Duration = Duration::from_millis(200);

/// What one receive asks for, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReceiveSpec {
    pub group: String,
    pub topic: String,
    /// The client's filter.
    pub filter: Filter,
    pub batch: usize,
    pub invisible: Duration,
    pub auto_renew: bool,
    /// How long to wait for the first message.
    pub poll: Duration,
}

/// The `grpc-timeout` header of a call (`<digits><H|M|S|m|u|n>`), if any.
pub(crate) fn grpc_timeout(md: &MetadataMap) -> Option<Duration> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How a receive filters the topic's messages: by tags, as RocketMQ's TAG
/// expressions, or by an SQL92 expression over their properties; parsed once, when the
/// request is read.
pub(crate) type Filter = pocketmq::MessageSelector;

/// A receive's filter, or ILLEGAL_FILTER_EXPRESSION.
pub(crate) fn filter(f: Option<&FilterExpression>) -> Outcome<Filter> {
    let illegal = |why: String| Refusal::new(Code::IllegalFilterExpression, why);
    let all = || Filter::by_tag("*").map_err(|e| illegal(e.to_string()));
    let Some(f) = f else {
        return all();
    };
    match FilterType::try_from(f.r#type).unwrap_or(FilterType::Unspecified) {
        FilterType::Sql => Filter::by_sql(&f.expression).map_err(|e| illegal(e.to_string())),
        FilterType::Tag | FilterType::Unspecified => {
            let e = f.expression.trim();
            if e.is_empty() || e == "*" {
                return all();
            }
            // As RocketMQ's FilterAPI (and the embedded broker) read it: tags joined
            // by "||", empty alternatives skipped ("TagA ||" is TagA), a "*" among
            // others a tag like any other; an expression of no tag is refused.
            let mut tags = 0;
            for part in e.split("||") {
                let t = part.trim();
                if t.is_empty() {
                    continue;
                }
                if t.chars().any(char::is_control) {
                    tags = 0;
                    break;
                }
                tags += 1;
            }
            if tags == 0 {
                return Err(illegal(format!(
                    "tag expression {e:?}: use \"*\" alone or tags joined by \"||\""
                )));
            }
            Filter::by_tag(e).map_err(|e| illegal(e.to_string()))
        }
    }
}

/// Validates a ReceiveMessage; `deadline` is the call's remaining time, if it has one,
/// and `request_timeout` the client's (its settings), if known.
pub(crate) fn receive_spec(
    req: &ReceiveMessageRequest,
    deadline: Option<Duration>,
    request_timeout: Option<Duration>,
    limits: &crate::config::Limits,
) -> Outcome<ReceiveSpec> {
    let group = resource::group(req.group.as_ref())?;
    let topic = resource::topic(
        req.message_queue.as_ref().and_then(|q| q.topic.as_ref()),
        Use::Consume,
    )?;
    let filter = filter(req.filter_expression.as_ref())?;
    if req.batch_size <= 0 {
        return Err(Refusal::new(
            Code::BadRequest,
            format!("batch_size must be positive, not {}", req.batch_size),
        ));
    }
    let invisible = if req.auto_renew {
        limits.auto_renew_invisible
    } else {
        let d = req
            .invisible_duration
            .as_ref()
            .and_then(duration)
            .ok_or_else(|| {
                Refusal::new(Code::IllegalInvisibleTime, "invisible_duration is required")
            })?;
        if d < limits.min_invisible || d > limits.max_invisible {
            return Err(Refusal::new(
                Code::IllegalInvisibleTime,
                format!(
                    "invisible_duration {d:?} is outside [{:?}, {:?}]",
                    limits.min_invisible, limits.max_invisible
                ),
            ));
        }
        d
    };
    let asked = req.long_polling_timeout.as_ref().and_then(duration);
    let mut poll = asked
        .unwrap_or(limits.long_polling_max)
        .clamp(limits.long_polling_min, limits.long_polling_max);
    if let Some(left) = deadline {
        // A client that names no poll time (the Go client) gets its answer half its
        // request timeout before its deadline, as from Apache's proxy.
        let reserve = match (asked, request_timeout) {
            (None, Some(t)) => (t / 2).max(DEADLINE_MARGIN),
            _ => DEADLINE_MARGIN,
        };
        poll = poll.min(left.saturating_sub(reserve));
    }
    Ok(ReceiveSpec {
        group,
        topic,
        filter,
        batch: (req.batch_size as usize).min(MAX_BATCH),
        invisible,
        auto_renew: req.auto_renew,
        poll,
    })
}

/// A protobuf duration, if it is one (non-negative, nanos in range).
pub(crate) fn duration(d: &prost_types::Duration) -> Option<Duration> {
    (d.seconds >= 0 && (0..1_000_000_000).contains(&d.nanos))
        .then(|| Duration::new(d.seconds as u64, d.nanos as u32))
}

/// The elements of a ReceiveMessage stream for an outcome (see the module docs).
pub(crate) fn stream_items(out: Outcome<Vec<Message>>, now_ms: u64) -> Vec<ReceiveMessageResponse> {
    let item = |c: Content| ReceiveMessageResponse { content: Some(c) };
    let stamp = || item(Content::DeliveryTimestamp(convert::timestamp(now_ms)));
    match out {
        Ok(msgs) if msgs.is_empty() => vec![
            item(Content::Status(status::status(
                Code::MessageNotFound,
                "no new message",
            ))),
            stamp(),
        ],
        Ok(msgs) => {
            let mut items = Vec::with_capacity(msgs.len() + 2);
            items.push(item(Content::Status(status::ok())));
            items.extend(msgs.into_iter().map(|m| item(Content::Message(m))));
            items.push(stamp());
            items
        }
        Err(r) => vec![item(Content::Status(r.to_status()))],
    }
}

/// ReceiveMessage: the stream's elements.
pub(crate) async fn receive(
    sh: &Arc<Shared>,
    req: Request<ReceiveMessageRequest>,
) -> Vec<ReceiveMessageResponse> {
    let out = receive_inner(sh, req).await;
    if let Err(r) = &out {
        log::debug!(
            "rpc=ReceiveMessage code={:?} reason={:?}",
            r.code,
            r.message
        );
    }
    stream_items(out, sh.now_ms())
}

async fn receive_inner(
    sh: &Arc<Shared>,
    req: Request<ReceiveMessageRequest>,
) -> Outcome<Vec<Message>> {
    let caller = sh.caller(&req)?;
    let deadline = grpc_timeout(req.metadata());
    let request_timeout = caller.client.request_timeout();
    let req = req.into_inner();
    let spec = receive_spec(&req, deadline, request_timeout, &sh.cfg.limits)?;
    let Ok(_permit) = sh.long_polls.clone().try_acquire_owned() else {
        return Err(Refusal::new(
            Code::TooManyRequests,
            format!(
                "{} receives are waiting, the limit",
                sh.cfg.limits.max_long_polls
            ),
        ));
    };
    // Counted while it waits, also when the client cancels the call (the future is
    // dropped mid-poll).
    let _waiting = Gauge::up(&sh.stats.long_polls);
    let pool = sh.pop.pool(sh, &spec)?;
    let got = pool
        .receive(spec.batch, spec.poll, spec.invisible, &spec.filter)
        .await?;
    let topic = req.message_queue.and_then(|q| q.topic).unwrap_or_default();
    let now = sh.now_ms();
    let store_host = sh.local_addr.to_string();
    Ok(got
        .into_iter()
        .map(|d| {
            if spec.auto_renew {
                sh.pop.renewals.add(
                    &caller.client.id,
                    &d.handle,
                    (&spec.group, &spec.topic),
                    (
                        now,
                        now + sh.cfg.limits.auto_renew_invisible.as_millis() as u64 / 2,
                    ),
                );
            }
            convert::to_proto(
                &d.msg,
                topic.clone(),
                Delivery {
                    receipt_handle: Some(d.handle),
                    delivery_attempt: Some(d.attempt as i32),
                    invisible: Some(spec.invisible),
                    store_host: store_host.clone(),
                },
            )
        })
        .collect())
}

/// One up on a gauge while it lives.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(g: &'a AtomicU64) -> Gauge<'a> {
        g.fetch_add(1, Ordering::Relaxed);
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The group and topic of an ack-like request, validated.
fn group_topic(group: Option<&Resource>, topic: Option<&Resource>) -> Outcome<(String, String)> {
    Ok((
        resource::group(group)?,
        resource::topic(topic, Use::Consume)?,
    ))
}

fn handle_of(h: &str) -> Outcome<&str> {
    if h.is_empty() || h.len() > 1024 || !h.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refusal::new(
            Code::InvalidReceiptHandle,
            "the receipt handle is empty or malformed",
        ));
    }
    Ok(h)
}

/// AckMessage: one status per entry.
pub(crate) async fn ack(
    sh: &Arc<Shared>,
    req: Request<AckMessageRequest>,
) -> Outcome<AckMessageResponse> {
    let caller = sh.caller(&req)?;
    let req = req.into_inner();
    let (group, topic) = group_topic(req.group.as_ref(), req.topic.as_ref())?;
    if req.entries.is_empty() {
        return Err(Refusal::new(Code::BadRequest, "no entry to ack"));
    }
    let pool = sh.pop.for_handle(sh, &group, &topic);
    // Well-formed handles go to the engine together (their current ones, for
    // deliveries the server renews); each entry gets its own outcome.
    let mut outcomes: Vec<Option<Outcome<()>>> = Vec::with_capacity(req.entries.len());
    let mut handles = Vec::new();
    for e in &req.entries {
        match handle_of(&e.receipt_handle) {
            Ok(held) if pool.is_some() => {
                let current = sh.pop.renewals.current(&caller.client.id, held);
                handles.push(current.unwrap_or_else(|| held.to_string()));
                outcomes.push(None);
            }
            Ok(_) => outcomes.push(Some(Err(stale(&group, &topic)))),
            Err(r) => outcomes.push(Some(Err(r))),
        }
    }
    let mut acked = match (&pool, handles.is_empty()) {
        (Some(pool), false) => pool.ack_each(handles).await?.into_iter(),
        _ => Vec::new().into_iter(),
    };
    let mut entries = Vec::with_capacity(req.entries.len());
    for (e, outcome) in req.entries.into_iter().zip(outcomes) {
        let result = outcome.unwrap_or_else(|| acked.next().unwrap_or(Ok(())));
        if result.is_ok() {
            sh.pop.renewals.remove(&caller.client.id, &e.receipt_handle);
        }
        entries.push(AckMessageResultEntry {
            message_id: e.message_id,
            receipt_handle: e.receipt_handle,
            status: Some(match result {
                Ok(()) => status::ok(),
                Err(r) => r.to_status(),
            }),
        });
    }
    let status = status::overall(entries.iter().map(|e| e.status.as_ref()));
    Ok(AckMessageResponse {
        status: Some(status),
        entries,
    })
}

/// A handle for a (group, topic) this store has never served.
fn stale(group: &str, topic: &str) -> Refusal {
    Refusal::new(
        Code::InvalidReceiptHandle,
        format!("no delivery of {topic:?} to {group:?} holds this receipt handle"),
    )
}

/// ChangeInvisibleDuration: a new handle for the delivery. On a delivery acked (or
/// dead-lettered) already it is OK and changes nothing: the ack stands, the message
/// does not come back, and the answer carries the handle as sent. With `suspend` the
/// delivery does not count as a failed attempt when it comes back (the protocol's
/// "server will not increment the retry times"): `connect()`'s consumers give back
/// what they hold so when they close.
pub(crate) async fn change_invisible_duration(
    sh: &Arc<Shared>,
    req: Request<ChangeInvisibleDurationRequest>,
) -> Outcome<ChangeInvisibleDurationResponse> {
    let caller = sh.caller(&req)?;
    let req = req.into_inner();
    let (group, topic) = group_topic(req.group.as_ref(), req.topic.as_ref())?;
    let held = handle_of(&req.receipt_handle)?;
    // 0 makes the message visible at once (Node's PushConsumer nacks so).
    let d = req
        .invisible_duration
        .as_ref()
        .and_then(duration)
        .filter(|d| *d <= sh.cfg.limits.max_invisible)
        .ok_or_else(|| {
            Refusal::new(
                Code::IllegalInvisibleTime,
                format!(
                    "invisible_duration is required, at most {:?}",
                    sh.cfg.limits.max_invisible
                ),
            )
        })?;
    let pool = sh
        .pop
        .for_handle(sh, &group, &topic)
        .ok_or_else(|| stale(&group, &topic))?;
    let current = sh.pop.renewals.current(&caller.client.id, held);
    let target = current.as_deref().unwrap_or(held);
    let changed = if req.suspend == Some(true) {
        pool.suspend(target, d).await
    } else {
        pool.change_invisible(target, d).await
    };
    let new = match changed {
        Ok(new) => new,
        Err(r) if r.code == Code::InvalidReceiptHandle && pool.is_done(target).await => {
            held.to_string()
        }
        Err(r) => return Err(r),
    };
    // The client holds the new handle from now on; the server no longer renews it.
    sh.pop.renewals.remove(&caller.client.id, held);
    Ok(ChangeInvisibleDurationResponse {
        status: Some(status::ok()),
        receipt_handle: new,
    })
}

/// ForwardMessageToDeadLetterQueue: the delivery goes to `%DLQ%<group>` at once.
pub(crate) async fn dead_letter(
    sh: &Arc<Shared>,
    req: Request<ForwardMessageToDeadLetterQueueRequest>,
) -> Outcome<ForwardMessageToDeadLetterQueueResponse> {
    let caller = sh.caller(&req)?;
    let req = req.into_inner();
    let (group, topic) = group_topic(req.group.as_ref(), req.topic.as_ref())?;
    let held = handle_of(&req.receipt_handle)?;
    let pool = sh
        .pop
        .for_handle(sh, &group, &topic)
        .ok_or_else(|| stale(&group, &topic))?;
    let current = sh.pop.renewals.current(&caller.client.id, held);
    pool.dead_letter(current.as_deref().unwrap_or(held)).await?;
    sh.pop.renewals.remove(&caller.client.id, held);
    Ok(ForwardMessageToDeadLetterQueueResponse {
        status: Some(status::ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;

    fn req(f: impl FnOnce(&mut ReceiveMessageRequest)) -> ReceiveMessageRequest {
        let mut r = ReceiveMessageRequest {
            group: Some(Resource {
                resource_namespace: String::new(),
                name: "g".into(),
            }),
            message_queue: Some(MessageQueue {
                topic: Some(Resource {
                    resource_namespace: String::new(),
                    name: "t".into(),
                }),
                ..MessageQueue::default()
            }),
            filter_expression: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".into(),
            }),
            batch_size: 16,
            invisible_duration: Some(prost_types::Duration {
                seconds: 15,
                nanos: 0,
            }),
            auto_renew: false,
            long_polling_timeout: Some(prost_types::Duration {
                seconds: 30,
                nanos: 0,
            }),
            attempt_id: None,
        };
        f(&mut r);
        r
    }

    #[test]
    fn a_receive_is_clamped_to_the_limits_and_the_deadline() {
        let l = Limits::default();
        let s = receive_spec(&req(|_| {}), None, None, &l).unwrap();
        assert_eq!(s.poll, Duration::from_secs(20));
        assert_eq!(s.invisible, Duration::from_secs(15));
        let s = receive_spec(&req(|_| {}), Some(Duration::from_secs(3)), None, &l).unwrap();
        assert_eq!(s.poll, Duration::from_millis(2800));
        // A poll time named: the client's request timeout does not matter.
        let three = Some(Duration::from_secs(3));
        let s = receive_spec(&req(|_| {}), Some(Duration::from_secs(8)), three, &l).unwrap();
        assert_eq!(s.poll, Duration::from_millis(7800));
        // None named (the Go client): answered half the request timeout before the
        // deadline, as Apache's proxy does.
        let unnamed = req(|r| r.long_polling_timeout = None);
        let s = receive_spec(&unnamed, Some(Duration::from_secs(8)), three, &l).unwrap();
        assert_eq!(s.poll, Duration::from_millis(6500));
        let s = receive_spec(&unnamed, Some(Duration::from_secs(8)), None, &l).unwrap();
        assert_eq!(s.poll, Duration::from_millis(7800));
        let s = receive_spec(&req(|r| r.batch_size = 100), None, None, &l).unwrap();
        assert_eq!(s.batch, MAX_BATCH);
        let s = receive_spec(
            &req(|r| {
                r.auto_renew = true;
                r.invisible_duration = None;
            }),
            None,
            None,
            &l,
        )
        .unwrap();
        assert_eq!(s.invisible, l.auto_renew_invisible);
    }

    #[test]
    fn bad_receives_get_their_codes() {
        let l = Limits::default();
        let code = |r| receive_spec(&r, None, None, &l).unwrap_err().code;
        assert_eq!(
            code(req(|r| r.invisible_duration = None)),
            Code::IllegalInvisibleTime
        );
        assert_eq!(
            code(req(|r| r.invisible_duration =
                Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0
                }))),
            Code::IllegalInvisibleTime
        );
        assert_eq!(
            code(req(
                |r| r.filter_expression.as_mut().unwrap().r#type = FilterType::Sql as i32
            )),
            Code::IllegalFilterExpression
        );
        assert_eq!(
            code(req(
                |r| r.filter_expression.as_mut().unwrap().expression = " || ".into()
            )),
            Code::IllegalFilterExpression
        );
        assert_eq!(code(req(|r| r.group = None)), Code::IllegalConsumerGroup);
        assert_eq!(code(req(|r| r.message_queue = None)), Code::IllegalTopic);
        assert_eq!(code(req(|r| r.batch_size = 0)), Code::BadRequest);
    }

    #[test]
    fn streams_have_the_shapes_clients_read() {
        let kinds = |items: Vec<ReceiveMessageResponse>| -> Vec<String> {
            items
                .into_iter()
                .map(|i| match i.content.unwrap() {
                    Content::Status(s) => format!("status {}", s.code),
                    Content::Message(_) => "message".into(),
                    Content::DeliveryTimestamp(_) => "timestamp".into(),
                })
                .collect()
        };
        assert_eq!(
            kinds(stream_items(
                Ok(vec![Message::default(), Message::default()]),
                1
            )),
            ["status 20000", "message", "message", "timestamp"]
        );
        assert_eq!(
            kinds(stream_items(Ok(vec![]), 1)),
            ["status 40401", "timestamp"]
        );
        assert_eq!(
            kinds(stream_items(Err(Refusal::not_implemented("x")), 1)),
            ["status 50100"]
        );
    }

    #[test]
    fn grpc_timeouts_parse() {
        let mut md = MetadataMap::new();
        md.insert("grpc-timeout", "23S".parse().unwrap());
        assert_eq!(grpc_timeout(&md), Some(Duration::from_secs(23)));
        md.insert("grpc-timeout", "2500m".parse().unwrap());
        assert_eq!(grpc_timeout(&md), Some(Duration::from_millis(2500)));
        md.insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(grpc_timeout(&md), None);
    }
}
