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
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};
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

    let mut secure = tls_client(port).await.expect("a TLS connection");
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

/// Without `--tls-cert`, the server makes a certificate at start (signed by itself, as
/// Apache's test mode does): a client that accepts any certificate, as the Java client
/// does, completes a handshake and is offered HTTP/2; one that checks against our test
/// CA refuses it; plaintext is served beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_tls_uses_one_made_at_start() {
    let server = pocketmq_server::serve(Broker::memory(), config())
        .await
        .unwrap();
    let port = server.local_addr().port();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake with the made certificate");
    let (_, session) = tls.get_ref();
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(session.peer_certificates().map(<[_]>::len), Some(1));

    assert!(
        tls_client(port).await.is_err(),
        "the made certificate is not our test CA's"
    );
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

/// A client trusting our test CA, for `localhost`; an error when the server's
/// certificate is not that CA's.
async fn tls_client(port: u16) -> Result<MessagingServiceClient<Channel>, tonic::Status> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(include_bytes!("data/ca.pem")))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = MessagingServiceClient::new(channel);
    // A lazy handshake fails on the first call.
    client
        .query_route(req(QueryRouteRequest {
            topic: Some(resource("probe")),
            endpoints: None,
        }))
        .await?;
    Ok(client)
}

/// Accepts any certificate whose handshake signature holds (the Java client's trust).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
