//! The one mapping from the engine's `Error` to JavaScript errors. The JS wrapper
//! registers its `Error` subclasses (one per kind) at load; `to_js` builds an
//! instance of the class for the error's kind and sets `code` to the kind's name.
//! Without registered classes (the raw glue used alone) it builds a plain `Error`
//! with the same `code`. Wrong JS types become a `TypeError`.

use std::cell::RefCell;

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use pocketmq::Error;

thread_local! {
    static CLASSES: RefCell<Option<Object>> = const { RefCell::new(None) };
}

/// Registers the error classes to build: an object from each code
/// (`"InvalidArgument"`, ...) to an `Error` subclass whose constructor takes a message.
#[wasm_bindgen(js_name = registerErrorClasses)]
pub fn register_error_classes(classes: Object) {
    CLASSES.with(|c| *c.borrow_mut() = Some(classes));
}

/// The JS error for an engine error: its `code` is the kind's name.
pub(crate) fn to_js(err: Error) -> JsValue {
    let js = build(err.kind().as_str(), &err.to_string());
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
