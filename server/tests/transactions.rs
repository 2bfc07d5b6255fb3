//! Transactional messages over the protocol (server-mode.md §3.2): half messages
//! invisible until committed, the first resolution winning, check-backs through a
//! producer's Telemetry stream, and what happens with no producer connected.

mod common;

use std::time::Duration;

use common::*;
use pocketmq::{Broker, BrokerConfig};
use pocketmq_server::proto::settings::PubSub;
use pocketmq_server::proto::telemetry_command::Command;
use pocketmq_server::proto::*;
use tokio_stream::wrappers::ReceiverStream;

fn half(topic: &str, n: u32) -> Message {
    let mut m = message(topic, format!("half-{n}").as_bytes(), &message_id(n));
    m.system_properties.as_mut().unwrap().message_type = MessageType::Transaction as i32;
    m
}

async fn end(
    client: &mut Client,
    topic: &str,
    n: u32,
    tx_id: &str,
    commit: bool,
    source: TransactionSource,
) -> Code {
    let resolution = if commit {
        TransactionResolution::Commit
    } else {
        TransactionResolution::Rollback
    };
    end_as(client, topic, n, tx_id, resolution, source).await
}

/// An EndTransaction with any resolution (the Go client sends UNSPECIFIED for a
/// checker's UNKNOWN).
async fn end_as(
    client: &mut Client,
    topic: &str,
    n: u32,
    tx_id: &str,
    resolution: TransactionResolution,
    source: TransactionSource,
) -> Code {
    let r = client
        .end_transaction(req(EndTransactionRequest {
            topic: Some(resource(topic)),
            message_id: message_id(n),
            transaction_id: tx_id.to_string(),
            resolution: resolution as i32,
            source: source as i32,
            trace_context: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    code(&r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_half_message_becomes_visible_once() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let r = send(&mut client, half("pay", 1)).await;
    assert_eq!(code(&r.status), Code::Ok);
    let tx_id = r.entries[0].transaction_id.clone();
    assert!(!tx_id.is_empty());
    assert_eq!(r.entries[0].message_id, message_id(1));
    assert!(
        stored(server.broker(), "pay").is_empty(),
        "invisible until committed"
    );
    assert_eq!(
        end(
            &mut client,
            "pay",
            1,
            &tx_id,
            true,
            TransactionSource::SourceClient
        )
        .await,
        Code::Ok
    );
    // First resolution wins; a late one is answered OK and changes nothing.
    assert_eq!(
        end(
            &mut client,
            "pay",
            1,
            &tx_id,
            false,
            TransactionSource::SourceClient
        )
        .await,
        Code::Ok
    );
    let got = stored(server.broker(), "pay");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body_str(), Some("half-1"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_half_message_never_appears() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let r = send(&mut client, half("pay", 1)).await;
    let tx_id = r.entries[0].transaction_id.clone();
    assert_eq!(
        end(
            &mut client,
            "pay",
            1,
            &tx_id,
            false,
            TransactionSource::SourceClient
        )
        .await,
        Code::Ok
    );
    assert_eq!(
        end(
            &mut client,
            "pay",
            1,
            &tx_id,
            true,
            TransactionSource::SourceClient
        )
        .await,
        Code::Ok
    );
    assert!(stored(server.broker(), "pay").is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_half_message_is_checked_back_through_a_producer_stream() {
    let (broker, clock) = manual_broker();
    let (server, mut client) = start(broker, config()).await;
    // A producer publishing the topic, with its Telemetry stream open.
    let (_tx, mut inbound) = producer_stream(&mut client, CLIENT_ID, "pay").await;
    let r = send(&mut client, half("pay", 1)).await;
    let tx_id = r.entries[0].transaction_id.clone();
    // Past the transaction timeout (6 s), the engine's check asks the producer.
    clock.advance_ms(7_000);
    server.broker().tick().unwrap();
    let command = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let c = inbound
                .message()
                .await
                .unwrap()
                .expect("the stream stays open");
            if let Some(Command::RecoverOrphanedTransactionCommand(r)) = c.command {
                return r;
            }
        }
    })
    .await
    .expect("a check-back within 5 s");
    assert_eq!(command.transaction_id, tx_id);
    let m = command.message.unwrap();
    let sys = m.system_properties.unwrap();
    assert_eq!(sys.message_id, message_id(1));
    // As Apache's proxy shows a check-back's message.
    assert_eq!(sys.message_type, MessageType::Transaction as i32);
    assert_eq!(sys.delivery_attempt, Some(1));
    assert!(!sys.store_host.is_empty());
    assert_eq!(m.topic, Some(resource("pay")));
    // The count of checks, a user property as Apache's check service sets it.
    assert_eq!(
        m.user_properties
            .get("TRANSACTION_CHECK_TIMES")
            .map(String::as_str),
        Some("1")
    );
    // A checker that answers UNKNOWN: the Go client sends no resolution. Answered OK
    // (as Apache does), and the half message stays open for the next check.
    assert_eq!(
        end_as(
            &mut client,
            "pay",
            1,
            &tx_id,
            TransactionResolution::Unspecified,
            TransactionSource::SourceServerCheck
        )
        .await,
        Code::Ok
    );
    assert!(stored(server.broker(), "pay").is_empty());
    assert_eq!(
        end(
            &mut client,
            "pay",
            1,
            &tx_id,
            true,
            TransactionSource::SourceServerCheck
        )
        .await,
        Code::Ok
    );
    assert_eq!(stored(server.broker(), "pay").len(), 1);
    server.shutdown().await.unwrap();
}

/// `m` with an `orphaned_transaction_recovery_duration` of `seconds`.
fn recovered_after(mut m: Message, seconds: i64) -> Message {
    m.system_properties
        .as_mut()
        .unwrap()
        .orphaned_transaction_recovery_duration = Some(prost_types::Duration { seconds, nanos: 0 });
    m
}

/// `m` with the user property `CHECK_IMMUNITY_TIME_IN_SECONDS` = `value`.
fn immune_for(mut m: Message, value: &str) -> Message {
    m.user_properties
        .insert("CHECK_IMMUNITY_TIME_IN_SECONDS".into(), value.into());
    m
}

/// A producer puts the first check-back off: with `orphaned_transaction_recovery_duration`
/// (at most an hour, as Apache's proxy allows) or the user property Apache's broker
/// reads, `CHECK_IMMUNITY_TIME_IN_SECONDS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_may_put_the_first_check_back_off() {
    let (broker, clock) = manual_broker();
    let (server, mut client) = start(broker, config()).await;
    let (_tx, mut inbound) = producer_stream(&mut client, CLIENT_ID, "pay").await;
    let by_duration = recovered_after(half("pay", 1), 20);
    let by_property = immune_for(half("pay", 2), "40");
    for m in [by_duration, by_property, half("pay", 3)] {
        assert_eq!(
            code(&send(&mut client, m).await.entries[0].status),
            Code::Ok
        );
    }
    // The one without a delay at the timeout (6 s), the others at 20 s and 40 s.
    for (advance, due) in [
        (6_000, Some(3)),
        (13_999, None),
        (1, Some(1)),
        (19_999, None),
        (1, Some(2)),
    ] {
        clock.advance_ms(advance);
        server.broker().tick().unwrap();
        let wait = Duration::from_millis(if due.is_some() { 5_000 } else { 300 });
        let got = check_back(&mut inbound, wait).await;
        assert_eq!(got, due.map(message_id), "after {advance} ms more");
    }
    let too_long = recovered_after(half("pay", 4), 3_601);
    let not_seconds = immune_for(half("pay", 5), "soon");
    for m in [too_long, not_seconds] {
        let r = send(&mut client, m).await;
        assert_ne!(code(&r.entries[0].status), Code::Ok);
    }
    assert_eq!(server.broker().stats().unwrap().pending_transactions, 3);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_producer_connected_checks_count_until_the_half_message_is_discarded() {
    let (broker, clock) = manual_broker();
    let (server, mut client) = start(broker, config()).await;
    let r = send(&mut client, half("pay", 1)).await;
    let tx_id = r.entries[0].transaction_id.clone();
    // The first check after 6 s, then one a minute: 15 checks, none answered.
    clock.advance_ms(6_000);
    server.broker().tick().unwrap();
    assert_eq!(server.broker().stats().unwrap().pending_transactions, 1);
    for _ in 0..15 {
        clock.advance_ms(60_000);
        server.broker().tick().unwrap();
    }
    assert_eq!(server.broker().stats().unwrap().pending_transactions, 0);
    let discarded = stored(server.broker(), "RMQ_SYS_TRANS_CHECK_MAX_TOPIC");
    assert_eq!(discarded.len(), 1);
    assert_eq!(discarded[0].msg_id, message_id(1));
    // A producer answering now is too late: OK, and nothing is delivered.
    assert_eq!(
        end(
            &mut client,
            "pay",
            1,
            &tx_id,
            true,
            TransactionSource::SourceServerCheck
        )
        .await,
        Code::Ok
    );
    assert!(stored(server.broker(), "pay").is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_ids_that_name_no_half_message_are_refused() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let r = send(&mut client, half("pay", 1)).await;
    let real = r.entries[0].transaction_id.clone();
    let forged = format!("{}{:016x}", &real[..16], 4242);
    for bad in [
        forged.as_str(),
        "0000000000000009ffffffffffffffff",
        "tx-1",
        "zz",
    ] {
        assert_eq!(
            end(
                &mut client,
                "pay",
                1,
                bad,
                true,
                TransactionSource::SourceClient
            )
            .await,
            Code::InvalidTransactionId,
            "{bad:?}"
        );
    }
    assert!(
        stored(server.broker(), "pay").is_empty(),
        "nothing committed"
    );
    assert_eq!(server.broker().stats().unwrap().pending_transactions, 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_messages_survive_a_restart_and_resolve_by_their_id() {
    let dir = tempfile::tempdir().unwrap();
    let tx_id = {
        let broker = Broker::open(BrokerConfig::at(dir.path())).unwrap();
        let (server, mut client) = start(broker, config()).await;
        let r = send(&mut client, half("pay", 1)).await;
        server.shutdown().await.unwrap();
        r.entries[0].transaction_id.clone()
    };
    let broker = Broker::open(BrokerConfig::at(dir.path())).unwrap();
    let (server, mut client) = start(broker, config()).await;
    assert_eq!(
        end(
            &mut client,
            "pay",
            1,
            &tx_id,
            true,
            TransactionSource::SourceClient
        )
        .await,
        Code::Ok
    );
    let got = stored(server.broker(), "pay");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].msg_id, message_id(1));
    server.shutdown().await.unwrap();
}

/// A producer of `topic` as client `id`, its Telemetry stream open and registered
/// (the server answers the settings once it has registered them: only then is the
/// producer one a check can ask); the stream's commands (the sender half is kept
/// so the stream stays open).
async fn producer_stream(
    client: &mut Client,
    id: &str,
    topic: &str,
) -> (
    tokio::sync::mpsc::Sender<TelemetryCommand>,
    tonic::Streaming<TelemetryCommand>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut inbound = client
        .telemetry(req_as(id, ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    tx.send(TelemetryCommand {
        status: None,
        command: Some(Command::Settings(Settings {
            client_type: Some(ClientType::Producer as i32),
            pub_sub: Some(PubSub::Publishing(Publishing {
                topics: vec![resource(topic)],
                max_body_size: 0,
                validate_message_type: true,
            })),
            ..Settings::default()
        })),
    })
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .expect("a settings reply within 10 s")
        .unwrap()
        .expect("the stream stays open");
    assert!(matches!(reply.command, Some(Command::Settings(_))));
    (tx, inbound)
}

/// The message id of the next check-back to reach `inbound` within `wait`.
async fn check_back(
    inbound: &mut tonic::Streaming<TelemetryCommand>,
    wait: Duration,
) -> Option<String> {
    tokio::time::timeout(wait, async {
        loop {
            match inbound.message().await {
                Ok(Some(TelemetryCommand {
                    command: Some(Command::RecoverOrphanedTransactionCommand(r)),
                    ..
                })) => return r.message?.system_properties?.message_id.into(),
                Ok(Some(_)) => {}
                _ => std::future::pending::<()>().await,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Whether a check-back reaches `inbound` within `wait`.
async fn checked(inbound: &mut tonic::Streaming<TelemetryCommand>, wait: Duration) -> bool {
    tokio::time::timeout(wait, async {
        loop {
            match inbound.message().await {
                Ok(Some(c)) => {
                    if matches!(
                        c.command,
                        Some(Command::RecoverOrphanedTransactionCommand(_))
                    ) {
                        return;
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        }
    })
    .await
    .is_ok()
}

/// Check-backs go to the producer that sent the half message while it is connected:
/// another producer of the topic (another group, or one without a checker) would
/// only guess or drop them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_backs_go_to_the_sender_first() {
    let (broker, clock) = manual_broker();
    let (server, mut client) = start(broker, config()).await;
    let (_a, mut from_a) = producer_stream(&mut client, "producer-a", "pay").await;
    let (_b, mut from_b) = producer_stream(&mut client, "producer-b", "pay").await;
    let r = client
        .send_message(req_as(
            "producer-a",
            SendMessageRequest {
                messages: vec![half("pay", 1)],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    clock.advance_ms(7_000);
    for round in 0..4 {
        server.broker().tick().unwrap();
        assert!(
            checked(&mut from_a, Duration::from_secs(5)).await,
            "round {round}: the sender is asked"
        );
        assert!(
            !checked(&mut from_b, Duration::from_millis(200)).await,
            "round {round}: the other producer is not"
        );
        clock.advance_ms(60_000);
    }
    server.shutdown().await.unwrap();
}
