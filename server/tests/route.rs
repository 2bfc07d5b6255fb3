//! QueryRoute and QueryAssignment: the shapes the clients select queues from.

mod common;

use common::*;
use pocketmq::{Broker, BrokerConfig};
use pocketmq_server::proto::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_name_every_queue_read_write_with_all_message_types() {
    let broker = Broker::memory();
    broker.create_topic("orders", 8).unwrap();
    let (server, mut client) = start(broker, config()).await;
    // The endpoints the client asked through come back (no --advertise).
    let asked = Endpoints {
        scheme: AddressScheme::DomainName as i32,
        addresses: vec![Address {
            host: "mq.local".into(),
            port: 18081,
        }],
    };
    let r = client
        .query_route(req(QueryRouteRequest {
            topic: Some(resource("orders")),
            endpoints: Some(asked.clone()),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    assert_eq!(r.message_queues.len(), 8);
    for (i, q) in r.message_queues.iter().enumerate() {
        assert_eq!(q.id, i as i32);
        assert_eq!(q.topic, Some(resource("orders")));
        assert_eq!(q.permission, Permission::ReadWrite as i32);
        let b = q.broker.as_ref().unwrap();
        // Clients only use broker id 0 (the master).
        assert_eq!(b.id, 0);
        assert_eq!(b.endpoints.as_ref(), Some(&asked));
        assert_eq!(
            q.accept_message_types,
            vec![
                MessageType::Normal as i32,
                MessageType::Fifo as i32,
                MessageType::Delay as i32,
                MessageType::Transaction as i32
            ]
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_route_when_topics_are_created_on_send() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let r = client
        .query_route(req(QueryRouteRequest {
            topic: Some(resource("fresh")),
            endpoints: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    assert_eq!(r.message_queues.len(), 4);
    assert_eq!(r.message_queues[0].id, 0);
    // No endpoints asked, none advertised: the listening address.
    let e = r.message_queues[0]
        .broker
        .as_ref()
        .unwrap()
        .endpoints
        .clone()
        .unwrap();
    assert_eq!(e, endpoints(server.local_addr()));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertised_endpoints_win_and_unknown_topics_are_not_found_without_auto_create() {
    let broker = Broker::open(BrokerConfig {
        auto_create_topics: false,
        ..BrokerConfig::default()
    })
    .unwrap();
    let mut cfg = config();
    cfg.auto_create_topics = false;
    cfg.advertise = Some("mq.example.internal:9876".into());
    broker.create_topic("known", 2).unwrap();
    let (server, mut client) = start(broker, cfg).await;
    let r = client
        .query_route(req(QueryRouteRequest {
            topic: Some(resource("missing")),
            endpoints: Some(endpoints(server.local_addr())),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::TopicNotFound);
    assert!(r.message_queues.is_empty());
    let r = client
        .query_route(req(QueryRouteRequest {
            topic: Some(resource("known")),
            endpoints: Some(endpoints(server.local_addr())),
        }))
        .await
        .unwrap()
        .into_inner();
    let e = r.message_queues[0]
        .broker
        .as_ref()
        .unwrap()
        .endpoints
        .clone()
        .unwrap();
    assert_eq!(e.addresses[0].host, "mq.example.internal");
    assert_eq!(e.addresses[0].port, 9876);
    assert_eq!(e.scheme, AddressScheme::DomainName as i32);
    // A send to a missing topic is refused the same way, and stores nothing.
    let r = send(&mut client, message("missing", b"x", &message_id(1))).await;
    assert_eq!(code(&r.status), Code::TopicNotFound);
    assert!(server
        .broker()
        .topics()
        .unwrap()
        .iter()
        .all(|t| t.name != "missing"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_topics_and_groups_get_their_codes() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    for name in ["", "has space", "%RETRY%x/y", "RMQ_SYS_TRANS_HALF_TOPIC"] {
        let r = client
            .query_route(req(QueryRouteRequest {
                topic: Some(resource(name)),
                endpoints: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(&r.status), Code::IllegalTopic, "{name:?}");
    }
    let r = client
        .query_assignment(req(QueryAssignmentRequest {
            topic: Some(resource("orders")),
            group: Some(resource("bad group")),
            endpoints: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::IllegalConsumerGroup);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignments_are_one_queue_over_the_whole_topic() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let asked = endpoints(server.local_addr());
    let r = client
        .query_assignment(req(QueryAssignmentRequest {
            topic: Some(resource("orders")),
            group: Some(resource("sms")),
            endpoints: Some(asked.clone()),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    assert_eq!(r.assignments.len(), 1);
    let q = r.assignments[0].message_queue.as_ref().unwrap();
    assert_eq!(q.id, -1);
    assert_eq!(q.permission, Permission::ReadWrite as i32);
    assert_eq!(q.broker.as_ref().unwrap().endpoints.as_ref(), Some(&asked));
    server.shutdown().await.unwrap();
}
