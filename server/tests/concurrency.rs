//! Many clients at once: producers sending and consumers of one group receiving,
//! acking (one by one, in batches, after extending the invisibility) on their own
//! connections, all concurrently, with the broker's clock standing still so that no
//! delivery expires. Every message must then be delivered exactly once and every
//! ack taken; in a FIFO group, each message group's messages come in send order,
//! the next only after the previous one's ack.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pocketmq_server::proto::receive_message_response::Content;
use pocketmq_server::proto::*;
use pocketmq_server::GroupConfig;

const PRODUCERS: u32 = 4;
const PER_PRODUCER: u32 = 200;
const CONSUMERS: usize = 4;
/// Message groups per producer (FIFO runs).
const KEYS: u32 = 3;

/// What happened, in one order for all clients.
#[derive(Default)]
struct Log {
    clock: AtomicU64,
    /// Per message: the deliveries (event, client) and the ack's event.
    delivered: Mutex<HashMap<String, Vec<(u64, usize)>>>,
    acked: Mutex<HashMap<String, u64>>,
    done: AtomicUsize,
}

impl Log {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }
}

/// A tiny deterministic generator per client (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn sys(m: &Message) -> &SystemProperties {
    m.system_properties.as_ref().unwrap()
}

async fn receive(client: &mut Client, who: usize, batch: i32) -> Vec<Message> {
    let mut r = req_as(
        &format!("consumer@{who}@0@c{who}"),
        ReceiveMessageRequest {
            group: Some(resource("g")),
            message_queue: Some(MessageQueue {
                topic: Some(resource("t")),
                ..MessageQueue::default()
            }),
            filter_expression: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".into(),
            }),
            batch_size: batch,
            invisible_duration: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            auto_renew: false,
            long_polling_timeout: Some(prost_types::Duration {
                seconds: 0,
                nanos: 300_000_000,
            }),
            attempt_id: None,
        },
    );
    r.set_timeout(Duration::from_secs(5));
    let mut stream = client.receive_message(r).await.unwrap().into_inner();
    let mut msgs = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        if let Some(Content::Message(m)) = item.content {
            msgs.push(m);
        }
    }
    msgs
}

async fn ack(client: &mut Client, who: usize, entries: Vec<(String, String)>) {
    let n = entries.len();
    let r = client
        .ack_message(req_as(
            &format!("consumer@{who}@0@c{who}"),
            AckMessageRequest {
                group: Some(resource("g")),
                topic: Some(resource("t")),
                entries: entries
                    .into_iter()
                    .map(|(id, h)| AckMessageEntry {
                        message_id: id,
                        receipt_handle: h,
                        lite_topic: None,
                    })
                    .collect(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.entries.len(), n);
    for e in &r.entries {
        assert_eq!(code(&e.status), Code::Ok, "the ack of {}", e.message_id);
    }
}

async fn consume(mut client: Client, who: usize, log: Arc<Log>, total: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (who as u64 + 1));
    let mut later: Vec<(String, String)> = Vec::new();
    while log.done.load(Ordering::SeqCst) < total {
        let got = receive(&mut client, who, 1 + rng.below(8) as i32).await;
        for m in &got {
            let at = log.tick();
            log.delivered
                .lock()
                .unwrap()
                .entry(sys(m).message_id.clone())
                .or_default()
                .push((at, who));
        }
        for m in got {
            let id = sys(&m).message_id.clone();
            let mut handle = sys(&m).receipt_handle.clone().unwrap();
            match rng.below(10) {
                0 => {
                    // Extend first, then ack by the new handle.
                    let r = client
                        .change_invisible_duration(req_as(
                            &format!("consumer@{who}@0@c{who}"),
                            ChangeInvisibleDurationRequest {
                                group: Some(resource("g")),
                                topic: Some(resource("t")),
                                receipt_handle: handle.clone(),
                                invisible_duration: Some(prost_types::Duration {
                                    seconds: 120,
                                    nanos: 0,
                                }),
                                message_id: id.clone(),
                                lite_topic: None,
                                suspend: None,
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner();
                    assert_eq!(code(&r.status), Code::Ok, "the change of {id}");
                    handle = r.receipt_handle;
                    later.push((id, handle));
                }
                1..=3 => later.push((id, handle)),
                _ => {
                    log.acked.lock().unwrap().insert(id.clone(), log.tick());
                    ack(&mut client, who, vec![(id, handle)]).await;
                    log.done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        // The held ones go as one batch, now and then (or when nothing came).
        if !later.is_empty()
            && (rng.below(3) == 0 || log.done.load(Ordering::SeqCst) + later.len() >= total)
        {
            let batch = std::mem::take(&mut later);
            {
                let mut acked = log.acked.lock().unwrap();
                for (id, _) in &batch {
                    acked.insert(id.clone(), log.tick());
                }
            }
            let n = batch.len();
            ack(&mut client, who, batch).await;
            log.done.fetch_add(n, Ordering::SeqCst);
        }
    }
    assert!(later.is_empty());
}

/// Runs the producers and consumers, on a memory store or (`synced`) on a file
/// store under `flush = sync`, whose engine calls the server runs on its blocking
/// pool; returns the log and the send order of each message group (FIFO runs).
async fn run(fifo: bool, synced: bool) -> (Arc<Log>, HashMap<String, Vec<String>>) {
    let mut cfg = config();
    cfg.limits.long_polling_min = Duration::ZERO;
    cfg.groups.insert(
        "g".into(),
        GroupConfig {
            fifo,
            max_reconsume_times: 16,
        },
    );
    // A clock that stands still: nothing expires, so nothing may come twice.
    let dir = tempfile::tempdir().unwrap();
    let (broker, _clock) = if synced {
        let clock = pocketmq::ManualClock::new(1_800_000_000_000);
        cfg.flush = pocketmq::FlushMode::Sync;
        let broker = pocketmq::Broker::open(pocketmq::BrokerConfig {
            path: Some(dir.path().to_path_buf()),
            flush: pocketmq::FlushMode::Sync,
            clock: Arc::new(clock.clone()),
            ..pocketmq::BrokerConfig::default()
        })
        .unwrap();
        (broker, clock)
    } else {
        manual_broker()
    };
    broker.create_topic("t", 4).unwrap();
    let (server, _) = start(broker, cfg).await;
    let addr = server.local_addr();
    let total = (PRODUCERS * PER_PRODUCER) as usize;
    let log = Arc::new(Log::default());
    let mut tasks = Vec::new();
    for who in 0..CONSUMERS {
        let client = connect(addr).await;
        tasks.push(tokio::spawn(consume(client, who, log.clone(), total)));
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let mut client = connect(addr).await;
        producers.push(tokio::spawn(async move {
            let mut order: HashMap<String, Vec<String>> = HashMap::new();
            for i in 0..PER_PRODUCER {
                let n = p * PER_PRODUCER + i;
                let mut m = message("t", format!("m{n}").as_bytes(), &message_id(n));
                if fifo {
                    let key = format!("p{p}-k{}", i % KEYS);
                    let sys = m.system_properties.as_mut().unwrap();
                    sys.message_type = MessageType::Fifo as i32;
                    sys.message_group = Some(key.clone());
                    order.entry(key).or_default().push(message_id(n));
                }
                let r = client
                    .send_message(req_as(
                        &format!("producer@{p}@0@p{p}"),
                        SendMessageRequest { messages: vec![m] },
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(code(&r.status), Code::Ok);
            }
            order
        }));
    }
    let mut order = HashMap::new();
    for p in producers {
        order.extend(p.await.unwrap());
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("everything acked within a minute")
            .unwrap();
    }
    // Nothing is left, and nothing comes again.
    let mut client = connect(addr).await;
    assert!(receive(&mut client, 99, 32).await.is_empty());
    assert_eq!(server.broker().lag("g", "t").unwrap(), 0);
    server.shutdown().await.unwrap();
    (log, order)
}

fn check_exactly_once(log: &Log) {
    let delivered = log.delivered.lock().unwrap();
    let total = (PRODUCERS * PER_PRODUCER) as usize;
    assert_eq!(delivered.len(), total, "every message delivered");
    for (id, ds) in delivered.iter() {
        assert_eq!(ds.len(), 1, "{id} delivered {} times: {ds:?}", ds.len());
    }
    assert_eq!(log.acked.lock().unwrap().len(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_each_message_exactly_once() {
    let (log, _) = run(false, false).await;
    check_exactly_once(&log);
    // The work was shared.
    let delivered = log.delivered.lock().unwrap();
    for who in 0..CONSUMERS {
        assert!(
            delivered
                .values()
                .any(|ds| ds.iter().any(|(_, c)| *c == who)),
            "consumer {who} got nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_of_a_fifo_group_keep_each_message_group_in_order() {
    let (log, order) = run(true, false).await;
    check_exactly_once(&log);
    let delivered = log.delivered.lock().unwrap();
    let acked = log.acked.lock().unwrap();
    assert_eq!(order.len(), (PRODUCERS * KEYS) as usize);
    for (key, ids) in &order {
        for pair in ids.windows(2) {
            let (prev, next) = (&pair[0], &pair[1]);
            let next_at = delivered[next][0].0;
            assert!(
                delivered[prev][0].0 < next_at,
                "{key}: {next} delivered before {prev}"
            );
            assert!(
                acked[prev] < next_at,
                "{key}: {next} delivered before {prev} was acked"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_a_synced_file_store_get_each_message_exactly_once() {
    let (log, _) = run(false, true).await;
    check_exactly_once(&log);
}
