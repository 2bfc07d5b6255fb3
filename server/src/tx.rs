//! Transactional messages over the protocol (server-mode.md §3.2, §4.5): a SendMessage
//! of type TRANSACTION stores a half message and answers a server-chosen
//! `transaction_id`; EndTransaction (COMMIT or ROLLBACK, from any connection) resolves
//! it, the first resolution winning and repeated ones answered OK. When a half
//! message stays open, the engine's check hook asks the server, which pushes a
//! `RecoverOrphanedTransactionCommand` down the Telemetry stream of a live producer
//! publishing the topic and answers "pending"; the producer's EndTransaction
//! (SOURCE_SERVER_CHECK) resolves it later. With no such producer the check still
//! counts, and after `max_checks` the engine discards the half message.
//!
//! The engine side is core's asynchronous transactions, being added: the calls are
//! gathered at the end of this file, each answering NOT_IMPLEMENTED until core has them.

use std::sync::atomic::{AtomicUsize, Ordering};

use pocketmq::{Message, MessageExt, SendResult};
use tonic::Request;

use crate::client::Clients;
use crate::convert::{self, Delivery};
use crate::proto::telemetry_command::Command;
use crate::proto::*;
use crate::resource::{self, Use};
use crate::service::Shared;
use crate::status::{self, Outcome, Refusal};

/// The longest transaction id accepted (the engine's ids are far shorter).
const MAX_TX_ID_LEN: usize = 256;

/// A COMMIT or ROLLBACK, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub topic: String,
    pub message_id: String,
    pub transaction_id: String,
    pub commit: bool,
    pub from_check: bool,
}

/// Validates an EndTransaction.
pub(crate) fn resolution(req: &EndTransactionRequest) -> Outcome<Resolution> {
    let topic = resource::topic(req.topic.as_ref(), Use::Send)?;
    let id = req.transaction_id.trim();
    if id.is_empty() || id.len() > MAX_TX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refusal::new(
            Code::InvalidTransactionId,
            "the transaction id is empty or malformed",
        ));
    }
    let commit = match TransactionResolution::try_from(req.resolution) {
        Ok(TransactionResolution::Commit) => true,
        Ok(TransactionResolution::Rollback) => false,
        _ => {
            return Err(Refusal::new(
                Code::BadRequest,
                "the resolution is COMMIT or ROLLBACK",
            ))
        }
    };
    Ok(Resolution {
        topic,
        message_id: req.message_id.clone(),
        transaction_id: id.to_string(),
        commit,
        from_check: req.source == TransactionSource::SourceServerCheck as i32,
    })
}

/// EndTransaction: OK once resolved, also when it was resolved before.
pub(crate) async fn end_transaction(
    sh: &Shared,
    req: Request<EndTransactionRequest>,
) -> Outcome<EndTransactionResponse> {
    let caller = sh.caller(&req)?;
    let r = resolution(req.get_ref())?;
    let first = end(sh, &r).await?;
    log::info!(
        "client={} event=end_transaction topic={} message_id={} commit={} from_check={} first={first}",
        caller.client.id,
        r.topic,
        r.message_id,
        r.commit,
        r.from_check
    );
    Ok(EndTransactionResponse {
        status: Some(status::ok()),
    })
}

/// The command that asks a producer to decide an open half message.
#[allow(dead_code)] // called by the engine's check hook, once core has one
pub(crate) fn recover_command(
    half: &MessageExt,
    topic: Resource,
    transaction_id: &str,
) -> TelemetryCommand {
    TelemetryCommand {
        status: Some(status::ok()),
        command: Some(Command::RecoverOrphanedTransactionCommand(
            RecoverOrphanedTransactionCommand {
                message: Some(convert::to_proto(half, topic, Delivery::default())),
                transaction_id: transaction_id.to_string(),
            },
        )),
    }
}

#[allow(dead_code)]
static NEXT_PRODUCER: AtomicUsize = AtomicUsize::new(0);

/// Pushes a check-back to one live producer of `topic` (they take turns); false when
/// none is connected or its stream is full.
#[allow(dead_code)] // called by the engine's check hook, once core has one
pub(crate) fn push_check(clients: &Clients, topic: &str, cmd: TelemetryCommand) -> bool {
    let producers = clients.producers_of(topic);
    if producers.is_empty() {
        return false;
    }
    let start = NEXT_PRODUCER.fetch_add(1, Ordering::Relaxed);
    let mut cmd = Some(cmd);
    for i in 0..producers.len() {
        let (id, tx) = &producers[(start + i) % producers.len()];
        match tx.try_send(Ok(cmd.take().expect("sent once"))) {
            Ok(()) => {
                log::debug!("client={id} event=check_back topic={topic}");
                return true;
            }
            Err(e) => {
                cmd = Some(e.into_inner().expect("our own command"));
            }
        }
    }
    false
}

// ---- engine calls -------------------------------------------------------------
//
// Core's asynchronous transactions, being added:
//   transaction_producer.send_half(msg) -> Result<(SendResult, TxId)>
//   broker.end_transaction(tx_id, TxState) -> Result<bool>   (true: this call resolved it)
//   a per-group check hook that may answer "pending" (the server then calls
//   `push_check` with `recover_command` and resolves on the producer's answer).
// Until then a TRANSACTION send and EndTransaction answer NOT_IMPLEMENTED.

/// Stores a half message: its send result and the transaction id the client gets.
pub(crate) async fn send_half(_sh: &Shared, _msg: Message) -> Outcome<(SendResult, String)> {
    Err(Refusal::not_implemented("transactional sending"))
}

/// Resolves a half message; true when this call resolved it.
async fn end(_sh: &Shared, _r: &Resolution) -> Outcome<bool> {
    Err(Refusal::not_implemented("EndTransaction"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    fn req(f: impl FnOnce(&mut EndTransactionRequest)) -> EndTransactionRequest {
        let mut r = EndTransactionRequest {
            topic: Some(Resource {
                resource_namespace: String::new(),
                name: "t".into(),
            }),
            message_id: "01AA".into(),
            transaction_id: "tx-1".into(),
            resolution: TransactionResolution::Commit as i32,
            source: TransactionSource::SourceClient as i32,
            trace_context: String::new(),
        };
        f(&mut r);
        r
    }

    #[test]
    fn resolutions_validate() {
        let r = resolution(&req(|_| {})).unwrap();
        assert!(r.commit && !r.from_check);
        let code = |r| resolution(&r).unwrap_err().code;
        assert_eq!(
            code(req(|r| r.transaction_id = " ".into())),
            Code::InvalidTransactionId
        );
        assert_eq!(code(req(|r| r.resolution = 0)), Code::BadRequest);
        assert_eq!(code(req(|r| r.topic = None)), Code::IllegalTopic);
    }

    #[test]
    fn check_backs_go_to_a_producer_of_the_topic() {
        let clients = Clients::new(10, 1000);
        let mut md = MetadataMap::new();
        md.insert("x-mq-client-id", "p1".parse().unwrap());
        let caller = clients.caller(&md, 0).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        {
            let mut s = caller.client.session.lock().unwrap();
            s.client_type = Some(ClientType::Producer);
            s.topics = vec!["t".into()];
            s.telemetry = Some((1, tx));
        }
        let cmd = TelemetryCommand::default();
        assert!(!push_check(&clients, "other", cmd.clone()));
        assert!(push_check(&clients, "t", cmd));
        assert!(rx.try_recv().is_ok());
    }
}
