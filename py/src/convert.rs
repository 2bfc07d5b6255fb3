//! Python values to engine values: bodies, keys, properties, seconds and
//! datetimes to milliseconds, `start`/`to` positions. Wrong types raise
//! `TypeError`; values the engine's types cannot hold raise `InvalidArgument`.
//! Nothing here decides messaging semantics.

use std::collections::BTreeMap;

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};

use pocketmq::{Message, MessageBuilder, OptionKind, OptionValue, Options, StartFrom};

use crate::errors::{invalid, IntoPyResult};

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_string())
}

fn type_error(what: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("{what} must be {expected}, not {}", type_name(obj)))
}

/// The UTF-8 of a `str`. One that cannot be encoded (it holds a lone surrogate, as
/// `os.fsdecode` makes of undecodable bytes) is a wrong value, so `InvalidArgument`
/// (a `ValueError`), not the codec's `UnicodeEncodeError`.
#[inline]
pub fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<std::borrow::Cow<'a, str>> {
    s.to_cow().map_err(|e| not_text(s.py(), e))
}

/// The `InvalidArgument` for a `str` whose encoding to UTF-8 failed with `e`.
#[cold]
fn not_text(py: Python<'_>, e: PyErr) -> PyErr {
    invalid(format!("text must be valid Unicode: {}", e.value(py)))
}

/// A `str` argument, borrowed: not a `str` is `TypeError`, one that is not valid
/// Unicode `InvalidArgument` (see [`utf8`]); pyo3's own `&str` gives the codec's
/// `UnicodeEncodeError` there.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a>(pub &'a str);

impl<'a> FromPyObject<'a, '_> for Text<'a> {
    type Error = PyErr;
    #[inline]
    fn extract(obj: Borrowed<'a, '_, PyAny>) -> PyResult<Text<'a>> {
        if !obj.is_instance_of::<PyString>() {
            return Err(type_error("the argument", "a str", &obj));
        }
        let py = obj.py();
        <&'a str>::extract(obj)
            .map(Text)
            .map_err(|e| not_text(py, e))
    }
}

/// A `str` argument, copied: as [`Text`], for places a borrow cannot go (items of
/// a list, say).
#[derive(Debug, Clone)]
pub struct OwnedText(pub String);

impl<'py> FromPyObject<'_, 'py> for OwnedText {
    type Error = PyErr;
    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<OwnedText> {
        text("the argument", &obj).map(OwnedText)
    }
}

/// A message body: `bytes`, `bytearray`, `memoryview` or `str` (encoded UTF-8).
pub fn body(obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        Ok(Bytes::copy_from_slice(b.as_bytes()))
    } else if let Ok(s) = obj.cast::<PyString>() {
        Ok(Bytes::from(utf8(s)?.as_bytes().to_vec()))
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        Ok(Bytes::from(b.to_vec()))
    } else if obj.is_instance_of::<PyMemoryView>() {
        let b = obj.py().get_type::<PyBytes>().call1((obj,))?;
        Ok(Bytes::copy_from_slice(b.cast::<PyBytes>()?.as_bytes()))
    } else {
        Err(type_error("body", "bytes or str", obj))
    }
}

/// Message keys: one string or a list/tuple of strings.
pub fn keys(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(obj) = obj else {
        return Ok(Vec::new());
    };
    if obj.is_none() {
        return Ok(Vec::new());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(vec![utf8(s)?.into_owned()]);
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in obj.try_iter()? {
            let item = item?;
            match item.cast::<PyString>() {
                Ok(s) => out.push(utf8(s)?.into_owned()),
                Err(_) => return Err(type_error("each key", "str", &item)),
            }
        }
        return Ok(out);
    }
    Err(type_error("keys", "a str or a list of str", obj))
}

/// Message properties: a `dict[str, str]`. A name or value of another type is a
/// `TypeError` naming it; a str that is not valid Unicode, `InvalidArgument` (see
/// [`utf8`]).
pub fn properties(obj: Option<&Bound<'_, PyAny>>) -> PyResult<BTreeMap<String, String>> {
    let Some(o) = obj.filter(|o| !o.is_none()) else {
        return Ok(BTreeMap::new());
    };
    let Ok(dict) = o.cast::<PyDict>() else {
        return Err(type_error("properties", "a dict of str to str", o));
    };
    let mut out = BTreeMap::new();
    for (k, v) in dict.iter() {
        let Ok(name) = k.cast::<PyString>() else {
            return Err(type_error("a property name", "a str", &k));
        };
        let name = utf8(name)?.into_owned();
        let Ok(value) = v.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "property {name:?} must be a str, not {}",
                type_name(&v)
            )));
        };
        out.insert(name, utf8(value)?.into_owned());
    }
    Ok(out)
}

/// A number of seconds (int or float, not bool), or `None` if `obj` is neither. An
/// int too large for a float is `InvalidArgument`, like any value out of range.
fn number(obj: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
    if obj.is_instance_of::<PyBool>() {
        return Ok(None);
    }
    if obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>() {
        // (An int of hundreds of digits is not quoted back.)
        return obj
            .extract::<f64>()
            .map(Some)
            .map_err(|_| invalid("the number is too large (1e308 or more)"));
    }
    Ok(None)
}

/// A whole-number argument (an int, not a bool): a wrong type is `TypeError`, a
/// value out of range (negative, or past what the engine takes, however large)
/// `InvalidArgument`, never `OverflowError`.
#[derive(Debug, Clone, Copy)]
pub struct Whole(pub u64);

impl<'a, 'py> FromPyObject<'a, 'py> for Whole {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Whole> {
        if !obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyBool>() {
            return Err(type_error("the argument", "an integer", &obj));
        }
        // The argument's name is in the error's note (pyo3 adds "while processing
        // 'max_messages'"); each caller checks its own upper bound and names it.
        match obj.extract::<u64>() {
            Ok(v) => Ok(Whole(v)),
            Err(_) => Err(invalid(match obj.extract::<i64>() {
                Ok(v) => format!("the argument must be at least 0, not {v}"),
                Err(_) if obj.lt(0)? => "the argument must be at least 0".to_string(),
                Err(_) => "the argument is too large (2**64 or more)".to_string(),
            })),
        }
    }
}

fn seconds_to_ms(secs: f64, what: &str) -> PyResult<u64> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(invalid(format!(
            "{what} must be a finite, non-negative number of seconds, not {secs}"
        )));
    }
    let ms = (secs * 1000.0).round();
    if ms > u64::MAX as f64 {
        return Err(invalid(format!("{what} is too large: {secs} seconds")));
    }
    Ok(ms as u64)
}

/// A duration: seconds (int or float) or a `datetime.timedelta`, in milliseconds.
pub fn duration_ms(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    if let Some(secs) = number(obj)? {
        return seconds_to_ms(secs, what);
    }
    let timedelta = obj.py().import("datetime")?.getattr("timedelta")?;
    if obj.is_instance(&timedelta)? {
        let secs: f64 = obj.call_method0("total_seconds")?.extract()?;
        return seconds_to_ms(secs, what);
    }
    Err(type_error(what, "a number of seconds or a timedelta", obj))
}

/// A point in time: epoch seconds (int or float) or a `datetime` (a naive one is
/// local time, as `datetime.timestamp()` reads it), in milliseconds since the epoch.
pub fn epoch_ms(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    if let Some(secs) = number(obj)? {
        return seconds_to_ms(secs, what);
    }
    let datetime = obj.py().import("datetime")?.getattr("datetime")?;
    if obj.is_instance(&datetime)? {
        let secs: f64 = obj.call_method0("timestamp")?.extract()?;
        return seconds_to_ms(secs, what);
    }
    Err(type_error(what, "epoch seconds or a datetime", obj))
}

/// Where a group starts or is reset to: `"earliest"`, `"latest"`, epoch seconds or a
/// datetime.
pub fn start_from(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<StartFrom> {
    let v = match obj.cast::<PyString>() {
        Ok(s) => OptionValue::Text(utf8(s)?.into_owned()),
        Err(_) => match epoch_ms(obj, what) {
            Ok(ms) => OptionValue::Number(ms as f64),
            Err(e) if e.is_instance_of::<PyTypeError>(obj.py()) => {
                let expected = "\"earliest\", \"latest\", epoch seconds or a datetime";
                return Err(type_error(what, expected, obj));
            }
            Err(e) => return Err(e),
        },
    };
    StartFrom::from_option(what, v).py_err()
}

/// A keyword argument's value as the engine's option `name` of kind `kind` takes it.
pub fn option_value(obj: &Bound<'_, PyAny>, kind: OptionKind, name: &str) -> PyResult<OptionValue> {
    let is_int = obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>();
    Ok(match kind {
        OptionKind::Bool if obj.is_instance_of::<PyBool>() => OptionValue::Bool(obj.extract()?),
        OptionKind::Bool => return Err(type_error(name, "True or False", obj)),
        OptionKind::Integer if is_int => OptionValue::Number(
            obj.extract::<f64>()
                .map_err(|_| invalid(format!("{name} is too large")))?,
        ),
        OptionKind::Integer => return Err(type_error(name, "an integer", obj)),
        OptionKind::Duration => OptionValue::Number(duration_ms(obj, name)? as f64),
        OptionKind::OptionalDuration if obj.is_none() => OptionValue::None,
        OptionKind::OptionalDuration => OptionValue::Number(duration_ms(obj, name)? as f64),
        OptionKind::Ratio => match number(obj)? {
            Some(n) => OptionValue::Number(n),
            None => return Err(type_error(name, "a number", obj)),
        },
        OptionKind::Text => match obj.cast::<PyString>() {
            Ok(s) => OptionValue::Text(utf8(s)?.into_owned()),
            Err(_) => return Err(type_error(name, "a string", obj)),
        },
        OptionKind::Time => OptionValue::Number(epoch_ms(obj, name)? as f64),
        OptionKind::Strings => OptionValue::List(keys(Some(obj))?),
        OptionKind::Map => OptionValue::Map(properties(Some(obj))?.into_iter().collect()),
        OptionKind::Position => match start_from(obj, name)? {
            StartFrom::Earliest => OptionValue::Text("earliest".into()),
            StartFrom::Latest => OptionValue::Text("latest".into()),
            StartFrom::Timestamp(ms) => OptionValue::Number(ms as f64),
        },
    })
}

/// Sets a config's keyword options by name (the engine's `Options`): None keeps
/// the default, except where it switches an option off.
pub fn set_options<C: Options>(
    cfg: &mut C,
    options: Option<&Bound<'_, PyDict>>,
    callable: &str,
) -> PyResult<()> {
    for (name, value) in options.into_iter().flatten() {
        let name: String = name.extract()?;
        let kind = C::option_kind(&name).ok_or_else(|| unexpected(callable, &name))?;
        if !value.is_none() || kind == OptionKind::OptionalDuration {
            cfg.set_option(&name, option_value(&value, kind, &name)?)
                .py_err()?;
        }
    }
    Ok(())
}

/// The `TypeError` Python raises for a keyword argument a callable does not take.
pub fn unexpected(callable: &str, name: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{callable} got an unexpected keyword argument '{name}'"
    ))
}

/// A non-negative integer that fits a `u32`.
pub fn to_u32(value: Whole, what: &str) -> PyResult<u32> {
    u32::try_from(value.0).map_err(|_| {
        invalid(format!(
            "{what} must be between 0 and {}, not {}",
            u32::MAX,
            value.0
        ))
    })
}

/// An optional argument that was given, and not as None.
pub fn given<'a, 'py>(v: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    v.filter(|v| !v.is_none())
}

/// The text of the send option `name`.
pub fn text(name: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(s) => Ok(utf8(s)?.into_owned()),
        Err(_) => Err(type_error(name, "a string", value)),
    }
}

/// Sets the send option `name` (not None) on `b` through the engine's option setter
/// (`Producer.send` sets the text options on the message itself).
pub fn set_message_option(
    b: MessageBuilder,
    name: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<MessageBuilder> {
    let kind = MessageBuilder::option_kind(name)
        .ok_or_else(|| invalid(format!("unknown send option {name:?}")))?;
    let v = option_value(value, kind, name)?;
    b.set_option(name, v).py_err()
}

/// A message to `topic` with `body` and the send options of a call (`None` values
/// are left out), as the engine takes them by name.
pub fn message(
    topic: &str,
    body: Bytes,
    options: Option<&Bound<'_, PyDict>>,
    callable: &str,
) -> PyResult<Message> {
    let mut b = Message::builder(topic, body);
    for (name, value) in options.into_iter().flatten() {
        let name: String = name.extract()?;
        let kind = MessageBuilder::option_kind(&name).ok_or_else(|| unexpected(callable, &name))?;
        if !value.is_none() {
            b = b
                .set_option(&name, option_value(&value, kind, &name)?)
                .py_err()?;
        }
    }
    Ok(b.build())
}
