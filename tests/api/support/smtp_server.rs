//! An in-process SMTP server for integration tests.
//!
//! The mailer under test talks to this server over real TCP on 127.0.0.1,
//! exactly as it would talk to a production relay, so the tests exercise the
//! real SMTP client code (connection pooling, timeouts, error classification)
//! rather than a mock of it. Each test starts its own server on its own port,
//! which keeps tests independent when they run in parallel.
//!
//! Faults are injected with [`Behaviour`]: the behaviour is read from shared
//! state every time a command is handled, so a test can make the server fail
//! with a transient error, let the application retry, then switch the server
//! back to [`Behaviour::Accept`] and watch the retry succeed.
//!
//! ```ignore
//! let smtp = SmtpServer::start().await;
//! // point the application at smtp.url() / smtp.port() ...
//! let msgs = smtp.wait_for_messages(1, Duration::from_secs(5)).await;
//! let link = msgs[0].link_starting_with("http://127.0.0.1");
//! ```
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The message size limit advertised in EHLO. Messages above it are read to
/// the end (so the connection stays in sync) but refused with 552.
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// Longest command line we buffer. RFC 5321 allows 512 octets, but AUTH
/// lines carry base64 credentials, so leave generous room.
const MAX_COMMAND_LINE: u64 = 16 * 1024;

/// DATA is read in pieces of at most this size so that a client sending an
/// endless line cannot make the test process buffer unbounded memory.
const DATA_CHUNK: u64 = 64 * 1024;

/// How long `start_on` keeps retrying a port that is still in use, e.g.
/// because a server that a test just dropped has not released it yet.
const BIND_RETRY_FOR: Duration = Duration::from_secs(2);

/// How the server answers. Read per command from shared state, so changing
/// it with [`SmtpServer::set_behaviour`] affects open (pooled) connections
/// as well as new ones.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answer every command successfully and store every message.
    Accept,
    /// Reply `code text` to every RCPT TO; a 5xx code makes the SMTP client
    /// report a permanent error, a 4xx code a transient one.
    RejectRcpt { code: u16, text: String },
    /// Reply `code text` to RCPT TO for this one address (case-insensitive);
    /// accept every other recipient as [`Behaviour::Accept`] does.
    RejectRcptTo {
        address: String,
        code: u16,
        text: String,
    },
    /// Accept the envelope, read the whole message, then reply `code text`
    /// to the end-of-data dot instead of 250.
    RejectData { code: u16, text: String },
    /// Read the whole message, then close the TCP connection without
    /// replying: the client cannot know whether the message was delivered.
    DropAfterData,
    /// Greet new connections with `421 4.3.2 Service not available` and
    /// close them; connections already open get the same 421 on their next
    /// command.
    ServiceUnavailable,
    /// Wait this long before replying 250 to the end-of-data dot. The
    /// message is stored when the wait is over, even if the client gave up
    /// meanwhile, which is how a real relay behaves when a client times out.
    SlowDataReply(Duration),
}

/// A message the server accepted with 250 after DATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The reverse path from MAIL FROM, without angle brackets ("" for `<>`).
    pub mail_from: String,
    /// The forward paths from RCPT TO, without angle brackets, in order.
    pub rcpt_to: Vec<String>,
    /// The message exactly as transmitted, after dot-unstuffing, with the
    /// client's CRLF line endings, excluding the terminating `.` line.
    pub data: Vec<u8>,
}

/// One command line as the server read it, for tests that check what a client sent
/// (nothing injected) and when (retry timing).
#[derive(Clone, Debug)]
pub struct CommandLine {
    /// Which TCP connection, numbered from 1 in accept order.
    pub connection: usize,
    /// When the line was read.
    pub at: Instant,
    /// The line without its line ending, exactly as sent.
    pub line: String,
}

impl CommandLine {
    /// The command verb, upper-cased (`MAIL`, `RCPT`, …).
    pub fn verb(&self) -> String {
        self.line
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase()
    }
}

/// State shared between the test (through [`SmtpServer`]) and the
/// connection tasks.
struct Shared {
    behaviour: Mutex<Behaviour>,
    messages: Mutex<Vec<ReceivedMessage>>,
    /// When each of `messages` was stored, in the same order.
    arrivals: Mutex<Vec<Instant>>,
    commands: Mutex<Vec<CommandLine>>,
    rcpt_attempts: AtomicUsize,
    data_attempts: AtomicUsize,
    connections: AtomicUsize,
    /// Woken whenever a message is stored, so waiting tests need not poll.
    message_arrived: Notify,
}

impl Shared {
    fn behaviour(&self) -> Behaviour {
        lock(&self.behaviour).clone()
    }

    fn store(&self, message: ReceivedMessage) {
        let mut messages = lock(&self.messages);
        // Pushed under the messages lock, so the two lists stay in step.
        lock(&self.arrivals).push(Instant::now());
        messages.push(message);
        drop(messages);
        self.message_arrived.notify_waiters();
    }

    fn message_count(&self) -> usize {
        lock(&self.messages).len()
    }
}

/// Locks a mutex, ignoring poisoning: a test that panicked while holding a
/// lock must not turn every later assertion into a confusing PoisonError.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running SMTP server on 127.0.0.1. Dropping it stops the server and
/// closes every connection it has open.
pub struct SmtpServer {
    port: u16,
    shared: Arc<Shared>,
    /// The accept loop owns the listener and a `JoinSet` of connection
    /// tasks, so aborting it drops both and closes every socket.
    accept_task: Option<JoinHandle<()>>,
}

impl fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpServer")
            .field("port", &self.port)
            .field("behaviour", &self.shared.behaviour())
            .field("messages", &self.shared.message_count())
            .finish()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(task) = self.accept_task.take() {
            task.abort();
        }
    }
}

impl SmtpServer {
    /// Starts a server on a port chosen by the operating system.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test SMTP server: cannot bind 127.0.0.1:0");
        Self::serve(listener)
    }

    /// Starts a server on a given port, e.g. one from [`free_port`] that the
    /// application was configured with while no server was listening. Retries
    /// for up to 2 s while the port is still in use.
    pub async fn start_on(port: u16) -> SmtpServer {
        let deadline = Instant::now() + BIND_RETRY_FOR;
        loop {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => return Self::serve(listener),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("test SMTP server: cannot bind 127.0.0.1:{port}: {e}"),
            }
        }
    }

    fn serve(listener: TcpListener) -> SmtpServer {
        let port = listener
            .local_addr()
            .expect("test SMTP server: listener has no local address")
            .port();
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour::Accept),
            messages: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
            commands: Mutex::new(Vec::new()),
            rcpt_attempts: AtomicUsize::new(0),
            data_attempts: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            message_arrived: Notify::new(),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        SmtpServer {
            port,
            shared,
            accept_task: Some(accept_task),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT`, for configuration that takes a URL.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Changes how the server answers from the next command on, on every
    /// connection.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// Messages accepted with 250 after DATA, in arrival order. Rejected or
    /// dropped transactions are not here; see the attempt counters for those.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        lock(&self.shared.messages).clone()
    }

    pub fn message_count(&self) -> usize {
        self.shared.message_count()
    }

    /// Forgets the stored messages (counters are kept), for tests that run
    /// several phases against one server.
    pub fn clear_messages(&self) {
        let mut messages = lock(&self.shared.messages);
        lock(&self.shared.arrivals).clear();
        messages.clear();
    }

    /// Accepted messages with the moment each was stored (after its final dot, just
    /// before the 250), in arrival order: for tests that ask whether a copy arrived
    /// before or after something else happened.
    pub fn messages_with_arrival(&self) -> Vec<(Instant, ReceivedMessage)> {
        let messages = lock(&self.shared.messages);
        let arrivals = lock(&self.shared.arrivals);
        arrivals
            .iter()
            .copied()
            .zip(messages.iter().cloned())
            .collect()
    }

    /// Every command line received outside DATA, in order, on every connection.
    pub fn commands(&self) -> Vec<CommandLine> {
        lock(&self.shared.commands).clone()
    }

    /// When each `RCPT TO` for `address` arrived (case-insensitive), whatever the
    /// answer: one entry per delivery attempt that got that far.
    pub fn rcpt_times(&self, address: &str) -> Vec<Instant> {
        lock(&self.shared.commands)
            .iter()
            .filter(|c| c.verb() == "RCPT")
            .filter(|c| {
                parse_path(c.line.split_once(' ').map_or("", |(_, a)| a.trim()), "TO:")
                    .is_some_and(|to| to.eq_ignore_ascii_case(address))
            })
            .map(|c| c.at)
            .collect()
    }

    /// Number of RCPT TO commands received, whatever the answer was.
    pub fn rcpt_attempts(&self) -> usize {
        self.shared.rcpt_attempts.load(Ordering::SeqCst)
    }

    /// Number of DATA transactions that reached the end-of-data dot, whatever
    /// the answer was (including none, for [`Behaviour::DropAfterData`]).
    pub fn data_attempts(&self) -> usize {
        self.shared.data_attempts.load(Ordering::SeqCst)
    }

    /// Number of TCP connections accepted, to check connection reuse.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages have been accepted and returns all
    /// accepted messages (possibly more than `n`). Panics on timeout, saying
    /// what did arrive, so a failing test explains itself.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            // Register interest before checking, so a message stored between
            // the check and the await still wakes us.
            let arrived = self.shared.message_arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let messages = self.messages();
                if messages.len() >= n {
                    return messages;
                }
                panic!(
                    "test SMTP server: timed out after {timeout:?} waiting for {n} message(s); \
                     {} arrived (RCPT attempts: {}, DATA attempts: {}, connections: {}){}",
                    messages.len(),
                    self.rcpt_attempts(),
                    self.data_attempts(),
                    self.connection_count(),
                    describe(&messages),
                );
            }
        }
    }

    /// Waits for `wait`, then panics unless exactly `expected` messages have
    /// been accepted. Fails early if more than `expected` arrive.
    pub async fn assert_no_more_messages(&self, expected: usize, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.shared.message_arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let count = self.message_count();
            if count > expected {
                break;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                break;
            }
        }
        let messages = self.messages();
        assert_eq!(
            messages.len(),
            expected,
            "test SMTP server: expected exactly {expected} message(s), got {}{}",
            messages.len(),
            describe(&messages),
        );
    }

    /// Accepted messages with `address` among their recipients (compared
    /// case-insensitively, as mailbox domains are case-insensitive and the
    /// application may normalise addresses).
    pub fn messages_to(&self, address: &str) -> Vec<ReceivedMessage> {
        let wanted = strip_angle_brackets(address.trim());
        self.messages()
            .into_iter()
            .filter(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(wanted)))
            .collect()
    }
}

/// One line per message, appended to panic messages.
fn describe(messages: &[ReceivedMessage]) -> String {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "\n  #{i}: from <{}> to {:?} subject {:?}",
                m.mail_from,
                m.rcpt_to,
                m.header("Subject").unwrap_or_default()
            )
        })
        .collect()
}

/// A port on 127.0.0.1 that was free a moment ago, for tests where the
/// application must be configured before the server exists ("server down
/// now, up later"): configure it with this port, then [`SmtpServer::start_on`].
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("test SMTP server: cannot find a free port")
        .port()
}

fn strip_angle_brackets(s: &str) -> &str {
    s.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owning the connection tasks here means aborting this task (dropping the
    // server) aborts them too, via JoinSet's drop.
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let number = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    // Any I/O error just ends the conversation: the client
                    // sees a closed connection, as with a real server.
                    let _ = Connection::new(stream, shared, number).run().await;
                });
            }
            // Transient accept errors (e.g. too many open files) should not
            // kill the server for the rest of the test.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The envelope of the transaction in progress.
struct Transaction {
    mail_from: String,
    rcpt_to: Vec<String>,
}

/// Whether the connection should keep going after a command.
enum Flow {
    Continue,
    Close,
}

/// What a line read from the client turned out to be.
enum Line {
    /// A complete line, without its line ending.
    Complete(String),
    /// The line was longer than the limit.
    TooLong,
    /// The client closed the connection (possibly mid-line).
    Eof,
}

struct Connection<R, W> {
    reader: R,
    writer: W,
    shared: Arc<Shared>,
    number: usize,
    greeted: bool,
    authenticated: bool,
    transaction: Option<Transaction>,
}

impl Connection<BufReader<tokio::net::tcp::OwnedReadHalf>, tokio::net::tcp::OwnedWriteHalf> {
    fn new(stream: TcpStream, shared: Arc<Shared>, number: usize) -> Self {
        // Replies are small and the client waits for each one.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Connection {
            reader: BufReader::new(read),
            writer: write,
            shared,
            number,
            greeted: false,
            authenticated: false,
            transaction: None,
        }
    }
}

impl<R, W> Connection<R, W>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    async fn run(mut self) -> io::Result<()> {
        if let Behaviour::ServiceUnavailable = self.shared.behaviour() {
            return self.service_unavailable().await;
        }
        self.reply(220, "localhost ESMTP test").await?;
        loop {
            let line = match self.read_line().await? {
                Line::Complete(line) => line,
                Line::TooLong => {
                    // The rest of the line would be misread as commands.
                    self.reply(500, "5.5.2 Line too long").await?;
                    return Ok(());
                }
                Line::Eof => return Ok(()),
            };
            if let Flow::Close = self.command(&line).await? {
                let _ = self.writer.shutdown().await;
                return Ok(());
            }
        }
    }

    async fn command(&mut self, line: &str) -> io::Result<Flow> {
        lock(&self.shared.commands).push(CommandLine {
            connection: self.number,
            at: Instant::now(),
            line: line.to_owned(),
        });
        let (verb, args) = match line.split_once(' ') {
            Some((verb, args)) => (verb, args.trim()),
            None => (line.trim(), ""),
        };
        let verb = verb.to_ascii_uppercase();
        if verb == "RCPT" {
            // Counted before any answer is chosen, even a 421.
            self.shared.rcpt_attempts.fetch_add(1, Ordering::SeqCst);
        }
        let behaviour = self.shared.behaviour();
        if matches!(behaviour, Behaviour::ServiceUnavailable) && verb != "QUIT" {
            self.service_unavailable().await?;
            return Ok(Flow::Close);
        }
        match verb.as_str() {
            "EHLO" => {
                self.greeted = true;
                self.transaction = None;
                let capabilities = format!(
                    "250-localhost\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                     250-AUTH PLAIN LOGIN\r\n250 SIZE {MAX_MESSAGE_SIZE}\r\n"
                );
                self.write_all(&capabilities).await?;
            }
            "HELO" => {
                self.greeted = true;
                self.transaction = None;
                self.reply(250, "localhost").await?;
            }
            "MAIL" => self.mail(args).await?,
            "RCPT" => self.rcpt(args, &behaviour).await?,
            "DATA" => return self.data().await,
            "AUTH" => return self.auth(args).await,
            "RSET" => {
                self.transaction = None;
                self.reply(250, "2.0.0 OK").await?;
            }
            "NOOP" => self.reply(250, "2.0.0 OK").await?,
            "QUIT" => {
                self.reply(221, "2.0.0 Bye").await?;
                return Ok(Flow::Close);
            }
            "STARTTLS" | "VRFY" | "EXPN" | "HELP" | "TURN" | "ETRN" => {
                self.reply(502, "5.5.1 Command not implemented").await?;
            }
            _ => self.reply(500, "5.5.1 Command unrecognized").await?,
        }
        Ok(Flow::Continue)
    }

    async fn mail(&mut self, args: &str) -> io::Result<()> {
        if !self.greeted {
            return self.reply(503, "5.5.1 Send EHLO/HELO first").await;
        }
        if self.transaction.is_some() {
            return self.reply(503, "5.5.1 Nested MAIL command").await;
        }
        let Some(from) = parse_path(args, "FROM:") else {
            return self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>").await;
        };
        self.transaction = Some(Transaction {
            mail_from: from,
            rcpt_to: Vec::new(),
        });
        self.reply(250, "2.1.0 OK").await
    }

    async fn rcpt(&mut self, args: &str, behaviour: &Behaviour) -> io::Result<()> {
        if self.transaction.is_none() {
            return self.reply(503, "5.5.1 Need MAIL command").await;
        }
        let to = match parse_path(args, "TO:") {
            Some(to) if !to.is_empty() => to,
            _ => return self.reply(501, "5.5.4 Syntax: RCPT TO:<address>").await,
        };
        if let Behaviour::RejectRcpt { code, text } = behaviour {
            return self.reply(*code, text).await;
        }
        if let Behaviour::RejectRcptTo {
            address,
            code,
            text,
        } = behaviour
        {
            if address.eq_ignore_ascii_case(&to) {
                return self.reply(*code, text).await;
            }
        }
        if let Some(transaction) = self.transaction.as_mut() {
            transaction.rcpt_to.push(to);
        }
        self.reply(250, "2.1.5 OK").await
    }

    async fn data(&mut self) -> io::Result<Flow> {
        match &self.transaction {
            None => {
                self.reply(503, "5.5.1 Need MAIL command").await?;
                return Ok(Flow::Continue);
            }
            Some(t) if t.rcpt_to.is_empty() => {
                self.reply(554, "5.5.1 No valid recipients").await?;
                return Ok(Flow::Continue);
            }
            Some(_) => {}
        }
        self.reply(354, "Start mail input; end with <CRLF>.<CRLF>")
            .await?;
        let Some((data, oversized)) = self.read_data().await? else {
            return Ok(Flow::Close);
        };
        self.shared.data_attempts.fetch_add(1, Ordering::SeqCst);
        // The transaction ends with the dot whatever the answer: the client
        // starts over with MAIL FROM (or RSET) either way.
        let Some(transaction) = self.transaction.take() else {
            return Ok(Flow::Close);
        };
        let message = ReceivedMessage {
            mail_from: transaction.mail_from,
            rcpt_to: transaction.rcpt_to,
            data,
        };
        if oversized {
            self.reply(552, "5.3.4 Message size exceeds fixed limit")
                .await?;
            return Ok(Flow::Continue);
        }
        // Read now rather than at the DATA command: the dot is when the
        // server decides the message's fate.
        match self.shared.behaviour() {
            Behaviour::RejectData { code, text } => self.reply(code, &text).await?,
            Behaviour::DropAfterData => return Ok(Flow::Close),
            Behaviour::ServiceUnavailable => {
                self.service_unavailable().await?;
                return Ok(Flow::Close);
            }
            Behaviour::SlowDataReply(delay) => {
                tokio::time::sleep(delay).await;
                self.shared.store(message);
                self.reply(250, "2.0.0 OK: queued").await?;
            }
            Behaviour::Accept | Behaviour::RejectRcpt { .. } | Behaviour::RejectRcptTo { .. } => {
                self.shared.store(message);
                self.reply(250, "2.0.0 OK: queued").await?;
            }
        }
        Ok(Flow::Continue)
    }

    /// Reads the message after 354 up to the `.` line. Returns `None` if the
    /// client went away first, else the unstuffed bytes and whether they
    /// exceeded [`MAX_MESSAGE_SIZE`] (in which case they are truncated).
    async fn read_data(&mut self) -> io::Result<Option<(Vec<u8>, bool)>> {
        let mut data = Vec::new();
        let mut oversized = false;
        let mut chunk = Vec::new();
        let mut at_line_start = true;
        loop {
            chunk.clear();
            let n = (&mut self.reader)
                .take(DATA_CHUNK)
                .read_until(b'\n', &mut chunk)
                .await?;
            if n == 0 {
                return Ok(None);
            }
            let mut piece = &chunk[..];
            if at_line_start {
                if piece == b".\r\n" {
                    return Ok(Some((data, oversized)));
                }
                // RFC 5321 4.5.2: the client doubled every leading dot.
                if piece.first() == Some(&b'.') {
                    piece = &piece[1..];
                }
            }
            if data.len() + piece.len() > MAX_MESSAGE_SIZE {
                oversized = true;
            } else if !oversized {
                data.extend_from_slice(piece);
            }
            at_line_start = chunk.ends_with(b"\n");
        }
    }

    async fn auth(&mut self, args: &str) -> io::Result<Flow> {
        if !self.greeted {
            self.reply(503, "5.5.1 Send EHLO first").await?;
            return Ok(Flow::Continue);
        }
        if self.authenticated {
            self.reply(503, "5.5.1 Already authenticated").await?;
            return Ok(Flow::Continue);
        }
        if self.transaction.is_some() {
            self.reply(503, "5.5.1 AUTH not allowed during a mail transaction")
                .await?;
            return Ok(Flow::Continue);
        }
        let (mechanism, initial) = match args.split_once(' ') {
            Some((m, initial)) => (m.to_ascii_uppercase(), Some(initial.trim().to_string())),
            None => (args.to_ascii_uppercase(), None),
        };
        let credentials = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(r) => r,
                    None => match self.challenge("").await? {
                        Some(r) => r,
                        None => return Ok(Flow::Close),
                    },
                };
                decode_sasl(&response).map(|plain| {
                    // authzid NUL authcid NUL passwd
                    let mut fields = plain.splitn(3, '\0').skip(1);
                    let user = fields.next().unwrap_or_default().to_string();
                    let pass = fields.next().unwrap_or_default().to_string();
                    (user, pass)
                })
            }
            "LOGIN" => {
                let user = match initial {
                    Some(r) => r,
                    // base64 "Username:"
                    None => match self.challenge("VXNlcm5hbWU6").await? {
                        Some(r) => r,
                        None => return Ok(Flow::Close),
                    },
                };
                // base64 "Password:"
                let pass = match self.challenge("UGFzc3dvcmQ6").await? {
                    Some(r) => r,
                    None => return Ok(Flow::Close),
                };
                decode_sasl(&user).zip(decode_sasl(&pass))
            }
            _ => {
                self.reply(504, "5.5.4 Unrecognized authentication type")
                    .await?;
                return Ok(Flow::Continue);
            }
        };
        if credentials.is_none() {
            self.reply(501, "5.5.2 Cannot decode response").await?;
            return Ok(Flow::Continue);
        }
        self.authenticated = true;
        self.reply(235, "2.7.0 Authentication successful").await?;
        Ok(Flow::Continue)
    }

    /// Sends a 334 challenge and reads the client's answer. `None` means the
    /// connection should close (EOF or an over-long line). A `*`
    /// cancellation comes back as is and is refused with 501 by the caller.
    async fn challenge(&mut self, challenge: &str) -> io::Result<Option<String>> {
        self.reply(334, challenge).await?;
        match self.read_line().await? {
            Line::Complete(line) => Ok(Some(line.trim().to_string())),
            Line::TooLong | Line::Eof => Ok(None),
        }
    }

    async fn read_line(&mut self) -> io::Result<Line> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_COMMAND_LINE)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(Line::Eof);
        }
        if !buf.ends_with(b"\n") {
            return Ok(if n as u64 >= MAX_COMMAND_LINE {
                Line::TooLong
            } else {
                Line::Eof
            });
        }
        // Lenient about bare LF in commands; DATA is where line endings matter.
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
        Ok(Line::Complete(String::from_utf8_lossy(&buf).into_owned()))
    }

    async fn service_unavailable(&mut self) -> io::Result<()> {
        self.reply(421, "4.3.2 Service not available").await?;
        let _ = self.writer.shutdown().await;
        Ok(())
    }

    async fn reply(&mut self, code: u16, text: &str) -> io::Result<()> {
        // A test-supplied text with line breaks would desynchronise the
        // client, so flatten it.
        let text = text.replace(['\r', '\n'], " ");
        let line = if text.is_empty() {
            format!("{code} \r\n")
        } else {
            format!("{code} {text}\r\n")
        };
        self.write_all(&line).await
    }

    async fn write_all(&mut self, s: &str) -> io::Result<()> {
        self.writer.write_all(s.as_bytes()).await?;
        self.writer.flush().await
    }
}

/// Parses `FROM:<addr> PARAMS` / `TO:<addr> PARAMS` (keyword matched
/// case-insensitively, optional space after the colon, parameters such as
/// BODY=8BITMIME or SIZE ignored). Returns the address without brackets.
fn parse_path(args: &str, keyword: &str) -> Option<String> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(inner[..end].trim().to_string())
    } else {
        // Not RFC-conformant, but some clients omit the brackets.
        let addr = rest.split_whitespace().next()?;
        Some(addr.to_string())
    }
}

/// Decodes a base64 SASL response to text; `None` for `*` (cancel) or
/// invalid input.
fn decode_sasl(response: &str) -> Option<String> {
    if response == "*" {
        return None;
    }
    String::from_utf8(decode_base64(response)?).ok()
}

/// Minimal standard-alphabet base64 decoder (padding optional), so the test
/// support code needs no extra dependency just to read AUTH credentials.
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let input = input.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in input.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

impl ReceivedMessage {
    /// The message parsed as MIME. Panics if it cannot be parsed at all,
    /// which for a test means the application sent garbage.
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(&self.data)
            .unwrap_or_else(|| {
                panic!(
                    "test SMTP server: cannot parse message as MIME:\n{}",
                    String::from_utf8_lossy(&self.data)
                )
            })
    }

    /// The value of the first top-level header called `name` (compared
    /// case-insensitively) as text, `None` if there is no such header.
    ///
    /// Mailbox headers (From, To, Cc, Bcc, Reply-To, Sender, Resent-*) are
    /// rendered as `Display Name <addr>` or `addr`, comma-separated, with
    /// quotes and encoded-words removed, so tests can compare them with the
    /// configured sender without caring how the client quoted it. Every
    /// other header is its value as on the wire, unfolded and trimmed, with
    /// RFC 2047 encoded-words decoded (so `List-Unsubscribe` keeps its angle
    /// brackets and `Date` is the RFC 5322 date string).
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of the top-level header `name`, rendered as in
    /// [`ReceivedMessage::header`], e.g. to check a header is not duplicated.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        let parsed = self.parsed();
        parsed
            .headers()
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| match h.value() {
                HeaderValue::Address(address) if is_mailbox_header(h.name()) => {
                    format_address(address)
                }
                _ => {
                    let start = h.offset_start() as usize;
                    let end = (h.offset_end() as usize).min(self.data.len());
                    decode_unstructured(self.data.get(start..end).unwrap_or_default())
                }
            })
            .collect()
    }

    /// The header section as the client sent it, one entry per header field
    /// with continuation lines joined (the CRLF before folding whitespace is
    /// removed) and no decoding. Header injection shows up here as an extra
    /// field, e.g. a line starting with `Bcc:`.
    pub fn raw_header_lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.data);
        let mut lines: Vec<String> = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                break;
            }
            match lines.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
                _ => lines.push(line.to_string()),
            }
        }
        lines
    }

    /// The decoded Subject, or "" if there is none.
    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    /// The first text/plain part (not an attachment), decoded. Panics if
    /// there is none; use [`ReceivedMessage::try_text_body`] when it is
    /// optional.
    pub fn text_body(&self) -> String {
        self.try_text_body().unwrap_or_else(|| {
            panic!(
                "test SMTP server: message ({}) has no text/plain part:\n{}",
                self.content_type(),
                String::from_utf8_lossy(&self.data)
            )
        })
    }

    pub fn try_text_body(&self) -> Option<String> {
        let parsed = self.parsed();
        parsed.parts.iter().find_map(|part| match &part.body {
            PartType::Text(text)
                if !is_attachment(part)
                    && part.content_type().is_none_or(|ct| {
                        ct.subtype().is_none_or(|s| s.eq_ignore_ascii_case("plain"))
                    }) =>
            {
                Some(text.to_string())
            }
            _ => None,
        })
    }

    /// The first text/html part (not an attachment), decoded. Panics if
    /// there is none; use [`ReceivedMessage::try_html_body`] when it is
    /// optional.
    pub fn html_body(&self) -> String {
        self.try_html_body().unwrap_or_else(|| {
            panic!(
                "test SMTP server: message ({}) has no text/html part:\n{}",
                self.content_type(),
                String::from_utf8_lossy(&self.data)
            )
        })
    }

    pub fn try_html_body(&self) -> Option<String> {
        let parsed = self.parsed();
        parsed.parts.iter().find_map(|part| match &part.body {
            PartType::Html(html) if !is_attachment(part) => Some(html.to_string()),
            _ => None,
        })
    }

    /// The top-level MIME type, lower-case, e.g. "multipart/alternative";
    /// "text/plain" when there is no Content-Type (the RFC 2045 default).
    pub fn content_type(&self) -> String {
        let parsed = self.parsed();
        match parsed.content_type() {
            Some(ct) => {
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase()
            }
            None => "text/plain".to_string(),
        }
    }

    /// Every http:// or https:// URL in the text body, in order. A URL ends
    /// at whitespace or one of `< > " )`; sentence punctuation right after it
    /// (`.,;:!?`) is not part of it. Empty if there is no text body.
    pub fn links(&self) -> Vec<String> {
        extract_links(&self.try_text_body().unwrap_or_default())
    }

    /// The first link in the text body starting with `prefix`. Panics,
    /// listing every link found, if there is none.
    pub fn link_starting_with(&self, prefix: &str) -> String {
        let links = self.links();
        match links.iter().find(|l| l.starts_with(prefix)) {
            Some(link) => link.clone(),
            None => panic!(
                "test SMTP server: no link starting with {prefix:?} in the text body; \
                 links found: {links:#?}"
            ),
        }
    }

    /// Every distinct recipient, lower-cased, for set comparisons.
    pub fn recipients(&self) -> HashSet<String> {
        self.rcpt_to
            .iter()
            .map(|r| r.to_ascii_lowercase())
            .collect()
    }
}

fn is_mailbox_header(name: &str) -> bool {
    const MAILBOX_HEADERS: [&str; 11] = [
        "From",
        "To",
        "Cc",
        "Bcc",
        "Reply-To",
        "Sender",
        "Resent-From",
        "Resent-To",
        "Resent-Cc",
        "Resent-Bcc",
        "Resent-Sender",
    ];
    MAILBOX_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn format_address(address: &mail_parser::Address<'_>) -> String {
    address
        .iter()
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(addr)) => format!("{name} <{addr}>"),
            (None, Some(addr)) => addr.to_string(),
            (Some(name), None) => name.to_string(),
            (None, None) => String::new(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_attachment(part: &mail_parser::MessagePart<'_>) -> bool {
    part.content_disposition()
        .is_some_and(|cd| cd.ctype().eq_ignore_ascii_case("attachment"))
}

/// Decodes a raw header value the way an unstructured header (RFC 5322
/// `unstructured`, RFC 2047 encoded-words) is decoded, by letting
/// mail-parser parse it as a Subject. This gives one predictable rule for
/// every header, known to mail-parser or not.
fn decode_unstructured(raw: &[u8]) -> String {
    let mut synthetic = b"Subject:".to_vec();
    synthetic.extend_from_slice(raw);
    if !synthetic.ends_with(b"\n") {
        synthetic.extend_from_slice(b"\r\n");
    }
    synthetic.extend_from_slice(b"\r\n");
    MessageParser::default()
        .parse(&synthetic)
        .and_then(|m| m.subject().map(|s| s.trim().to_string()))
        .unwrap_or_else(|| String::from_utf8_lossy(raw).trim().to_string())
}

fn extract_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    loop {
        let start = match (rest.find("http://"), rest.find("https://")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | ')'))
            .unwrap_or(candidate.len());
        let link = candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        if link != "http://" && link != "https://" {
            links.push(link.to_string());
        }
        rest = &candidate[end..];
    }
    links
}
