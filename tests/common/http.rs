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
    let (status, _, body) = exchange(method, addr, path, headers, body).await?;
    Ok((status, body))
}

/// An answer with its headers (names lower case), for cookies.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The values of the `Set-Cookie` headers, `name=value` only.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.split(';').next().unwrap_or_default().to_string())
            .collect()
    }

    /// The value of cookie `name` set by this answer.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_string))
    }
}

/// A request (a `Content-Type` among `headers` replaces the JSON default) whose
/// answer keeps its headers. Panics if the server cannot be reached.
pub async fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let (status, headers, body) = exchange(method, addr, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    Answer {
        status,
        headers,
        body,
    }
}

/// Signs in to the execution page with `token` as a browser does (the form's CSRF
/// value and cookie, then the form); returns the `Cookie` header of the session,
/// or the refusal.
pub async fn page_sign_in(addr: SocketAddr, token: &str) -> Result<String, Answer> {
    let form = request("GET", addr, "/ui/login", &[], &[]).await;
    let csrf = form
        .cookie("pbo_csrf")
        .expect("the sign-in page sets pbo_csrf");
    let cookie = format!("pbo_csrf={csrf}");
    let body = format!("token={token}&next=%2Fui%2F&csrf={csrf}");
    let answer = request(
        "POST",
        addr,
        "/ui/login",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .await;
    match answer.cookie("pbo_session") {
        Some(id) if answer.status == 303 => Ok(format!("pbo_session={id}")),
        _ => Err(answer),
    }
}

async fn exchange(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<(String, String)>, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json\r\n");
    }
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
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}
