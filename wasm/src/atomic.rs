//! `Atomic`: the sends and acks of `broker.atomic((tx) => ...)`, stored as one
//! append at `commit`. The wrapper runs the user's block and commits or aborts.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use crate::consumer::Consumer;
use crate::convert::string;
use crate::errors::{invalid, IntoJsResult};
use crate::message::Messages;
use crate::simple_consumer::SimpleConsumer;
use crate::wire;

/// An atomic block until it is committed or aborted.
#[wasm_bindgen]
pub struct Atomic {
    block: RefCell<Option<pocketmq::Atomic>>,
    broker: pocketmq::Broker,
}

impl Atomic {
    pub(crate) fn new(block: pocketmq::Atomic, broker: pocketmq::Broker) -> Atomic {
        Atomic {
            block: RefCell::new(Some(block)),
            broker,
        }
    }

    fn with(
        &self,
        f: impl FnOnce(&mut pocketmq::Atomic) -> pocketmq::Result<()>,
    ) -> Result<(), JsValue> {
        match self.block.borrow_mut().as_mut() {
            Some(b) => f(b).js_err(),
            None => Err(invalid(
                "this atomic block is finished (committed or aborted)",
            )),
        }
    }
}

#[wasm_bindgen]
impl Atomic {
    /// Adds the sends encoded in `encoded` (wire.rs) for `topic`.
    #[wasm_bindgen(js_name = sendEncoded)]
    pub fn send_encoded(&self, topic: JsValue, encoded: Vec<u8>) -> Result<(), JsValue> {
        let topic = string("topic", &topic)?;
        let msgs = wire::read_messages(&encoded, &topic)?;
        self.with(|b| msgs.into_iter().try_for_each(|m| b.send(m)))
    }

    /// Adds the ack of the message at `index` of a batch `consumer` received.
    pub fn ack(&self, consumer: &Consumer, batch: &Messages, index: u32) -> Result<(), JsValue> {
        let msg = batch.at(index)?;
        self.with(|b| b.ack(&consumer.0, msg))
    }

    /// Adds the ack of the simple consumer delivery `handle` names.
    #[wasm_bindgen(js_name = ackHandle)]
    pub fn ack_handle(&self, consumer: &SimpleConsumer, handle: JsValue) -> Result<(), JsValue> {
        let h = string("receipt handle", &handle)?;
        self.with(|b| b.ack_handle(&consumer.0, &h))
    }

    /// Stores the block; the sends' results in wire form (wire.rs).
    pub fn commit(&self) -> Result<u32, JsValue> {
        let block = self
            .block
            .borrow_mut()
            .take()
            .ok_or_else(|| invalid("this atomic block is finished (committed or aborted)"))?;
        let results = block.commit().js_err()?;
        Ok(wire::send_results(&results, self.broker.next_due_ms()))
    }

    /// Drops the block: nothing is applied.
    pub fn abort(&self) {
        self.block.borrow_mut().take();
    }
}
