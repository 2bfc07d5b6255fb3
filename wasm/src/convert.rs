//! JavaScript values to engine values: bodies, option objects, integers and
//! milliseconds, `start`/`to` positions; and engine values back to plain JS
//! objects. Wrong types become a `TypeError`; values the engine's types cannot
//! hold become an `InvalidArgumentError`. Nothing here decides messaging semantics.

use std::collections::BTreeMap;

use js_sys::{ArrayBuffer, Reflect, Uint8Array};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use pocketmq::{
    BrokerConfig, ConsumerConfig, FlushMode, Message, MessageModel, SendResult, StartFrom,
};

use crate::errors::{invalid, type_error};

/// A message body: a string (encoded UTF-8), a `Uint8Array` (or any other
/// typed array or `DataView`: its bytes) or an `ArrayBuffer`.
pub(crate) fn body(value: &JsValue) -> Result<Vec<u8>, JsValue> {
    if let Some(s) = value.as_string() {
        return Ok(s.into_bytes());
    }
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        return Ok(a.to_vec());
    }
    if let Some(b) = value.dyn_ref::<ArrayBuffer>() {
        return Ok(Uint8Array::new(b).to_vec());
    }
    if ArrayBuffer::is_view(value) {
        let field = |name: &str| Reflect::get(value, &JsValue::from_str(name)).ok();
        let buffer = field("buffer").and_then(|b| b.dyn_into::<ArrayBuffer>().ok());
        let offset = field("byteOffset").and_then(|v| v.as_f64());
        let length = field("byteLength").and_then(|v| v.as_f64());
        if let (Some(buffer), Some(offset), Some(length)) = (buffer, offset, length) {
            let view =
                Uint8Array::new_with_byte_offset_and_length(&buffer, offset as u32, length as u32);
            return Ok(view.to_vec());
        }
    }
    Err(type_error(format!(
        "body must be a string, a Uint8Array or an ArrayBuffer, not {}",
        type_name(value)
    )))
}

/// A short name of a JS value's type for error messages.
pub(crate) fn type_name(value: &JsValue) -> String {
    if value.is_null() {
        return "null".into();
    }
    value
        .js_typeof()
        .as_string()
        .unwrap_or_else(|| "value".into())
}

/// A required string argument.
pub(crate) fn string(what: &str, value: &JsValue) -> Result<String, JsValue> {
    value
        .as_string()
        .ok_or_else(|| type_error(format!("{what} must be a string, not {}", type_name(value))))
}

/// A whole number in `[min, max]`.
pub(crate) fn integer(what: &str, value: f64, min: f64, max: f64) -> Result<f64, JsValue> {
    if !value.is_finite() || value.fract() != 0.0 {
        return Err(invalid(format!(
            "{what} must be a whole number, not {value}"
        )));
    }
    if value < min || value > max {
        return Err(invalid(format!(
            "{what} must be between {min} and {max}, not {value}"
        )));
    }
    Ok(value)
}

pub(crate) fn u32_arg(what: &str, value: f64) -> Result<u32, JsValue> {
    integer(what, value, 0.0, u32::MAX as f64).map(|v| v as u32)
}

pub(crate) fn usize_arg(what: &str, value: f64) -> Result<usize, JsValue> {
    integer(what, value, 0.0, u32::MAX as f64).map(|v| v as usize)
}

/// Milliseconds (a duration or an epoch time): finite and not negative; a
/// fraction of a millisecond is dropped.
pub(crate) fn ms(what: &str, value: f64) -> Result<u64, JsValue> {
    if !value.is_finite() || value < 0.0 {
        return Err(invalid(format!(
            "{what} must be a finite number of milliseconds, at least 0, not {value}"
        )));
    }
    if value > 9_007_199_254_740_991.0 {
        return Err(invalid(format!("{what} is too large: {value}")));
    }
    Ok(value.floor() as u64)
}

/// An options object (undefined or null: all defaults) read into `T`.
/// A key not in `allowed` is an `InvalidArgumentError` (a misspelt option must
/// not be silently ignored).
pub(crate) fn options<T: DeserializeOwned + Default>(
    what: &str,
    value: &JsValue,
    allowed: &[&str],
) -> Result<T, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    if !value.is_object() || js_sys::Array::is_array(value) {
        return Err(type_error(format!(
            "{what} must be an object, not {}",
            type_name(value)
        )));
    }
    for key in js_sys::Object::keys(value.unchecked_ref::<js_sys::Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !allowed.contains(&key.as_str()) {
            return Err(invalid(format!(
                "{what}: unknown option {key:?} (known: {})",
                allowed.join(", ")
            )));
        }
    }
    serde_wasm_bindgen::from_value(value.clone()).map_err(|e| type_error(format!("{what}: {e}")))
}

/// `keys`: one string or an array of strings.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Keys {
    One(String),
    Many(Vec<String>),
}

/// A position in a queue: a name or epoch milliseconds.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Position {
    Name(String),
    Ms(f64),
}

/// `"earliest"`, `"latest"` or epoch milliseconds.
pub(crate) fn position(what: &str, p: Position) -> Result<StartFrom, JsValue> {
    match p {
        Position::Name(name) => match name.as_str() {
            "earliest" => Ok(StartFrom::Earliest),
            "latest" => Ok(StartFrom::Latest),
            other => Err(invalid(format!(
                "{what} must be \"earliest\", \"latest\" or epoch milliseconds, not {other:?}"
            ))),
        },
        Position::Ms(t) => Ok(StartFrom::Timestamp(ms(what, t)?)),
    }
}

/// A position given as a bare JS value (for `resetOffset`).
pub(crate) fn position_value(what: &str, value: &JsValue) -> Result<StartFrom, JsValue> {
    if let Some(s) = value.as_string() {
        position(what, Position::Name(s))
    } else if let Some(t) = value.as_f64() {
        position(what, Position::Ms(t))
    } else {
        Err(type_error(format!(
            "{what} must be \"earliest\", \"latest\" or epoch milliseconds, not {}",
            type_name(value)
        )))
    }
}

const SEND_OPTIONS: &[&str] = &[
    "tags",
    "keys",
    "properties",
    "shardingKey",
    "queueId",
    "delayLevel",
    "deliverAt",
    "delayMs",
];

/// The options of `send` (the wrapper turns a `Date` into epoch milliseconds).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendOptions {
    tags: Option<String>,
    keys: Option<Keys>,
    properties: Option<BTreeMap<String, String>>,
    sharding_key: Option<String>,
    queue_id: Option<f64>,
    delay_level: Option<f64>,
    deliver_at: Option<f64>,
    delay_ms: Option<f64>,
}

/// A message to send from a topic, a body and `send`'s options.
pub(crate) fn message(
    topic: &JsValue,
    body_value: &JsValue,
    opts: &JsValue,
) -> Result<Message, JsValue> {
    let topic = string("topic", topic)?;
    let body = body(body_value)?;
    let o: SendOptions = options("send options", opts, SEND_OPTIONS)?;
    let mut b = Message::builder(topic, body);
    if let Some(tags) = o.tags {
        b = b.tags(tags);
    }
    match o.keys {
        Some(Keys::One(k)) => b = b.key(k),
        Some(Keys::Many(ks)) => b = b.keys(ks),
        None => {}
    }
    for (k, v) in o.properties.unwrap_or_default() {
        b = b.property(k, v);
    }
    if let Some(key) = o.sharding_key {
        b = b.sharding_key(key);
    }
    if let Some(q) = o.queue_id {
        b = b.queue_id(u32_arg("queueId", q)?);
    }
    let delays = [
        o.delay_level.is_some(),
        o.deliver_at.is_some(),
        o.delay_ms.is_some(),
    ];
    if delays.iter().filter(|d| **d).count() > 1 {
        return Err(invalid(
            "give at most one of delayLevel, deliverAt and delayMs",
        ));
    }
    if let Some(level) = o.delay_level {
        if level < 0.0 {
            return Err(invalid(format!(
                "delayLevel must not be negative, not {level}"
            )));
        }
        b = b.delay_level(u32_arg("delayLevel", level)?);
    }
    if let Some(at) = o.deliver_at {
        b = b.deliver_at_ms(ms("deliverAt", at)?);
    }
    if let Some(after) = o.delay_ms {
        b = b.delay_ms(ms("delayMs", after)?);
    }
    Ok(b.build())
}

const BROKER_OPTIONS: &[&str] = &[
    "path",
    "flush",
    "segmentSize",
    "maxMessageSize",
    "autoCreateTopics",
    "defaultQueues",
    "delayLevels",
    "timerMaxDelayMs",
    "fileReservedTimeMs",
    "diskMaxUsedRatio",
    "diskCleanForciblyRatio",
    "syncFlushTimeoutMs",
    "flushIntervalMs",
    "transactionTimeoutMs",
    "checkIntervalMs",
    "maxChecks",
];

/// The options of `new Broker` (the wrapper passes `clock` separately).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BrokerOptions {
    path: Option<String>,
    flush: Option<String>,
    segment_size: Option<f64>,
    max_message_size: Option<f64>,
    auto_create_topics: Option<bool>,
    default_queues: Option<f64>,
    delay_levels: Option<String>,
    timer_max_delay_ms: Option<f64>,
    file_reserved_time_ms: Option<f64>,
    disk_max_used_ratio: Option<f64>,
    disk_clean_forcibly_ratio: Option<f64>,
    sync_flush_timeout_ms: Option<f64>,
    flush_interval_ms: Option<f64>,
    transaction_timeout_ms: Option<f64>,
    check_interval_ms: Option<f64>,
    max_checks: Option<f64>,
}

pub(crate) fn broker_config(opts: &JsValue) -> Result<BrokerConfig, JsValue> {
    let o: BrokerOptions = options("Broker options", opts, BROKER_OPTIONS)?;
    let mut c = BrokerConfig {
        path: o.path.map(Into::into),
        // No threads on wasm: the JS wrapper drives deferred work with timers.
        background: false,
        ..BrokerConfig::default()
    };
    if let Some(f) = o.flush {
        c.flush = f.parse::<FlushMode>().map_err(crate::errors::to_js)?;
    }
    if let Some(v) = o.segment_size {
        c.segment_size = Some(ms("segmentSize", v)?);
    }
    if let Some(v) = o.max_message_size {
        c.max_message_size = usize_arg("maxMessageSize", v)?;
    }
    if let Some(v) = o.auto_create_topics {
        c.auto_create_topics = v;
    }
    if let Some(v) = o.default_queues {
        c.default_queues = u32_arg("defaultQueues", v)?;
    }
    if let Some(v) = o.delay_levels {
        // Levels are ASCII ("1s 5s 10m 2h"); other text is refused here because
        // the core's parser panics on it (a panic must never reach JS).
        if !v.is_ascii() {
            return Err(invalid(format!(
                "delayLevels must be levels like \"1s 5s 10m 2h\", not {v:?}"
            )));
        }
        c.delay_levels = v;
    }
    if let Some(v) = o.timer_max_delay_ms {
        c.timer_max_delay_ms = ms("timerMaxDelayMs", v)?;
    }
    if let Some(v) = o.file_reserved_time_ms {
        c.file_reserved_time_ms = ms("fileReservedTimeMs", v)?;
    }
    if let Some(v) = o.disk_max_used_ratio {
        c.disk_max_used_ratio = ratio("diskMaxUsedRatio", v)?;
    }
    if let Some(v) = o.disk_clean_forcibly_ratio {
        c.disk_clean_forcibly_ratio = ratio("diskCleanForciblyRatio", v)?;
    }
    if let Some(v) = o.sync_flush_timeout_ms {
        c.sync_flush_timeout_ms = ms("syncFlushTimeoutMs", v)?;
    }
    if let Some(v) = o.flush_interval_ms {
        c.flush_interval_ms = ms("flushIntervalMs", v)?;
    }
    if let Some(v) = o.transaction_timeout_ms {
        c.transaction_timeout_ms = ms("transactionTimeoutMs", v)?;
    }
    if let Some(v) = o.check_interval_ms {
        c.check_interval_ms = ms("checkIntervalMs", v)?;
    }
    if let Some(v) = o.max_checks {
        c.max_checks = u32_arg("maxChecks", v)?;
    }
    Ok(c)
}

fn ratio(what: &str, v: f64) -> Result<f64, JsValue> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(format!("{what} must be between 0 and 1, not {v}")))
    }
}

const CONSUMER_OPTIONS: &[&str] = &[
    "group",
    "topic",
    "tags",
    "broadcasting",
    "orderly",
    "maxReconsumeTimes",
    "start",
    "consumerId",
];

/// The options of `broker.consumer` (the wrapper turns a `Date` into epoch ms).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsumerOptions {
    group: Option<String>,
    topic: Option<String>,
    tags: Option<String>,
    broadcasting: Option<bool>,
    orderly: Option<bool>,
    max_reconsume_times: Option<f64>,
    start: Option<Position>,
    consumer_id: Option<String>,
}

pub(crate) fn consumer_config(opts: &JsValue) -> Result<ConsumerConfig, JsValue> {
    if opts.is_undefined() || opts.is_null() {
        return Err(type_error(
            "consumer options must be an object with group and topic",
        ));
    }
    let o: ConsumerOptions = options("consumer options", opts, CONSUMER_OPTIONS)?;
    let group = o
        .group
        .ok_or_else(|| type_error("consumer options need a group (a string)"))?;
    let topic = o
        .topic
        .ok_or_else(|| type_error("consumer options need a topic (a string)"))?;
    let mut c = ConsumerConfig::new(group, topic);
    if let Some(tags) = o.tags {
        c.tags = tags;
    }
    if o.broadcasting == Some(true) {
        c.model = MessageModel::Broadcasting;
    }
    if let Some(orderly) = o.orderly {
        c.orderly = orderly;
    }
    if let Some(n) = o.max_reconsume_times {
        c.max_reconsume_times = u32_arg("maxReconsumeTimes", n)?;
    }
    if let Some(p) = o.start {
        c.start = position("start", p)?;
    }
    c.consumer_id = o.consumer_id;
    Ok(c)
}

/// Plain JS objects (maps as objects, `None` as null, u64 as numbers).
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    let s = serde_wasm_bindgen::Serializer::new()
        .serialize_maps_as_objects(true)
        .serialize_missing_as_null(true);
    value
        .serialize(&s)
        .map_err(|e| invalid(format!("a value does not fit in JS: {e}")))
}

/// What `send` returns, camelCase.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendResultView<'a> {
    msg_id: &'a str,
    topic: &'a str,
    queue_id: u32,
    queue_offset: u64,
    commitlog_offset: u64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_state: Option<&'static str>,
}

pub(crate) fn send_result(r: &SendResult) -> Result<JsValue, JsValue> {
    to_js(&SendResultView {
        msg_id: &r.msg_id,
        topic: &r.topic,
        queue_id: r.queue_id,
        queue_offset: r.queue_offset,
        commitlog_offset: r.commitlog_offset,
        status: r.status.as_str(),
        transaction_state: r.transaction_state.map(|s| s.as_str()),
    })
}
