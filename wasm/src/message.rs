//! Messages as the engine handed them out, kept together: one `Messages` per
//! receive (or `get`, `query`, transaction callback). The JS wrapper decodes them
//! once from their wire form (wire.rs) into plain `Message` objects, each of
//! which keeps the batch and its index, so that `ack`/`nack` give the engine back
//! the very message it delivered. One JS handle per batch, not per message.

use wasm_bindgen::prelude::*;

use pocketmq::MessageExt;

use crate::errors::invalid;
use crate::wire;

#[wasm_bindgen]
pub struct Messages(pub(crate) Vec<MessageExt>);

#[wasm_bindgen]
impl Messages {
    /// How many messages the batch holds.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> u32 {
        self.0.len() as u32
    }

    /// Writes the batch in its wire form; returns the address (wire.rs).
    pub fn encode(&self) -> u32 {
        wire::messages(&self.0)
    }
}

impl Messages {
    /// The message at `index`, or an InvalidArgument error.
    pub(crate) fn at(&self, index: u32) -> Result<&MessageExt, JsValue> {
        self.0
            .get(index as usize)
            .ok_or_else(|| invalid(format!("no message {index} in this batch")))
    }
}
