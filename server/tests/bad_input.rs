//! Bad input over the wire: each answered with the protocol's code, nothing stored,
//! and the server keeps serving.

mod common;

use common::*;
use pocketmq::Broker;
use pocketmq_server::proto::*;
use pocketmq_server::{authorization, Credentials};

/// Sends `m`, expects `want`, then checks the server still stores a good message.
async fn refused(
    client: &mut Client,
    server: &pocketmq_server::ServerHandle,
    m: Message,
    want: Code,
) {
    let topic = m.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    let r = send(client, m).await;
    assert_eq!(code(&r.status), want, "{:?}", r.status);
    assert_eq!(code(&r.entries[0].status), want);
    if !topic.is_empty() {
        assert_eq!(
            count(server.broker(), &topic),
            0,
            "nothing stored for {want:?}"
        );
    }
    let ok = send(client, message("good", b"fine", &message_id(9))).await;
    assert_eq!(
        code(&ok.status),
        Code::Ok,
        "the server keeps serving after {want:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_message_gets_its_code_and_stores_nothing() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let max = 4 * 1024 * 1024;

    refused(
        &mut client,
        &server,
        message("", b"x", &message_id(1)),
        Code::IllegalTopic,
    )
    .await;
    refused(
        &mut client,
        &server,
        message("bad topic", b"x", &message_id(1)),
        Code::IllegalTopic,
    )
    .await;
    refused(
        &mut client,
        &server,
        message("t-empty", b"", &message_id(1)),
        Code::MessageBodyEmpty,
    )
    .await;
    refused(
        &mut client,
        &server,
        message("t-large", &vec![7u8; max + 1], &message_id(1)),
        Code::MessageBodyTooLarge,
    )
    .await;

    let mut m = message("t-tag", b"x", &message_id(1));
    m.system_properties.as_mut().unwrap().tag = Some("a||b".into());
    refused(&mut client, &server, m, Code::IllegalMessageTag).await;

    let mut m = message("t-key", b"x", &message_id(1));
    m.system_properties.as_mut().unwrap().keys = vec![" ".into()];
    refused(&mut client, &server, m, Code::IllegalMessageKey).await;

    let mut m = message("t-group", b"x", &message_id(1));
    m.system_properties.as_mut().unwrap().message_group = Some(String::new());
    refused(&mut client, &server, m, Code::IllegalMessageGroup).await;

    let mut m = message("t-prop", b"x", &message_id(1));
    m.user_properties.insert("DELAY".into(), "3".into());
    refused(&mut client, &server, m, Code::IllegalMessagePropertyKey).await;

    let mut m = message("t-late", b"x", &message_id(1));
    let far = server.broker().clock().now_ms() / 1000 + 31 * 24 * 3600;
    m.system_properties.as_mut().unwrap().delivery_timestamp = Some(prost_types::Timestamp {
        seconds: far as i64,
        nanos: 0,
    });
    refused(&mut client, &server, m, Code::IllegalDeliveryTime).await;

    let mut m = message("t-type", b"x", &message_id(1));
    m.system_properties.as_mut().unwrap().message_type = MessageType::Fifo as i32;
    refused(
        &mut client,
        &server,
        m,
        Code::MessagePropertyConflictWithType,
    )
    .await;

    let r = client
        .send_message(req(SendMessageRequest { messages: vec![] }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::BadRequest);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_beyond_the_grpc_limit_is_refused_by_the_transport() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let huge = message("t-huge", &vec![1u8; 6 * 1024 * 1024], &message_id(1));
    let err = client
        .send_message(req(SendMessageRequest {
            messages: vec![huge],
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert_eq!(count(server.broker(), "t-huge"), 0);
    let ok = send(&mut client, message("good", b"fine", &message_id(2))).await;
    assert_eq!(code(&ok.status), Code::Ok);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_client_id_is_refused() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let r = client
        .send_message(tonic::Request::new(SendMessageRequest {
            messages: vec![message("t", b"x", &message_id(1))],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::ClientIdRequired);
    assert_eq!(count(server.broker(), "t"), 0);
    server.shutdown().await.unwrap();
}

fn signed<T>(msg: T, ak: &str, sk: &str) -> tonic::Request<T> {
    let mut r = req(msg);
    let date = "20261201T120000Z";
    r.metadata_mut().insert(
        "authorization",
        authorization(ak, sk, date).parse().unwrap(),
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_on_every_call() {
    let mut cfg = config();
    cfg.credentials = Some(Credentials {
        access_key: "app".into(),
        secret_key: "s3cret".into(),
    });
    let (server, mut client) = start(Broker::memory(), cfg).await;
    let body = || SendMessageRequest {
        messages: vec![message("secure", b"x", &message_id(1))],
    };
    // No header, a wrong secret, an unknown key, the Python client's empty credentials.
    let mut unsigned = req(body());
    unsigned.metadata_mut().remove("authorization");
    let python_empty = {
        let mut r = req(body());
        r.metadata_mut().insert(
            "authorization",
            "MQv2-HMAC-SHA1 Credential=, SignedHeaders=x-mq-date-time, Signature=00"
                .parse()
                .unwrap(),
        );
        r
    };
    for r in [
        unsigned,
        signed(body(), "app", "wrong"),
        signed(body(), "other", "s3cret"),
        python_empty,
    ] {
        let out = client.send_message(r).await.unwrap().into_inner();
        assert_eq!(code(&out.status), Code::Unauthorized);
    }
    assert_eq!(count(server.broker(), "secure"), 0);
    let route = client
        .query_route(signed(
            QueryRouteRequest {
                topic: Some(resource("secure")),
                endpoints: None,
            },
            "app",
            "wrong",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&route.status), Code::Unauthorized);
    // A refused Telemetry stream says why, then ends.
    let (_tx, rx) = tokio::sync::mpsc::channel::<TelemetryCommand>(1);
    let mut stream = client
        .telemetry(signed(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            "app",
            "wrong",
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(code(&first.status), Code::Unauthorized);
    assert!(stream.message().await.unwrap().is_none());

    let ok = client
        .send_message(signed(body(), "app", "s3cret"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&ok.status), Code::Ok);
    assert_eq!(count(server.broker(), "secure"), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_the_cap_are_told_to_back_off() {
    let mut cfg = config();
    cfg.limits.max_clients = 2;
    let (server, mut client) = start(Broker::memory(), cfg).await;
    let hb = |id: &str| {
        req_as(
            id,
            HeartbeatRequest {
                group: None,
                client_type: ClientType::Producer as i32,
            },
        )
    };
    assert_eq!(
        code(&client.heartbeat(hb("a")).await.unwrap().into_inner().status),
        Code::Ok
    );
    assert_eq!(
        code(&client.heartbeat(hb("b")).await.unwrap().into_inner().status),
        Code::Ok
    );
    assert_eq!(
        code(&client.heartbeat(hb("c")).await.unwrap().into_inner().status),
        Code::TooManyRequests
    );
    // A known client still gets through; one leaving makes room.
    assert_eq!(
        code(&client.heartbeat(hb("a")).await.unwrap().into_inner().status),
        Code::Ok
    );
    let bye = client
        .notify_client_termination(req_as("b", NotifyClientTerminationRequest { group: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&bye.status), Code::Ok);
    assert_eq!(
        code(&client.heartbeat(hb("c")).await.unwrap().into_inner().status),
        Code::Ok
    );
    server.shutdown().await.unwrap();
}
