//! A server on 127.0.0.1:0 over an in-memory broker, and a tonic client for it.
#![allow(dead_code)] // each test file uses a part

use std::net::SocketAddr;
use std::time::Duration;

use pocketmq::{Broker, BrokerConfig, ConsumerConfig, ManualClock, MessageExt};
use pocketmq_server::proto::messaging_service_client::MessagingServiceClient;
use pocketmq_server::proto::*;
use pocketmq_server::{serve, ServeConfig, ServerHandle};
use tonic::transport::Channel;
use tonic::Request;

pub type Client = MessagingServiceClient<Channel>;

pub const CLIENT_ID: &str = "testhost@4242@0@abc123";

pub fn config() -> ServeConfig {
    ServeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServeConfig::default()
    }
}

pub async fn start(broker: Broker, cfg: ServeConfig) -> (ServerHandle, Client) {
    let server = serve(broker, cfg).await.expect("the server starts");
    let client = connect(server.local_addr()).await;
    (server, client)
}

pub async fn connect(addr: SocketAddr) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("the client connects");
    MessagingServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// A request with the headers every official client sends.
pub fn req<T>(msg: T) -> Request<T> {
    req_as(CLIENT_ID, msg)
}

pub fn req_as<T>(client_id: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    let md = r.metadata_mut();
    md.insert("x-mq-client-id", client_id.parse().unwrap());
    md.insert("x-mq-language", "RUST".parse().unwrap());
    md.insert("x-mq-protocol", "v2".parse().unwrap());
    md.insert("x-mq-client-version", "test".parse().unwrap());
    md.insert("x-mq-date-time", "20261201T120000Z".parse().unwrap());
    r
}

pub fn resource(name: &str) -> Resource {
    Resource {
        resource_namespace: String::new(),
        name: name.to_string(),
    }
}

pub fn endpoints(addr: SocketAddr) -> Endpoints {
    Endpoints {
        scheme: AddressScheme::IPv4 as i32,
        addresses: vec![Address {
            host: addr.ip().to_string(),
            port: addr.port() as i32,
        }],
    }
}

/// A message as the Python and Node producers build it.
pub fn message(topic: &str, body: &[u8], id: &str) -> Message {
    Message {
        topic: Some(resource(topic)),
        user_properties: Default::default(),
        system_properties: Some(SystemProperties {
            message_id: id.to_string(),
            body_encoding: Encoding::Identity as i32,
            message_type: MessageType::Normal as i32,
            born_host: "testhost".into(),
            born_timestamp: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..SystemProperties::default()
        }),
        body: body.to_vec(),
    }
}

/// A 34-hex message id like the clients make (version byte 01).
pub fn message_id(n: u32) -> String {
    format!("01{:032X}", n)
}

pub async fn send(client: &mut Client, m: Message) -> SendMessageResponse {
    client
        .send_message(req(SendMessageRequest { messages: vec![m] }))
        .await
        .expect("gRPC OK")
        .into_inner()
}

pub fn code(s: &Option<Status>) -> Code {
    Code::try_from(s.as_ref().expect("a status").code).expect("a known code")
}

/// Everything stored in `topic`, read with a fresh consumer group.
pub fn stored(broker: &Broker, topic: &str) -> Vec<MessageExt> {
    if broker.topic(topic).unwrap().is_none() {
        return Vec::new();
    }
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let group = format!(
        "check-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let c = broker.consumer(ConsumerConfig::new(group, topic)).unwrap();
    let mut all = Vec::new();
    loop {
        let got = c.receive(64, Duration::from_millis(50)).unwrap();
        if got.is_empty() {
            break;
        }
        c.ack_all(&got).unwrap();
        all.extend(got);
    }
    c.close().unwrap();
    all
}

/// Messages the store holds in `topic` (all queues).
pub fn count(broker: &Broker, topic: &str) -> u64 {
    broker
        .stats()
        .unwrap()
        .topics
        .get(topic)
        .map(|t| t.queues.iter().map(|q| q.max_offset - q.min_offset).sum())
        .unwrap_or(0)
}

/// A memory broker on a manual clock (2027-01-15), and the clock.
pub fn manual_broker() -> (Broker, ManualClock) {
    let clock = ManualClock::new(1_800_000_000_000);
    let broker = Broker::open(BrokerConfig {
        clock: std::sync::Arc::new(clock.clone()),
        ..BrokerConfig::default()
    })
    .unwrap();
    (broker, clock)
}
