//! Assembles the running service: pool, migrations, secret key, worker, web server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseUrl, MailStream, ObservabilitySettings, Settings};
use crate::db::{self, Pool};
use crate::delivery::DeliveryWorker;
use crate::housekeeping;
use crate::mail::Mailers;
use crate::observability::{self, Metrics};
use crate::queue_signal::QueueSignal;
use crate::subscriptions::Policy;
use crate::tokens::UnsubscribeSigner;
use crate::web::{self, AppState};

/// Connections that may wait to be accepted: actix-web's documented default. The standard
/// library listens with 128, which a burst of clients past the connection cap overflows,
/// and then each waits a second or more for its connection to be retried.
const LISTEN_BACKLOG: i32 = 2048;

/// Binds the web server's listener (as `TcpListener::bind` does, with a longer queue).
pub fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Opens the pool, creating the SQLite file's directory if needed.
pub fn open_pool(settings: &Settings) -> anyhow::Result<Pool> {
    if let DatabaseUrl::Sqlite(path) = &settings.database.url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("cannot create the database directory {}", dir.display())
            })?;
        }
    }
    Ok(db::pool(settings))
}

/// Opens the pool and applies pending migrations.
pub async fn prepare_database(settings: &Settings) -> anyhow::Result<Pool> {
    let pool = open_pool(settings)?;
    let migrating = pool.clone();
    let applied = tokio::task::spawn_blocking(move || db::migrate(&migrating))
        .await
        .context("the migration task failed")?
        .with_context(|| {
            format!(
                "cannot prepare the database {}",
                settings.database.url.redacted()
            )
        })?;
    for version in &applied {
        tracing::info!(%version, "migration applied");
    }
    Ok(pool)
}

/// The secret key: the setting, or the one kept in the database.
pub async fn secret_key(settings: &Settings, pool: &Pool) -> anyhow::Result<String> {
    match &settings.server.secret_key {
        Some(key) => Ok(key.clone()),
        None => Ok(db::run(pool, db::secrets::secret_key).await?),
    }
}

/// The policy of the reader's path for these settings.
pub async fn policy(settings: &Settings, pool: &Pool) -> anyhow::Result<Policy> {
    let key = secret_key(settings, pool).await?;
    Ok(Policy::new(settings, UnsubscribeSigner::new(&key)))
}

/// Starts a delivery worker on the current runtime, with the removal of expired
/// confirmation tokens beside it; the handle ends once both have stopped.
pub fn spawn_worker(
    settings: &Settings,
    signer: UnsubscribeSigner,
    metrics: &Arc<Metrics>,
    pool: Pool,
    signal: QueueSignal,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let mailers = Mailers::new(settings)?;
    let cleanup = housekeeping::run_token_cleanup(pool.clone(), shutdown.clone());
    let worker = DeliveryWorker::new(pool, mailers, settings, signer, Arc::clone(metrics), signal)?;
    Ok(tokio::spawn(async move {
        tokio::join!(worker.run(shutdown), cleanup);
    }))
}

/// Starts the separate metrics listener when `SPACEDIGEST_METRICS_LISTEN` asks for one.
pub fn start_metrics_listener(
    settings: &ObservabilitySettings,
    metrics: &Arc<Metrics>,
    pool: &Pool,
) -> anyhow::Result<Option<Server>> {
    let Some(address) = settings.metrics_listen else {
        return Ok(None);
    };
    let listener = observability::listener::bind(address)?;
    let bound = listener.local_addr()?;
    let server = observability::listener::server(listener, pool.clone(), Arc::clone(metrics))?;
    tracing::info!(address = %bound, "metrics listener started");
    Ok(Some(server))
}

/// `serve`: the web server, a delivery worker, the daily scheduler and the feed poller,
/// until SIGTERM or Ctrl-C.
pub struct Application {
    port: u16,
    server: Server,
    /// The separate `/metrics` listener, when configured.
    metrics: Option<Server>,
    background: Vec<(&'static str, JoinHandle<()>)>,
    shutdown: CancellationToken,
    /// How long the background tasks get to stop after the server has.
    stop_within: Duration,
}

impl Application {
    /// Migrates, binds the listener and starts the worker; call [`Application::run`] next.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = listen(settings.server.listen)
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        Self::build_with_listener(settings, listener).await
    }

    /// Like [`Application::build`], on a listener the caller bound (tests bind port 0 and
    /// learn the port before choosing the base URL).
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let pool = prepare_database(&settings).await?;
        let policy = policy(&settings, &pool).await?;
        let counters = Arc::new(Metrics::new());
        let port = listener.local_addr()?.port();
        let metrics = start_metrics_listener(&settings.observability, &counters, &pool)?;
        let signal = QueueSignal::default();
        let shutdown = CancellationToken::new();
        let background = vec![
            (
                "delivery worker",
                spawn_worker(
                    &settings,
                    policy.signer.clone(),
                    &counters,
                    pool.clone(),
                    signal.clone(),
                    shutdown.clone(),
                )?,
            ),
            (
                "scheduler",
                tokio::spawn(crate::digest::scheduler::run_scheduler(
                    pool.clone(),
                    settings.clone(),
                    signal.clone(),
                    shutdown.clone(),
                )),
            ),
            (
                "feed poller",
                tokio::spawn(crate::feeds::run_poller(
                    pool.clone(),
                    settings.digest.feed_poll_interval,
                    settings.fetch.clone(),
                    shutdown.clone(),
                )),
            ),
        ];
        // The dummy hash that unknown login addresses are checked against is made now,
        // so the first such login takes as long as the rest.
        tokio::task::spawn_blocking(crate::console::password::warm_up)
            .await
            .context("preparing the console's password check failed")?;
        if db::run(&pool, db::operators::count).await? == 0 {
            tracing::warn!(
                console = %format!("{}/admin", settings.server.base_url.as_str().trim_end_matches('/')),
                "no operator account exists yet: create one with `spacedigest admin create you@example.com` to use the console"
            );
        }
        let state = AppState::new(pool, settings.clone(), policy, counters, signal);
        let server = web::server(listener, state, settings.server.http_workers)?;
        tracing::info!(
            port,
            base_url = %settings.server.base_url,
            database = %settings.database.url.redacted(),
            mail = %settings.mail.smtp_url_for(MailStream::Transactional).redacted(),
            digest_mail = %settings.mail.smtp_url_for(MailStream::Digest).redacted(),
            dkim_selector = settings.mail.dkim.as_ref().map_or("off", |d| d.selector.as_str()),
            "spacedigest is serving"
        );
        Ok(Self {
            port,
            server,
            metrics,
            background,
            shutdown,
            stop_within: settings.delivery.smtp_timeout + Duration::from_secs(10),
        })
    }

    /// The bound port (useful when listening on port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (on SIGTERM/Ctrl-C or through the handle), then lets
    /// the worker finish the batch in flight.
    pub async fn run(self) -> anyhow::Result<()> {
        let metrics = self.metrics.map(|server| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let served = self.server.await;
        if let Some((handle, running)) = metrics {
            handle.stop(true).await;
            let _ = running.await;
        }
        tracing::info!("web server stopped; stopping the worker, scheduler and poller");
        self.shutdown.cancel();
        // A task that does not stop must not keep the process alive: what it held comes
        // back when its lease ends. Sends under way get the SMTP deadline to finish.
        let deadline = tokio::time::Instant::now() + self.stop_within;
        for (name, task) in self.background {
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(%error, task = name, "a background task ended abnormally")
                }
                Err(_) => tracing::error!(
                    task = name,
                    "a background task did not stop in time; exiting without it"
                ),
            }
        }
        served.context("the web server failed")
    }
}
