//! Request bodies too large or too slow: every body limit answers with a 413 that a
//! client writing its whole body first can read (`bodies/oversized.rs`), and clients that
//! trickle their requests are cut off without delaying anyone else (`bodies/slow.rs`).
//!
//! The clients here are raw TCP sockets, so the test decides exactly when bytes are
//! written and read: reqwest reads the answer while it writes, and would hide the reset
//! that a client like Python's urllib, which writes everything first, sees.

mod oversized;
mod slow;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::app::TestApp;

/// What a client got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A whole answer.
    Answer {
        status: u16,
        /// The answer said `Connection: close`.
        closes: bool,
        body: String,
    },
    /// The connection broke or closed before a whole answer could be read.
    Reset(String),
}

impl Got {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Answer { status, .. } => Some(*status),
            Self::Reset(_) => None,
        }
    }
}

/// `127.0.0.1:PORT` of the app.
pub fn socket_address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// A request head: the request line, `headers`, and `Content-Length` when given.
pub fn head(method: &str, path: &str, headers: &[(&str, &str)], length: Option<usize>) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// `body` in chunked transfer encoding, in pieces of `piece` bytes.
pub fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / piece * 8 + 8);
    for part in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// How long a client's body follows its head on the wire: a network's delay, during
/// which a server that answers from the head alone has already closed.
const HEAD_TO_BODY: Duration = Duration::from_millis(20);

/// Writes the head, then the whole body, then reads the answer, as Python's urllib does.
pub async fn write_whole_then_read(address: &str, head: &[u8], body: &[u8]) -> Got {
    let mut stream = match TcpStream::connect(address).await {
        Ok(stream) => stream,
        Err(e) => return Got::Reset(format!("connecting: {e}")),
    };
    if let Err(e) = stream.write_all(head).await {
        return Got::Reset(format!("writing the head: {e}"));
    }
    tokio::time::sleep(HEAD_TO_BODY).await;
    if let Err(e) = stream.write_all(body).await {
        return Got::Reset(format!("writing the body: {e}"));
    }
    read_answer(&mut stream, Duration::from_secs(30)).await
}

/// Reads one answer (head and `Content-Length` body, or up to the close) within `limit`.
pub async fn read_answer(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> Got {
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            if let Some(answer) = parse(&received, false) {
                return answer;
            }
            match stream.read(&mut buffer).await {
                Ok(0) => {
                    return parse(&received, true).unwrap_or_else(|| {
                        Got::Reset(format!(
                            "closed after {} bytes of answer, before a whole one",
                            received.len()
                        ))
                    });
                }
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(e) => {
                    return Got::Reset(format!("reading after {} bytes: {e}", received.len()));
                }
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| Got::Reset(format!("no whole answer within {limit:?}")))
}

/// The answer in `received` once it is whole; without a `Content-Length`, whole at `eof`.
fn parse(received: &[u8], eof: bool) -> Option<Got> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(received).ok()? else {
        return None;
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let body = &received[head_len..];
    let body = match header("content-length").and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(length) if body.len() >= length => &body[..length],
        Some(_) => return None,
        None if eof => body,
        None => return None,
    };
    Some(Got::Answer {
        status: response.code?,
        closes: header("connection").is_some_and(|v| v.contains("close")),
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// How each kind of outcome was counted, e.g. `{413: 30}` or `{413: 12, reset: 18}`.
pub fn tally(outcomes: &[Got]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for outcome in outcomes {
        let key = match outcome {
            Got::Answer { status, .. } => status.to_string(),
            Got::Reset(_) => "reset".to_owned(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    format!("{{{}}}", parts.join(", "))
}
