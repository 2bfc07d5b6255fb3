//! TLS (the Java client's default): a server with a certificate serves clients that
//! trust its CA, and refuses plaintext on the same port.
//!
//! `data/` holds a test CA and a server certificate for localhost / 127.0.0.1 (valid
//! for 100 years; the CA's key was not kept). Never use them outside tests.

mod common;

use common::*;
use pocketmq::Broker;
use pocketmq_server::proto::messaging_service_client::MessagingServiceClient;
use pocketmq_server::proto::*;
use pocketmq_server::TlsConfig;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_are_served_and_plaintext_is_not() {
    let mut cfg = config();
    cfg.tls = Some(TlsConfig {
        cert_pem: include_bytes!("data/server.pem").to_vec(),
        key_pem: include_bytes!("data/server.key").to_vec(),
    });
    let server = pocketmq_server::serve(Broker::memory(), cfg).await.unwrap();
    let port = server.local_addr().port();

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(include_bytes!("data/ca.pem")))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection");
    let mut client = MessagingServiceClient::new(channel);
    let r = send(&mut client, message("secure", b"over tls", &message_id(1))).await;
    assert_eq!(code(&r.status), Code::Ok);
    assert_eq!(count(server.broker(), "secure"), 1);

    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        let mut c = MessagingServiceClient::new(ch);
        let out = c
            .send_message(req(SendMessageRequest {
                messages: vec![message("secure", b"plain", &message_id(2))],
            }))
            .await;
        assert!(out.is_err(), "plaintext must not be served on a TLS port");
    }
    assert_eq!(count(server.broker(), "secure"), 1);
    server.shutdown().await.unwrap();
}
