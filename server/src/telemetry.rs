//! The Telemetry stream: one per client and endpoint, opened after the first route
//! names the endpoint, and never completed by the server while it runs (server-mode.md
//! §3.1). The client writes its Settings (at startup, every 5 minutes, on every
//! reopen) and most clients block until the answer: the merged settings of
//! `settings.rs`, or a status-only reply that refuses the client. The server keeps
//! the stream's sender in the client registry: it is the only way to push commands
//! (transaction check-backs) to a client.
//!
//! For the Node client (and a client that names no language) the first reply on a
//! stream is repeated 0.3, 1 and 3 s later. The Node client installs its listener
//! for the reply only after fetching the routes of all its topics, while the stream
//! is opened (and the settings sent) after the first route: a prompt reply can come
//! in between and be lost, leaving its `startup()` waiting forever. Other clients
//! get the reply once: a repeat is harmless to them but noisy (the Rust client logs
//! every settings command it did not ask for as an error).
//!
//! A reader task per stream handles what the client writes; the stream ends when the
//! client closes its side, when it fails, or when the server shuts down. The server's
//! side ends with the reader: what is queued still goes out, then the end (status OK)
//! at once, which the Java client's `close()` waits for. Nothing else holds a sender
//! for long: the repeats stop with the reader, a check-back pushes without waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::client::Caller;
use crate::proto::settings::PubSub;
use crate::proto::telemetry_command::Command;
use crate::proto::TelemetryCommand;
use crate::resource;
use crate::service::Shared;
use crate::settings;
use crate::status::{self, Refusal};

/// Commands waiting for a slow client before pushes start to wait.
const OUTBOUND_CAPACITY: usize = 64;

/// When the first settings reply on a stream is sent again (see the module docs).
const REPEATS_MS: [u64; 3] = [300, 1000, 3000];

pub(crate) type TelemetryStream = ReceiverStream<Result<TelemetryCommand, tonic::Status>>;

/// A stream that says only why the client is refused, then ends.
pub(crate) fn refused(r: &Refusal) -> TelemetryStream {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(TelemetryCommand {
        status: Some(r.to_status()),
        command: None,
    }));
    ReceiverStream::new(rx)
}

/// Opens a client's stream: registers its sender and starts the reader.
pub(crate) fn open(
    shared: Arc<Shared>,
    caller: Caller,
    inbound: Streaming<TelemetryCommand>,
) -> TelemetryStream {
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let id = shared.clients.next_stream();
    if let Ok(mut s) = caller.client.session.lock() {
        s.telemetry = Some((id, tx.clone()));
    }
    shared
        .stats
        .telemetry_streams
        .fetch_add(1, Ordering::Relaxed);
    log::debug!(
        "client={} stream={id} event=telemetry_open",
        caller.client.id
    );
    tokio::spawn(read(shared, caller, inbound, tx, id));
    ReceiverStream::new(rx)
}

async fn read(
    shared: Arc<Shared>,
    caller: Caller,
    mut inbound: Streaming<TelemetryCommand>,
    tx: mpsc::Sender<Result<TelemetryCommand, tonic::Status>>,
    id: u64,
) {
    let mut shutdown = shared.shutdown.clone();
    // Dropped when the reader ends: the repeats stop then, so the stream can end.
    let (_reading, ended) = oneshot::channel::<()>();
    let mut ended = Some(ended);
    while !*shutdown.borrow() {
        let next = tokio::select! {
            m = inbound.message() => m,
            _ = shutdown.changed() => break,
        };
        match next {
            Ok(Some(cmd)) => {
                if let Some(reply) = handle(&shared, &caller, cmd) {
                    let settled = matches!(reply.command, Some(Command::Settings(_)))
                        && may_miss_the_reply(&caller.client.language, &reply);
                    if let Some(ended) = if settled { ended.take() } else { None } {
                        tokio::spawn(repeat(
                            reply.clone(),
                            tx.clone(),
                            shared.shutdown.clone(),
                            ended,
                        ));
                    }
                    if tx.send(Ok(reply)).await.is_err() {
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                log::debug!(
                    "client={} stream={id} event=telemetry_error code={:?} message={:?}",
                    caller.client.id,
                    e.code(),
                    e.message()
                );
                break;
            }
        }
    }
    if let Ok(mut s) = caller.client.session.lock() {
        if matches!(&s.telemetry, Some((current, _)) if *current == id) {
            s.telemetry = None;
        }
    }
    shared
        .stats
        .telemetry_streams
        .fetch_sub(1, Ordering::Relaxed);
    log::debug!(
        "client={} stream={id} event=telemetry_closed",
        caller.client.id
    );
}

/// Whether a client may miss its first settings reply (see the module docs): the Node
/// client (its `x-mq-language` header says `HTTP`; its settings say NODE_JS), or one
/// that names no language.
fn may_miss_the_reply(header: &str, reply: &TelemetryCommand) -> bool {
    let named = match &reply.command {
        Some(Command::Settings(s)) => s.user_agent.as_ref().map(|ua| ua.language),
        _ => None,
    };
    let node = crate::proto::Language::NodeJs as i32;
    match (header.trim(), named) {
        (_, Some(l)) if l == node => true,
        (h, _) if h.eq_ignore_ascii_case("HTTP") || h.to_ascii_uppercase().contains("NODE") => true,
        ("", None | Some(0)) => true,
        _ => false,
    }
}

/// Sends the first settings reply again (see the module docs), until the stream's
/// reader (`ended`) or the server ends.
async fn repeat(
    reply: TelemetryCommand,
    tx: mpsc::Sender<Result<TelemetryCommand, tonic::Status>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut ended: oneshot::Receiver<()>,
) {
    let mut waited = 0;
    for at in REPEATS_MS {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(at - waited)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
            _ = &mut ended => return,
        }
        waited = at;
        if tx.send(Ok(reply.clone())).await.is_err() {
            return;
        }
    }
}

/// What the server answers to one command from the client, if anything.
fn handle(shared: &Shared, caller: &Caller, cmd: TelemetryCommand) -> Option<TelemetryCommand> {
    let client = &caller.client;
    match cmd.command {
        Some(Command::Settings(s)) => match settings::merge(&s, &shared.cfg) {
            Ok(merged) => {
                if let Ok(mut session) = client.session.lock() {
                    let kind = merged.client_type();
                    session.client_type = Some(kind);
                    match &merged.pub_sub {
                        Some(PubSub::Publishing(p)) => {
                            session.topics = p.topics.iter().map(resource::full_name).collect();
                        }
                        Some(PubSub::Subscription(sub)) => {
                            session.group = sub.group.as_ref().map(resource::full_name);
                        }
                        None => {}
                    }
                    session.settings = Some(merged.clone());
                    log::info!(
                        "client={} event=settings type={} topics={:?} group={:?}",
                        client.id,
                        kind.as_str_name(),
                        session.topics,
                        session.group
                    );
                }
                Some(TelemetryCommand {
                    status: Some(status::ok()),
                    command: Some(Command::Settings(merged)),
                })
            }
            Err(r) => {
                log::warn!(
                    "client={} event=settings_refused reason={:?}",
                    client.id,
                    r.message
                );
                Some(TelemetryCommand {
                    status: Some(r.to_status()),
                    command: None,
                })
            }
        },
        Some(Command::ThreadStackTrace(t)) => {
            log::debug!(
                "client={} event=thread_stack_trace nonce={}",
                client.id,
                t.nonce
            );
            None
        }
        Some(Command::VerifyMessageResult(v)) => {
            log::debug!(
                "client={} event=verify_message_result nonce={}",
                client.id,
                v.nonce
            );
            None
        }
        Some(other) => {
            log::debug!(
                "client={} event=unexpected_command command={other:?}",
                client.id
            );
            None
        }
        None => None,
    }
}
