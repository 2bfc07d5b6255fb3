//! JavaScript values to engine values: bodies, option objects, integers and
//! milliseconds, `start`/`to` positions; and engine values back to plain JS
//! objects. Wrong types become a `TypeError`; values the engine's types cannot
//! hold become an `InvalidArgumentError`. Nothing here decides messaging semantics.

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use pocketmq::{BrokerConfig, OptionKind, OptionValue, Options, SendResult, StartFrom};

use crate::errors::{invalid, type_error};

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
    text(what, value).unwrap_or_else(|| {
        Err(type_error(format!(
            "{what} must be a string, not {}",
            type_name(value)
        )))
    })
}

/// `value` as text (None: not a string). A string with a lone surrogate, which UTF-8
/// cannot hold, is refused: the conversion would put U+FFFD in its place, and an
/// engine name or tag expression would then differ from the one given.
pub(crate) fn text(what: &str, value: &JsValue) -> Option<Result<String, JsValue>> {
    value.as_string().map(|s| whole_text(what, value, s))
}

/// `s`, the conversion of `value`, unless `value` held a lone surrogate (see `text`).
fn whole_text(what: &str, value: &JsValue, s: String) -> Result<String, JsValue> {
    // Only a string the conversion gave a U+FFFD can have held a lone surrogate.
    if s.contains('\u{fffd}') && !value.unchecked_ref::<js_sys::JsString>().is_valid_utf16() {
        return Err(invalid(format!(
            "{what} must be valid Unicode, not a string with a lone surrogate"
        )));
    }
    Ok(s)
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

/// A position given as a bare JS value (for `resetOffset`): a name or epoch ms.
pub(crate) fn position_value(what: &str, value: &JsValue) -> Result<StartFrom, JsValue> {
    let v = match (value.as_string(), value.as_f64()) {
        (Some(s), _) => OptionValue::Text(s),
        (_, Some(n)) => OptionValue::Number(n),
        _ => {
            return Err(type_error(format!(
                "{what} must be \"earliest\", \"latest\" or epoch milliseconds, not {}",
                type_name(value)
            )))
        }
    };
    StartFrom::from_option(what, v).map_err(crate::errors::to_js)
}

/// Sets each option of a JS options object through `set` (the engine's options by
/// name, camelCase here: `timerMaxDelayMs` is the engine's `timer_max_delay` in ms).
/// Undefined and null values keep the default; `skip` names are the caller's.
fn set_options<C: Options>(
    what: &str,
    opts: &JsValue,
    skip: &[&str],
    cfg: &mut C,
) -> Result<(), JsValue> {
    let kind = C::option_kind;
    if opts.is_undefined() || opts.is_null() {
        return Ok(());
    }
    if !opts.is_object() || js_sys::Array::is_array(opts) {
        return Err(type_error(format!(
            "{what} must be an object, not {}",
            type_name(opts)
        )));
    }
    let entries = js_sys::Object::entries(opts.unchecked_ref::<js_sys::Object>());
    for entry in entries.iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        let key = entry.get(0).as_string().unwrap_or_default();
        let value = entry.get(1);
        if skip.contains(&key.as_str()) || value.is_undefined() {
            continue;
        }
        if key.contains('_') {
            // JS names options in camelCase (the send options too): a snake_case
            // name is as unknown as any other.
            let camel = crate::errors::js_option_name(&key, false);
            return Err(crate::errors::invalid_verbatim(format!(
                "{what}: unknown option {key:?}: options are named in camelCase ({camel})"
            )));
        }
        let mut name = String::with_capacity(key.len() + 4);
        for c in key.chars() {
            if c.is_ascii_uppercase() {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        }
        // A duration is given in ms, and named so.
        let is_duration = |n: &str| {
            matches!(
                kind(n),
                Some(OptionKind::Duration | OptionKind::OptionalDuration)
            )
        };
        let name = match name.strip_suffix("_ms") {
            Some(base) if is_duration(base) => base.to_string(),
            _ if is_duration(&name) => {
                let camel = crate::errors::js_option_name(&name, true);
                return Err(invalid(format!("{what}: give {key} in ms, as {camel}")));
            }
            _ => name,
        };
        // null keeps the default, except where it switches an option off.
        if value.is_null() {
            if kind(&name) == Some(OptionKind::OptionalDuration) {
                cfg.set_option(&name, OptionValue::None)
                    .map_err(crate::errors::to_js)?;
            }
            continue;
        }
        let v = match (
            kind(&name),
            value.as_bool(),
            value.as_f64(),
            value.as_string(),
        ) {
            (Some(OptionKind::Bool) | None, Some(b), _, _) => OptionValue::Bool(b),
            (Some(OptionKind::Text | OptionKind::Position) | None, _, _, Some(s)) => {
                OptionValue::Text(whole_text(&format!("{what}: {key}"), &value, s)?)
            }
            (Some(k), _, Some(n), _) if !matches!(k, OptionKind::Bool | OptionKind::Text) => {
                OptionValue::Number(n)
            }
            (None, _, Some(n), _) => OptionValue::Number(n),
            (Some(k), ..) => {
                let expected = match k {
                    OptionKind::Bool => "a boolean",
                    OptionKind::Text => "a string",
                    OptionKind::Position => "\"earliest\", \"latest\" or epoch ms",
                    _ => "a number",
                };
                return Err(type_error(format!("{what}: {key} must be {expected}")));
            }
            (None, ..) => return Err(unknown(what, &key, skip, C::option_list())),
        };
        cfg.set_option(&name, v).map_err(|e| match e {
            pocketmq::Error::InvalidArgument(_) if kind(&name).is_none() => {
                unknown(what, &key, skip, C::option_list())
            }
            e => crate::errors::option_error(e, &name, &key),
        })?;
    }
    Ok(())
}

/// An unknown option, with the known ones as JS spells them.
fn unknown(what: &str, key: &str, skip: &[&str], names: &[(&str, OptionKind)]) -> JsValue {
    let known: Vec<String> = skip
        .iter()
        .map(|s| s.to_string())
        .chain(names.iter().map(|(n, k)| {
            let duration = matches!(k, OptionKind::Duration | OptionKind::OptionalDuration);
            crate::errors::js_option_name(n, duration)
        }))
        .collect();
    invalid(format!(
        "{what}: unknown option {key:?} (known: {})",
        known.join(", ")
    ))
}

/// The options of `new Broker` (the wrapper passes `clock` separately).
pub(crate) fn broker_config(opts: &JsValue) -> Result<BrokerConfig, JsValue> {
    let mut c = BrokerConfig {
        // No threads on wasm: the JS wrapper drives deferred work with timers.
        background: false,
        ..BrokerConfig::default()
    };
    if !(opts.is_undefined() || opts.is_null()) && opts.is_object() {
        let path = js_sys::Reflect::get(opts, &JsValue::from_str("path"))?;
        if !path.is_undefined() && !path.is_null() {
            c.path = Some(string("path", &path)?.into());
        }
    }
    set_options("Broker options", opts, &["path", "clock"], &mut c)?;
    c.validate().map_err(crate::errors::to_js)?;
    Ok(c)
}

/// The options of `broker.consumer` (`what`: "consumer") and `broker.simpleConsumer`
/// ("simple consumer"), a config `new` makes from the group and topic (the wrapper
/// turns a `Date` into epoch ms).
pub(crate) fn group_config<C: Options>(
    what: &str,
    opts: &JsValue,
    new: impl FnOnce(String, String) -> C,
) -> Result<C, JsValue> {
    let field = |name: &str| {
        let value = js_sys::Reflect::get(opts, &JsValue::from_str(name)).ok();
        value
            .and_then(|v| text(&format!("{what} options: {name}"), &v))
            .unwrap_or_else(|| {
                Err(type_error(format!(
                    "{what} options need a {name} (a string)"
                )))
            })
    };
    if opts.is_undefined() || opts.is_null() {
        return Err(type_error(format!(
            "{what} options must be an object with group and topic"
        )));
    }
    let mut c = new(field("group")?, field("topic")?);
    let what = format!("{what} options");
    set_options(&what, opts, &["group", "topic"], &mut c)?;
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
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    recall_handle: Option<&'a str>,
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
        duplicate: r.duplicate,
        recall_handle: r.recall_handle.as_deref(),
    })
}
