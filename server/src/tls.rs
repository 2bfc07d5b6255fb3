//! TLS and plaintext on one port, as Apache's proxy serves them (its
//! `ProxyAndTlsProtocolNegotiator`): a connection whose first byte opens a TLS
//! handshake (a handshake record, 0x16) is served over TLS, any other over plaintext
//! HTTP/2 (whose preface starts with `P`). The certificate is the one given
//! (`--tls-cert`), or else one made at start and signed by itself, as Apache's
//! `tlsTestModeEnable` does: the official Java client speaks TLS unless told not to,
//! and accepts any certificate, while the Python and Node clients speak plaintext.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::config::TlsConfig;

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// How long a new connection may take to send its first byte and finish a handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handed to the server at most ahead of it.
const BACKLOG: usize = 256;

/// The server's TLS side: from the given PEM files, or a certificate made now.
pub(crate) fn acceptor(given: Option<&TlsConfig>) -> Result<TlsAcceptor, String> {
    let (certs, key) = match given {
        Some(t) => {
            let certs = CertificateDer::pem_slice_iter(&t.cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the certificate file: {e}"))?;
            if certs.is_empty() {
                return Err("the certificate file holds no certificate".into());
            }
            let key = PrivateKeyDer::from_pem_slice(&t.key_pem)
                .map_err(|e| format!("the key file: {e}"))?;
            (certs, key)
        }
        None => {
            let made = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ])
            .map_err(|e| format!("making a certificate: {e}"))?;
            let key =
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
            (vec![made.cert.der().clone()], key)
        }
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A connection, over TLS or not.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        let tcp = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        };
        tcp.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts connections on `listener` until `stopped`, each sorted into TLS or
/// plaintext by its first byte (in a task of its own, so a slow handshake holds up
/// no one), and hands them to the server in the order they are ready.
pub(crate) fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut stopped: watch::Receiver<bool>,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: the next accept may do.
                        log::warn!("event=accept_failed error={e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = async { drop(stopped.wait_for(|s| *s).await) } => return,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, sort(tcp, &acceptor)).await {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => log::debug!("event=handshake_failed peer={peer} error={e}"),
                    Err(_) => log::debug!("event=handshake_timeout peer={peer}"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// TLS when the first byte opens a handshake, plaintext otherwise.
async fn sort(tcp: TcpStream, acceptor: &TlsAcceptor) -> io::Result<Conn> {
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await?;
    if n == 1 && first[0] == TLS_HANDSHAKE {
        Ok(Conn::Tls(Box::new(acceptor.accept(tcp).await?)))
    } else {
        Ok(Conn::Plain(tcp))
    }
}
