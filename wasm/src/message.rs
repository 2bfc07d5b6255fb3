//! A stored message as the engine handed it out. The JS wrapper copies its
//! fields into a plain `Message` object once and keeps this handle so that
//! `ack`/`nack` give the engine back the very message it delivered.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use wasm_bindgen::prelude::*;

use pocketmq::MessageExt;

use crate::convert::to_js;

#[wasm_bindgen]
pub struct Message(pub(crate) MessageExt);

/// Serializes as bytes, which become a `Uint8Array`.
struct Body<'a>(&'a [u8]);

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageView<'a> {
    msg_id: &'a str,
    topic: &'a str,
    queue_id: u32,
    queue_offset: u64,
    commitlog_offset: u64,
    body: Body<'a>,
    tags: Option<&'a str>,
    keys: &'a [String],
    properties: &'a BTreeMap<String, String>,
    born_timestamp: u64,
    store_timestamp: u64,
    reconsume_times: u32,
}

#[wasm_bindgen]
impl Message {
    /// The message's fields as a plain object (camelCase; `body` a `Uint8Array`).
    #[wasm_bindgen(js_name = toObject)]
    pub fn to_object(&self) -> Result<JsValue, JsValue> {
        let m = &self.0;
        to_js(&MessageView {
            msg_id: &m.msg_id,
            topic: &m.topic,
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            commitlog_offset: m.commitlog_offset,
            body: Body(&m.body),
            tags: m.tags.as_deref(),
            keys: &m.keys,
            properties: &m.properties,
            born_timestamp: m.born_timestamp,
            store_timestamp: m.store_timestamp,
            reconsume_times: m.reconsume_times,
        })
    }
}

pub(crate) fn to_array(msgs: Vec<MessageExt>) -> Vec<Message> {
    msgs.into_iter().map(Message).collect()
}
