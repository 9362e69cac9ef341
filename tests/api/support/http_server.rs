//! A tiny HTTP/1.1 server for the fetch tests: a fixed answer per path (the query is
//! ignored), on one or more addresses at one port, counting every connection it accepts
//! (a refused fetch must not even connect).
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    /// 200 with `body` as XML.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self::status(200, body)
    }

    /// `status` with `body`.
    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/xml".into())],
            body: body.into(),
        }
    }

    /// 302 to `location`.
    pub fn redirect(location: &str) -> Self {
        Self {
            status: 302,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
        }
    }
}

/// Listening until dropped.
pub struct HttpServer {
    /// The port, the same on every address.
    pub port: u16,
    /// The addresses it listens on.
    pub addresses: Vec<IpAddr>,
    connections: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on `first` at a free port, and on each of `also` at that port where the
    /// machine allows it (an address family may be missing); answers `routes`, else 404.
    pub async fn start(first: IpAddr, also: &[IpAddr], routes: Vec<(&str, Reply)>) -> Self {
        let listener = TcpListener::bind(SocketAddr::new(first, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut listeners = vec![listener];
        let mut addresses = vec![first];
        for &ip in also {
            if let Ok(extra) = TcpListener::bind(SocketAddr::new(ip, port)).await {
                listeners.push(extra);
                addresses.push(ip);
            }
        }
        let routes: Arc<HashMap<String, Reply>> = Arc::new(
            routes
                .into_iter()
                .map(|(path, reply)| (path.to_owned(), reply))
                .collect(),
        );
        let connections = Arc::new(AtomicUsize::new(0));
        let tasks = listeners
            .into_iter()
            .map(|listener| {
                let (routes, connections) = (routes.clone(), connections.clone());
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        connections.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(answer(stream, routes.clone()));
                    }
                })
            })
            .collect();
        Self {
            port,
            addresses,
            connections,
            tasks,
        }
    }

    /// Connections accepted so far, on every address.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// True when it listens on `ip` too.
    pub fn listens_on(&self, ip: IpAddr) -> bool {
        self.addresses.contains(&ip)
    }

    /// `http://HOST:PORT/PATH` for a host spelled as the test likes.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn answer(mut stream: TcpStream, routes: Arc<HashMap<String, Reply>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    // The query only tells requests apart; the path picks the answer.
    let route = path.split('?').next().unwrap_or_default();
    let reply = routes
        .get(route)
        .cloned()
        .unwrap_or_else(|| Reply::status(404, "not found"));
    let reason = match reply.status {
        200 => "OK",
        302 => "Found",
        404 => "Not Found",
        _ => "Other",
    };
    let mut response = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}
