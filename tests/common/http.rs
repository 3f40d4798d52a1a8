//! A minimal HTTP/1.1 client over a raw TcpStream (one request per connection), for
//! the webhook, metrics and leader tests and the benches: no HTTP client crate
//! needed for a GET or a POST.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// POSTs `body` to `path` with `headers`; returns the status code and the body.
/// Panics if the server cannot be reached.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    try_post(addr, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

/// [`post`], with a connection error returned (for polling a server that starts).
pub async fn try_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    try_request("POST", addr, path, headers, body).await
}

/// GETs `path`; returns the status code and the body. Panics if the server cannot be
/// reached.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

/// [`get`], with a connection error returned (for polling a server that starts).
pub async fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    try_request("GET", addr, path, &[], &[]).await
}

/// [`get`] with extra headers (e.g. a `Cookie`).
pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    try_request("GET", addr, path, headers, &[])
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

/// One request on a connection of its own.
async fn try_request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    // A server may answer (413) and close before reading a large body.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    Ok((status, body.to_string()))
}
