//! The one mapping from the engine's `Error` to JavaScript errors. The JS wrapper
//! registers its `Error` subclasses (one per kind) at load; `to_js` builds an
//! instance of the class for the error's kind and sets `code` to the kind's name.
//! Without registered classes (the raw glue used alone) it builds a plain `Error`
//! with the same `code`. Wrong JS types become a `TypeError`.

use std::cell::RefCell;

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use pocketmq::{BrokerConfig, ConsumerConfig, Error, OptionKind, Options, SimpleConsumerConfig};

thread_local! {
    static CLASSES: RefCell<Option<Object>> = const { RefCell::new(None) };
    /// The error of the last call that answered 0 for it (`or_zero`).
    static FAILED: RefCell<Option<JsValue>> = const { RefCell::new(None) };
}

/// `r`'s address, or 0 with its error kept for `takeError`: a call of the hot path
/// returns one number, where a `Result` would come back to JS as an array made for
/// every call. (No address the engine hands out is 0.)
pub(crate) fn or_zero(r: Result<u32, JsValue>) -> u32 {
    r.unwrap_or_else(|e| {
        keep(e);
        0
    })
}

/// Whether `r` is Ok; its error, if not, kept for `takeError` (as `or_zero`).
pub(crate) fn done(r: Result<(), JsValue>) -> bool {
    r.map_err(keep).is_ok()
}

/// Keeps `e` for `takeError`.
fn keep(e: JsValue) {
    FAILED.with(|f| *f.borrow_mut() = Some(e));
}

/// The error of the last call that answered 0 or false (see `or_zero`); taken once.
#[wasm_bindgen(js_name = takeError)]
pub fn take_error() -> JsValue {
    FAILED
        .with(|f| f.borrow_mut().take())
        .unwrap_or_else(|| js_sys::Error::new("pocketmq: no error is waiting").into())
}

/// Registers the error classes to build: an object from each code
/// (`"InvalidArgument"`, ...) to an `Error` subclass whose constructor takes a message.
#[wasm_bindgen(js_name = registerErrorClasses)]
pub fn register_error_classes(classes: Object) {
    CLASSES.with(|c| *c.borrow_mut() = Some(classes));
}

/// The engine's names of options and calls (Python's) and their JS names: an error
/// message speaks the caller's language.
const JS_NAMES: &[(&str, &str)] = &[
    (", deliver_at and delay", ", deliverAt and delayMs"),
    ("queue_id", "queueId"),
    ("sharding_key", "shardingKey"),
    ("delay_levels", "delayLevels"),
    ("delay_level", "delayLevel"),
    ("deliver_at", "deliverAt"),
    ("dedup_id", "dedupId"),
    ("timer_max_delay", "timerMaxDelayMs"),
    ("default_queues", "defaultQueues"),
    ("max_delivery_attempts", "maxDeliveryAttempts"),
    ("max_in_flight", "maxInFlight"),
    ("max_message_size", "maxMessageSize"),
    ("move_backlog", "moveBacklog"),
    ("segment_size", "segmentSize"),
    ("disk_max_used_ratio", "diskMaxUsedRatio"),
    // JS's numbers, as it prints them (the engine prints Rust's).
    (" not inf", " not Infinity"),
    (" not -inf", " not -Infinity"),
];

/// `message` with the engine's names of options as JS spells them (whole words
/// only: a topic or path that merely contains one is left alone).
fn js_names(message: &str) -> String {
    let mut out = message.to_string();
    // Besides the names above, every option of two words or more, as `set_options`
    // reads it.
    let lists = [
        BrokerConfig::option_list(),
        ConsumerConfig::option_list(),
        SimpleConsumerConfig::option_list(),
    ];
    let options = lists.into_iter().flatten().filter_map(|&(name, kind)| {
        let duration = matches!(kind, OptionKind::Duration | OptionKind::OptionalDuration);
        let listed = JS_NAMES.iter().any(|(engine, _)| *engine == name);
        (name.contains('_') && !listed).then(|| (name, js_option_name(name, duration)))
    });
    let known = JS_NAMES
        .iter()
        .map(|&(engine, js)| (engine, js.to_string()));
    for (engine, js) in known.chain(options) {
        let mut from = 0;
        while let Some(at) = out[from..].find(engine).map(|i| i + from) {
            let end = at + engine.len();
            let word =
                |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '/');
            // The sides of a name are checked; a phrase starting with a comma is not.
            let (starts_word, ends_word) = (
                word(engine.chars().next()),
                word(engine.chars().next_back()),
            );
            if (starts_word && word(out[..at].chars().next_back()))
                || (ends_word && word(out[end..].chars().next()))
            {
                from = end;
                continue;
            }
            out.replace_range(at..end, &js);
            from = at + js.len();
        }
    }
    out
}

/// The JS error for an engine error: its `code` is the kind's name.
pub(crate) fn to_js(err: Error) -> JsValue {
    let js = build(err.kind().as_str(), &js_names(&err.to_string()));
    if let Error::StoreLocked { path, pid } = &err {
        set(&js, "path", &JsValue::from_str(path));
        set(&js, "pid", &JsValue::from(*pid));
    }
    js
}

fn build(code: &str, message: &str) -> JsValue {
    let class = CLASSES.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|o| Reflect::get(o, &JsValue::from_str(code)).ok())
            .and_then(|v| v.dyn_into::<Function>().ok())
    });
    let args = Array::of1(&JsValue::from_str(message));
    let err = class
        .and_then(|f| Reflect::construct(&f, &args).ok())
        .unwrap_or_else(|| js_sys::Error::new(message).into());
    set(&err, "code", &JsValue::from_str(code));
    err
}

fn set(target: &JsValue, name: &str, value: &JsValue) {
    // Setting a property on a fresh error object cannot fail; ignore if it does.
    let _ = Reflect::set(target, &JsValue::from_str(name), value);
}

/// A host file operation that failed (a JS error thrown by the host's fs): a
/// `DiskFullError` when the host says the disk is full (`ENOSPC`, `EDQUOT`), a
/// `StoreCorruptedError` for a symbolic link in the store (`ELOOP`), else an
/// `IoError`, carrying the host's message.
pub(crate) fn host_error(err: JsValue) -> JsValue {
    let message = Reflect::get(&err, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| err.as_string())
        .unwrap_or_else(|| "the host's file system failed".into());
    let code = Reflect::get(&err, &JsValue::from_str("code"))
        .ok()
        .and_then(|c| c.as_string());
    match code.as_deref() {
        Some("ENOSPC" | "EDQUOT") => to_js(Error::DiskFull(message)),
        // A symbolic link in the store, refused (node_fs.js).
        Some("ELOOP") => to_js(Error::StoreCorrupted(message)),
        _ => to_js(Error::Io(std::io::Error::other(message))),
    }
}

/// `invalid` with the message as given: the engine's names in it are not turned
/// into JS's (for a message about a name the caller gave as is).
pub(crate) fn invalid_verbatim(msg: impl Into<String>) -> JsValue {
    let err = Error::InvalidArgument(msg.into());
    build(err.kind().as_str(), &err.to_string())
}

/// An argument whose value is out of range or malformed.
pub(crate) fn invalid(msg: impl Into<String>) -> JsValue {
    to_js(Error::InvalidArgument(msg.into()))
}

/// An argument of the wrong JS type.
pub(crate) fn type_error(msg: impl AsRef<str>) -> JsValue {
    js_sys::TypeError::new(msg.as_ref()).into()
}

/// Maps a core result's error to JS.
pub(crate) trait IntoJsResult<T> {
    fn js_err(self) -> Result<T, JsValue>;
}

impl<T> IntoJsResult<T> for pocketmq::Result<T> {
    fn js_err(self) -> Result<T, JsValue> {
        self.map_err(to_js)
    }
}

/// An option's name as JS spells it: camelCase, a duration with `Ms` (the engine's
/// `timer_max_delay` is `timerMaxDelayMs`).
pub(crate) fn js_option_name(snake: &str, duration: bool) -> String {
    let mut camel = String::with_capacity(snake.len() + 2);
    let mut upper = false;
    for c in snake.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                camel.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => camel.push(c),
        }
    }
    if duration {
        camel.push_str("Ms");
    }
    camel
}

/// The engine's refusal of option `name` worded with the name JS gave (`key`):
/// "delay_level must be ..." reads "delayLevel must be ...".
pub(crate) fn option_error(err: Error, name: &str, key: &str) -> JsValue {
    match err {
        Error::InvalidArgument(m) if m.starts_with(name) => {
            to_js(Error::InvalidArgument(format!("{key}{}", &m[name.len()..])))
        }
        e => to_js(e),
    }
}

#[cfg(test)]
mod tests {
    use super::js_names;

    #[test]
    fn option_names_are_spelled_as_in_js_and_only_whole_words() {
        assert_eq!(
            js_names("queue_id 3 is out of range: my_queue_id_topic has 2 queues"),
            "queueId 3 is out of range: my_queue_id_topic has 2 queues"
        );
        assert_eq!(
            js_names("give at most one of delay_level, deliver_at and delay"),
            "give at most one of delayLevel, deliverAt and delayMs"
        );
        assert_eq!(
            js_names("delay_levels needs 1 to 64 levels"),
            "delayLevels needs 1 to 64 levels"
        );
        assert_eq!(
            js_names("consumequeue/t/queue_id"),
            "consumequeue/t/queue_id"
        );
        assert_eq!(
            js_names("invisible_duration must be between 1 ms and 604800000 ms, got 0 ms"),
            "invisibleDurationMs must be between 1 ms and 604800000 ms, got 0 ms"
        );
        assert_eq!(
            js_names("ack_timeout, dedup_window, delete_when, consumer_id"),
            "ackTimeoutMs, dedupWindowMs, deleteWhen, consumerId"
        );
        assert_eq!(
            js_names("x must be a whole number, not inf; y not -inf; not infinite"),
            "x must be a whole number, not Infinity; y not -Infinity; not infinite"
        );
    }
}
