//! Transactional messages over the protocol (server-mode.md §3.2, §4.5): a SendMessage
//! of type TRANSACTION stores a half message and answers a server-chosen
//! `transaction_id`; EndTransaction (COMMIT or ROLLBACK, from any connection) resolves
//! it, the first resolution winning and repeated ones answered OK. Any other
//! resolution (a checker that answered UNKNOWN: the Go client then sends none) is
//! answered OK and leaves the half message to the next check, as Apache's proxy
//! does. When a half
//! message stays open, the engine's check hook asks the server, which pushes a
//! `RecoverOrphanedTransactionCommand` down the Telemetry stream of a live producer
//! publishing the topic and answers "pending"; the producer's EndTransaction
//! (SOURCE_SERVER_CHECK) resolves it later. With no such producer the check still
//! counts, and after `max_checks` the engine discards the half message.
//!
//! The engine side is core's `send_half` / `end_transaction`; the check hook is a
//! `TransactionListener` of the server's producer group that queues the command and
//! answers UNKNOWN (pending), so the engine never waits on a client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use pocketmq::{ErrorKind, FlushMode, Message, MessageExt, SendResult, TxId, TxState};
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

/// A COMMIT, ROLLBACK or (any other resolution) UNKNOWN, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub topic: String,
    pub message_id: String,
    pub transaction_id: String,
    pub state: TxState,
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
    let state = match TransactionResolution::try_from(req.resolution) {
        Ok(TransactionResolution::Commit) => TxState::Commit,
        Ok(TransactionResolution::Rollback) => TxState::Rollback,
        _ => TxState::Unknown,
    };
    Ok(Resolution {
        topic,
        message_id: req.message_id.clone(),
        transaction_id: id.to_string(),
        state,
        from_check: req.source == TransactionSource::SourceServerCheck as i32,
    })
}

/// EndTransaction: OK once resolved, also when it was resolved before.
pub(crate) async fn end_transaction(
    sh: &Arc<Shared>,
    req: Request<EndTransactionRequest>,
) -> Outcome<EndTransactionResponse> {
    let caller = sh.caller(&req)?;
    let r = resolution(req.get_ref())?;
    let first = match r.state {
        TxState::Unknown => false,
        _ => end(sh, &r).await?,
    };
    log::info!(
        "client={} event=end_transaction topic={} message_id={} state={:?} from_check={} first={first}",
        caller.client.id,
        r.topic,
        r.message_id,
        r.state,
        r.from_check
    );
    Ok(EndTransactionResponse {
        status: Some(status::ok()),
    })
}

/// The command that asks a producer to decide an open half message: the message as
/// Apache's proxy shows it (type TRANSACTION, delivery attempt, this server as its
/// store host).
pub(crate) fn recover_command(
    half: &MessageExt,
    topic: Resource,
    transaction_id: &str,
    store_host: &str,
) -> TelemetryCommand {
    let delivery = Delivery {
        delivery_attempt: Some(half.reconsume_times.saturating_add(1) as i32),
        store_host: store_host.to_string(),
        ..Delivery::default()
    };
    TelemetryCommand {
        status: Some(status::ok()),
        command: Some(Command::RecoverOrphanedTransactionCommand(
            RecoverOrphanedTransactionCommand {
                message: Some(convert::to_proto(half, topic, delivery)),
                transaction_id: transaction_id.to_string(),
            },
        )),
    }
}

static NEXT_PRODUCER: AtomicUsize = AtomicUsize::new(0);

/// On a half message: the client id of its sender (server-owned, never shown).
pub(crate) const SENDER: &str = "__PMQ_TX_SENDER";

/// Pushes a check-back of `half` to a live producer of its topic: its sender while
/// connected (the one that knows its local transaction: a topic's producers of
/// other groups, or without a checker, would only guess or drop it), else the
/// others in turn; false when none is connected or every stream is full.
pub(crate) fn push_check(
    clients: &Clients,
    half: &MessageExt,
    transaction_id: &str,
    store_host: &str,
) -> bool {
    let mut producers = clients.producers_of(&half.topic);
    if producers.is_empty() {
        return false;
    }
    let start = NEXT_PRODUCER.fetch_add(1, Ordering::Relaxed);
    let n = producers.len();
    producers.rotate_left(start % n);
    if let Some(sender) = half.properties.get(SENDER) {
        if let Some(i) = producers.iter().position(|(id, _, _)| id == sender) {
            let first = producers.remove(i);
            producers.insert(0, first);
        }
    }
    for (id, tx, topic) in &producers {
        let cmd = recover_command(half, topic.clone(), transaction_id, store_host);
        if tx.try_send(Ok(cmd)).is_ok() {
            log::debug!("client={id} event=check_back topic={}", half.topic);
            return true;
        }
    }
    false
}

/// The engine's check hook for half messages sent through the server: a
/// check-back to a producer of the topic, and UNKNOWN (the producer answers with
/// EndTransaction). With no producer connected the check still counts; after
/// `max_checks` the engine discards the half message.
pub(crate) fn checker(
    clients: Weak<Clients>,
    store_host: String,
) -> Arc<dyn pocketmq::TransactionListener> {
    Arc::new(move |half: &MessageExt| {
        if let (Some(clients), Some(id)) = (clients.upgrade(), TxId::of(half)) {
            let id = id.to_string();
            if !push_check(&clients, half, &id, &store_host) {
                log::info!(
                    "event=check_back_skipped topic={} transaction_id={id} reason=no_producer_connected",
                    half.topic
                );
            }
        }
        TxState::Unknown
    })
}

/// Stores a half message: its send result and the transaction id the client gets.
pub(crate) async fn send_half(sh: &Arc<Shared>, msg: Message) -> Outcome<(SendResult, String)> {
    let send = |sh: &Shared, msg| {
        sh.tx_producer
            .send_half(msg)
            .map(|(r, id)| (r, id.to_string()))
    };
    if sh.broker.config().flush == FlushMode::Sync {
        let sh = sh.clone();
        crate::service::engine(move || send(&sh, msg)).await
    } else {
        send(sh, msg).map_err(Refusal::from)
    }
}

/// Resolves a half message; true when this call resolved it.
async fn end(sh: &Arc<Shared>, r: &Resolution) -> Outcome<bool> {
    let invalid = |why: String| Refusal::new(Code::InvalidTransactionId, why);
    let id: TxId = r.transaction_id.parse().map_err(|_| {
        invalid(format!(
            "{:?} is not a transaction id of this server",
            r.transaction_id
        ))
    })?;
    let state = r.state;
    let broker = sh.broker.clone();
    let resolve = move || broker.end_transaction(&id, state);
    let done = if sh.broker.config().flush == FlushMode::Sync {
        // A commit's records are made durable before the answer.
        tokio::task::spawn_blocking(resolve).await.map_err(|e| {
            Refusal::new(
                Code::InternalServerError,
                format!("the engine call failed: {e}"),
            )
        })?
    } else {
        resolve()
    };
    done.map_err(|e| match e.kind() {
        ErrorKind::InvalidArgument => invalid(e.to_string()),
        _ => Refusal::from(e),
    })
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
        assert!(r.state == TxState::Commit && !r.from_check);
        let unknown = resolution(&req(|r| r.resolution = 0)).unwrap();
        assert_eq!(unknown.state, TxState::Unknown);
        let code = |r| resolution(&r).unwrap_err().code;
        assert_eq!(
            code(req(|r| r.transaction_id = " ".into())),
            Code::InvalidTransactionId
        );
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
            s.settings = Some(Settings {
                pub_sub: Some(crate::proto::settings::PubSub::Publishing(Publishing {
                    topics: vec![Resource {
                        resource_namespace: String::new(),
                        name: "t".into(),
                    }],
                    ..Publishing::default()
                })),
                ..Settings::default()
            });
            s.telemetry = Some((1, tx));
        }
        let msg = |topic: &str| {
            let b = pocketmq::Broker::memory();
            b.producer("p")
                .unwrap()
                .send(Message::new(topic, "x"))
                .unwrap();
            let c = b
                .consumer(pocketmq::ConsumerConfig::new("g", topic))
                .unwrap();
            c.receive(1, std::time::Duration::from_secs(1))
                .unwrap()
                .remove(0)
        };
        assert!(!push_check(&clients, &msg("other"), "id", "127.0.0.1:8081"));
        assert!(push_check(&clients, &msg("t"), "id", "127.0.0.1:8081"));
        let Ok(Ok(cmd)) = rx.try_recv() else {
            panic!("a command")
        };
        let Some(Command::RecoverOrphanedTransactionCommand(r)) = cmd.command else {
            panic!("a check-back")
        };
        assert_eq!(r.transaction_id, "id");
        assert_eq!(r.message.unwrap().topic.unwrap().name, "t");
    }
}
