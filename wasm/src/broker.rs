//! The broker and the manual clock. Options arrive as one object (convert.rs);
//! a `ManualClock` is shared by handing the broker a clone of it.

use std::sync::Arc;

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use pocketmq::{Clock, ConsumerConfig, SimpleConsumerConfig, TxId, TxState};

use crate::consumer::Consumer;
use crate::convert::{broker_config, group_config, ms, position_value, string, u32_arg};
use crate::errors::{host_error, to_js, type_error, IntoJsResult};
use crate::host_fs::JsHostFs;
use crate::message::Messages;
use crate::producer::{group, listener, Producer, TransactionProducer};
use crate::simple_consumer::SimpleConsumer;

/// A clock that moves only when told to; clones share the same time.
#[wasm_bindgen]
pub struct ManualClock(pocketmq::ManualClock);

#[wasm_bindgen]
impl ManualClock {
    /// A clock at `start_ms` (epoch ms), or at the wall-clock time now.
    #[wasm_bindgen(constructor)]
    pub fn new(start_ms: Option<f64>) -> Result<ManualClock, JsValue> {
        Ok(ManualClock(match start_ms {
            Some(t) => pocketmq::ManualClock::try_new(ms("startMs", t)?).js_err()?,
            None => pocketmq::ManualClock::starting_now(),
        }))
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance(&self, by: f64) -> Result<(), JsValue> {
        self.0.try_advance_ms(ms("advance", by)?).js_err()
    }

    /// Milliseconds since the epoch on this clock.
    pub fn now(&self) -> f64 {
        self.0.now_ms() as f64
    }

    /// Another handle on the same time.
    pub fn share(&self) -> ManualClock {
        ManualClock(self.0.clone())
    }
}

#[wasm_bindgen]
pub struct Broker {
    pub(crate) inner: pocketmq::Broker,
}

#[wasm_bindgen]
impl Broker {
    /// Opens a broker with the options object; `clock` (optional) is its time;
    /// `host_fs` (optional; Node) the file functions a `path` store lives on.
    #[wasm_bindgen(constructor)]
    pub fn new(
        options: JsValue,
        clock: Option<ManualClock>,
        host_fs: JsValue,
    ) -> Result<Broker, JsValue> {
        let mut config = broker_config(&options)?;
        if let Some(c) = clock {
            config.clock = Arc::new(c.0);
        }
        let fs = match (&config.path, host_fs.is_undefined() || host_fs.is_null()) {
            (Some(_), false) => Some(Arc::new(JsHostFs::from_js(&host_fs)?)),
            _ => None,
        };
        config.host_fs = fs.clone().map(|f| f as Arc<dyn pocketmq::HostFs>);
        let inner = pocketmq::Broker::open(config).map_err(|e| {
            // Taking the lock failed for another reason than a live holder: say why.
            match fs.as_ref().and_then(|f| f.take_lock_error()) {
                Some(js) => host_error(js),
                None => to_js(e),
            }
        })?;
        Ok(Broker { inner })
    }

    #[wasm_bindgen(js_name = createTopic)]
    pub fn create_topic(&self, name: JsValue, queues: Option<f64>) -> Result<(), JsValue> {
        let name = string("topic", &name)?;
        let queues = queues.map(|q| u32_arg("queues", q)).transpose()?;
        self.inner.create_topic(&name, queues).js_err()
    }

    /// `[{ name, queues }]` of the user topics.
    pub fn topics(&self) -> Result<JsValue, JsValue> {
        crate::convert::to_js(&self.inner.topics().js_err()?)
    }

    /// A new atomic block (the wrapper runs the user's block on it).
    pub fn atomic(&self) -> Result<crate::atomic::Atomic, JsValue> {
        let block = self.inner.atomic().js_err()?;
        Ok(crate::atomic::Atomic::new(block, self.inner.clone()))
    }

    pub fn producer(&self, group_name: JsValue) -> Result<Producer, JsValue> {
        let g = group(&group_name)?;
        let inner = self.inner.producer(&g).js_err()?;
        Ok(Producer::new(inner, self.inner.clone()))
    }

    #[wasm_bindgen(js_name = transactionProducer)]
    pub fn transaction_producer(
        &self,
        group_name: JsValue,
        check: JsValue,
    ) -> Result<TransactionProducer, JsValue> {
        let g = group(&group_name)?;
        let Ok(check) = check.dyn_into::<Function>() else {
            return Err(type_error("check must be a function"));
        };
        self.inner
            .transaction_producer(&g, listener(check))
            .js_err()
            .map(TransactionProducer)
    }

    pub fn consumer(&self, options: JsValue) -> Result<Consumer, JsValue> {
        let config = group_config("consumer", &options, ConsumerConfig::new)?;
        self.inner.consumer(config).js_err().map(Consumer)
    }

    #[wasm_bindgen(js_name = simpleConsumer)]
    pub fn simple_consumer(&self, options: JsValue) -> Result<SimpleConsumer, JsValue> {
        let config = group_config("simple consumer", &options, SimpleConsumerConfig::new)?;
        self.inner
            .simple_consumer(config)
            .js_err()
            .map(SimpleConsumer)
    }

    pub fn get(&self, msg_id: JsValue) -> Result<Option<Messages>, JsValue> {
        let id = string("msgId", &msg_id)?;
        Ok(self.inner.get(&id).js_err()?.map(|m| Messages(vec![m])))
    }

    pub fn query(&self, topic: JsValue, key: JsValue) -> Result<Messages, JsValue> {
        let topic = string("topic", &topic)?;
        let key = string("key", &key)?;
        self.inner.query(&topic, &key).js_err().map(Messages)
    }

    pub fn lag(&self, group_name: JsValue, topic: JsValue) -> Result<f64, JsValue> {
        let g = string("group", &group_name)?;
        let topic = string("topic", &topic)?;
        Ok(self.inner.lag(&g, &topic).js_err()? as f64)
    }

    #[wasm_bindgen(js_name = resetOffset)]
    pub fn reset_offset(
        &self,
        group_name: JsValue,
        topic: JsValue,
        to: JsValue,
    ) -> Result<(), JsValue> {
        let g = string("group", &group_name)?;
        let topic = string("topic", &topic)?;
        let to = position_value("to", &to)?;
        self.inner.reset_offset(&g, &topic, to).js_err()
    }

    /// Sizes, lags and rates, with the engine's (snake_case) names; the JS wrapper
    /// renames them.
    pub fn stats(&self) -> Result<JsValue, JsValue> {
        crate::convert::to_js(&self.inner.stats().js_err()?)
    }

    pub fn tick(&self) -> Result<(), JsValue> {
        self.inner.tick().js_err()
    }

    /// When the next deferred job is due (epoch ms on the broker's clock), if any.
    #[wasm_bindgen(js_name = nextDueMs)]
    pub fn next_due_ms(&self) -> Option<f64> {
        self.inner.next_due_ms().map(|t| t as f64)
    }

    /// Now on the broker's clock (epoch ms).
    #[wasm_bindgen(js_name = nowMs)]
    pub fn now_ms(&self) -> f64 {
        self.inner.clock().now_ms() as f64
    }

    pub fn flush(&self) -> Result<(), JsValue> {
        self.inner.flush().js_err()
    }

    pub fn close(&self) -> Result<(), JsValue> {
        self.inner.close().js_err()
    }

    #[wasm_bindgen(js_name = isClosed)]
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Resolves the half message at `half_offset` of the half topic and
    /// `commitlog_offset` (a transactional send's result, or the message a check was
    /// asked about) with "COMMIT" or "ROLLBACK", for an `execute` or `check` that
    /// answered with a Promise. True when this call resolved it (the first
    /// resolution wins).
    #[wasm_bindgen(js_name = endTransaction)]
    pub fn end_transaction(
        &self,
        half_offset: f64,
        commitlog_offset: f64,
        state: JsValue,
    ) -> Result<bool, JsValue> {
        let state = match state.as_string().as_deref() {
            Some("COMMIT") => TxState::Commit,
            Some("ROLLBACK") => TxState::Rollback,
            Some("UNKNOWN") => TxState::Unknown,
            _ => return Err(type_error("state must be COMMIT, ROLLBACK or UNKNOWN")),
        };
        let offset = |v: f64| {
            (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0)
                .then_some(v as u64)
                .ok_or_else(|| type_error("an offset is a non-negative integer"))
        };
        let id: TxId = format!(
            "{:016x}{:016x}",
            offset(half_offset)?,
            offset(commitlog_offset)?
        )
        .parse()
        .js_err()?;
        self.inner.end_transaction(&id, state).js_err()
    }
}
