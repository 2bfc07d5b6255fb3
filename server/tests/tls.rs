//! TLS (the Java client's default) and plaintext (the Python and Node clients') on
//! one port, as Apache's proxy serves them: a server with a certificate serves
//! clients that trust its CA, and plaintext clients beside them.
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
async fn tls_and_plaintext_clients_are_served_on_one_port() {
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
    let mut secure = MessagingServiceClient::new(channel);
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("a plaintext connection");
    let mut plain = MessagingServiceClient::new(plain);
    for i in 0..3 {
        let r = send(
            &mut secure,
            message("mixed", b"over tls", &message_id(2 * i)),
        )
        .await;
        assert_eq!(code(&r.status), Code::Ok);
        let r = send(
            &mut plain,
            message("mixed", b"plain", &message_id(2 * i + 1)),
        )
        .await;
        assert_eq!(code(&r.status), Code::Ok);
    }
    assert_eq!(count(server.broker(), "mixed"), 6);
    server.shutdown().await.unwrap();
}

/// A client that trusts no CA of ours cannot take the server's certificate for
/// another's: without `--tls-cert`, the server makes one at start (signed by itself,
/// as Apache's test mode does), which such a client refuses, while plaintext is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_tls_uses_one_made_at_start() {
    let server = pocketmq_server::serve(Broker::memory(), config())
        .await
        .unwrap();
    let port = server.local_addr().port();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(include_bytes!("data/ca.pem")))
        .domain_name("localhost");
    let verified = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await;
    match verified {
        Err(_) => {}
        Ok(ch) => {
            let r = MessagingServiceClient::new(ch)
                .send_message(req(SendMessageRequest {
                    messages: vec![message("made", b"x", &message_id(1))],
                }))
                .await;
            assert!(r.is_err(), "the made certificate is not our test CA's");
        }
    }
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let r = send(
        &mut MessagingServiceClient::new(plain),
        message("made", b"plain", &message_id(2)),
    )
    .await;
    assert_eq!(code(&r.status), Code::Ok);
    server.shutdown().await.unwrap();
}
