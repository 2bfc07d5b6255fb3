//! The file store under Node: the core's [`pocketmq::HostFs`] over JS callbacks.
//! The Node side of the wrapper (`wasm/js/node_fs.js`) hands over an object of
//! functions over Node's `fs` (paths relative to the store directory, joined
//! there); this file only converts arguments and results and turns thrown JS
//! errors into `io::Error`s. In browsers no such object exists, so `path` stays an
//! `InvalidArgument` error from the core.

use std::cell::RefCell;
use std::io;

use js_sys::{Array, Function, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::convert::type_name;
use crate::errors::type_error;

/// The host's file functions, as the JS wrapper provides them.
pub(crate) struct JsHostFs {
    read: Function,
    write_at: Function,
    set_len: Function,
    sync: Function,
    replace: Function,
    list: Function,
    remove: Function,
    lock: Function,
    unlock: Function,
    /// `diskUsage()`, if the host offers it: the used fraction of the store's file system.
    disk_usage: Option<Function>,
    /// `size(path)`, if the host offers it: a file's length (null when missing),
    /// without reading the file.
    size: Option<Function>,
    /// `syncLater(path)` and `syncPending()`, if the host offers them: an async-mode
    /// flush starts its syncs without waiting for them (see the core's `HostFs`).
    sync_later: Option<(Function, Function)>,
    /// What `lock` threw, if it failed for another reason than a live holder (the
    /// core's `HostFs::lock` can only name a pid).
    lock_error: RefCell<Option<JsValue>>,
}

// SAFETY: wasm32-unknown-unknown has exactly one thread: the JS functions (and the
// RefCell) are only ever touched from the thread that created them.
unsafe impl Send for JsHostFs {}
// SAFETY: as above; no second thread exists that could share the reference.
unsafe impl Sync for JsHostFs {}

impl std::fmt::Debug for JsHostFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsHostFs")
    }
}

fn function(obj: &JsValue, name: &str) -> Result<Function, JsValue> {
    Reflect::get(obj, &JsValue::from_str(name))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or_else(|| type_error(format!("host file system needs a function {name}")))
}

/// A thrown JS error as an `io::Error`: Node's `code` (ENOENT, ...) picks the kind,
/// its message is kept.
fn io_error(err: JsValue) -> io::Error {
    let field = |name: &str| {
        Reflect::get(&err, &JsValue::from_str(name))
            .ok()
            .and_then(|v| v.as_string())
    };
    let kind = match field("code").as_deref() {
        Some("ENOENT") => io::ErrorKind::NotFound,
        Some("EACCES" | "EPERM") => io::ErrorKind::PermissionDenied,
        Some("EEXIST") => io::ErrorKind::AlreadyExists,
        Some("ENOSPC") => io::ErrorKind::StorageFull,
        Some("EDQUOT") => io::ErrorKind::QuotaExceeded,
        _ => io::ErrorKind::Other,
    };
    let message = field("message")
        .or_else(|| err.as_string())
        .unwrap_or_else(|| format!("host file system failed ({})", type_name(&err)));
    io::Error::new(kind, message)
}

fn bytes(data: &[u8]) -> JsValue {
    Uint8Array::from(data).into()
}

fn num(v: u64) -> JsValue {
    JsValue::from_f64(v as f64)
}

impl JsHostFs {
    /// The functions of `obj`: read, writeAt, setLen, sync, replace, list, remove, lock,
    /// unlock, and diskUsage, size and the pair syncLater + syncPending if it has them.
    pub(crate) fn from_js(obj: &JsValue) -> Result<JsHostFs, JsValue> {
        Ok(JsHostFs {
            read: function(obj, "read")?,
            write_at: function(obj, "writeAt")?,
            set_len: function(obj, "setLen")?,
            sync: function(obj, "sync")?,
            replace: function(obj, "replace")?,
            list: function(obj, "list")?,
            remove: function(obj, "remove")?,
            lock: function(obj, "lock")?,
            unlock: function(obj, "unlock")?,
            disk_usage: function(obj, "diskUsage").ok(),
            size: function(obj, "size").ok(),
            sync_later: function(obj, "syncLater")
                .ok()
                .zip(function(obj, "syncPending").ok()),
            lock_error: RefCell::new(None),
        })
    }

    /// What `lock` threw when taking the lock failed for another reason than a holder.
    pub(crate) fn take_lock_error(&self) -> Option<JsValue> {
        self.lock_error.borrow_mut().take()
    }

    fn call(&self, f: &Function, args: &[JsValue]) -> io::Result<JsValue> {
        let args: Array = args.iter().collect();
        f.apply(&JsValue::NULL, &args).map_err(io_error)
    }
}

impl pocketmq::HostFs for JsHostFs {
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let v = self.call(&self.read, &[path.into()])?;
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        v.dyn_into::<Uint8Array>()
            .map(|a| Some(a.to_vec()))
            .map_err(|v| io::Error::other(format!("read({path}) returned {}", type_name(&v))))
    }

    fn len(&self, path: &str) -> io::Result<Option<u64>> {
        let Some(size) = &self.size else {
            return Ok(self.read(path)?.map(|b| b.len() as u64));
        };
        let v = self.call(size, &[path.into()])?;
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        match v.as_f64() {
            Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(Some(n as u64)),
            _ => Err(io::Error::other(format!(
                "size({path}) returned {}",
                type_name(&v)
            ))),
        }
    }

    fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        // A flush writes megabytes of a segment: the host reads them in place
        // instead of from a copy made for each write.
        // SAFETY: the view lives for this call only, in which nothing allocates in
        // wasm memory (which could grow it and detach the view): `writeAt` writes
        // synchronously, keeps no reference, and never calls into the engine.
        let view = unsafe { Uint8Array::view(data) };
        self.call(&self.write_at, &[path.into(), num(offset), view.into()])
            .map(drop)
    }

    fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        self.call(&self.set_len, &[path.into(), num(len)]).map(drop)
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        self.call(&self.sync, &[path.into()]).map(drop)
    }

    fn sync_later(&self, path: &str) -> io::Result<bool> {
        match &self.sync_later {
            // The host answers whether the data is durable already.
            Some((later, _)) => Ok(self.call(later, &[path.into()])?.is_truthy()),
            None => self.sync(path).map(|()| true),
        }
    }

    fn sync_pending(&self) -> io::Result<()> {
        match &self.sync_later {
            Some((_, pending)) => self.call(pending, &[]).map(drop),
            None => Ok(()),
        }
    }

    fn replace(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.call(&self.replace, &[path.into(), bytes(data)])
            .map(drop)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<(String, bool)>> {
        let v = self.call(&self.list, &[dir.into()])?;
        let bad = || io::Error::other(format!("list({dir}) must return [name, isDir] pairs"));
        let entries = v.dyn_into::<Array>().map_err(|_| bad())?;
        entries
            .iter()
            .map(|e| {
                let pair = e.dyn_into::<Array>().map_err(|_| bad())?;
                let name = pair.get(0).as_string().ok_or_else(bad)?;
                Ok((name, pair.get(1).is_truthy()))
            })
            .collect()
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        self.call(&self.remove, &[path.into()]).map(drop)
    }

    fn lock(&self) -> Result<(), u32> {
        match self.lock.call0(&JsValue::NULL) {
            Ok(v) => match v.as_f64() {
                // A number is the pid of the live process holding the store.
                Some(pid) => Err(pid as u32),
                None => Ok(()),
            },
            Err(e) => {
                *self.lock_error.borrow_mut() = Some(e);
                Err(0)
            }
        }
    }

    fn unlock(&self) {
        // The JS side reports its own failures here (close has done its work by then).
        let _ = self.unlock.call0(&JsValue::NULL);
    }

    fn disk_usage(&self) -> Option<f64> {
        let used = self
            .disk_usage
            .as_ref()?
            .call0(&JsValue::NULL)
            .ok()?
            .as_f64()?;
        (0.0..=1.0).contains(&used).then_some(used)
    }
}
