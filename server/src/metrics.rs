//! `--metrics addr`: the server's counters as Prometheus text on `GET /metrics`, over
//! a minimal HTTP/1.1 responder (one request per connection, then close). Anything
//! else gets 404; nothing here can reach the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::service::Shared;

/// Serves until the task is aborted.
pub(crate) async fn run(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((conn, peer)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(conn, &shared).await {
                log::debug!("metrics_peer={peer} error={e:?}");
            }
        });
    }
}

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn answer(mut conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // Read the request head (bounded in size and time).
    let read = async {
        while len < buf.len() {
            let n = conn.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .is_err()
    {
        return Ok(());
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body, kind) =
        if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
            let text = crate::stats_of(shared).to_prometheus();
            ("200 OK", text, "text/plain; version=0.0.4; charset=utf-8")
        } else {
            (
                "404 Not Found",
                "not found; try /metrics\n".to_string(),
                "text/plain",
            )
        };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}
