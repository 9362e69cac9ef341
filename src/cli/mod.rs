//! The command line: parses arguments and runs one command.

mod admin;
mod digest;
mod feeds;
mod healthcheck;
mod stories;
mod subscribers;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::{self, Application};
use crate::config::Settings;
use crate::db::{self, newsletters};
use crate::domain::{NewsletterSlug, NewsletterTimeZone, NewsletterTitle, SendTime};
use crate::observability::Metrics;
use crate::queue_signal::QueueSignal;

/// Self-hosted newsletter signup with double opt-in and a daily digest mailer.
#[derive(Debug, Parser)]
#[command(name = "spacedigest", version, about)]
pub struct Cli {
    /// Settings file (default: ./spacedigest.toml when present). SPACEDIGEST_* variables win.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, then run the web server and the delivery worker until SIGTERM or Ctrl-C.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run only the delivery worker (scale-out: run several, on PostgreSQL).
    Worker,
    /// Manage newsletters.
    #[command(subcommand)]
    Newsletter(NewsletterCommand),
    /// Import, add and list stories.
    #[command(subcommand)]
    Stories(stories::StoriesCommand),
    /// Manage the feeds `serve` polls.
    #[command(subcommand)]
    Feed(feeds::FeedCommand),
    /// Preview, send and follow the daily digest.
    #[command(subcommand)]
    Digest(digest::DigestCommand),
    /// Operator accounts for the console at /admin.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Export or import the list as CSV.
    #[command(subcommand)]
    Subscribers(subscribers::SubscribersCommand),
    /// Exit 0 if the local `serve` answers GET /health_check, else 1 (container health checks).
    Healthcheck {
        /// URL to check (default: /health_check on the port of SPACEDIGEST_LISTEN, via loopback).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

/// `newsletter …`
#[derive(Debug, Subcommand)]
pub enum NewsletterCommand {
    /// Create a newsletter.
    Add {
        /// URL-safe name, e.g. `mars-weekly`.
        slug: String,
        /// Title shown to readers.
        #[arg(long)]
        title: String,
        /// One line for the signup form.
        #[arg(long, default_value = "")]
        description: String,
        /// Daily send time, HH:MM (24-hour).
        #[arg(long, default_value = "07:00", value_name = "HH:MM")]
        send_at: String,
        /// IANA time zone of the send time and of "the day".
        #[arg(long, default_value = "UTC", value_name = "Area/City")]
        timezone: String,
    },
    /// List newsletters.
    List,
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        let settings = Settings::load(self.config.as_deref())?;
        crate::telemetry::init_with(
            &settings.observability.log,
            settings.observability.log_format,
        );
        match self.command {
            Command::Serve => Application::build(settings).await?.run().await,
            Command::Migrate => {
                let pool = app::open_pool(&settings)?;
                let applied = tokio::task::spawn_blocking(move || db::migrate(&pool)).await??;
                if applied.is_empty() {
                    println!("The database is up to date.");
                } else {
                    println!(
                        "Applied {} migration(s): {}",
                        applied.len(),
                        applied.join(", ")
                    );
                }
                Ok(())
            }
            Command::Worker => run_worker(settings).await,
            Command::Stories(command) => stories::run(&settings, command).await,
            Command::Feed(command) => feeds::run(&settings, command).await,
            Command::Digest(command) => digest::run(&settings, command).await,
            Command::Admin(command) => admin::run(&settings, command).await,
            Command::Subscribers(command) => subscribers::run(&settings, command).await,
            Command::Healthcheck { url } => {
                let url = url.unwrap_or_else(|| healthcheck::local_url(settings.server.listen));
                healthcheck::run(&url).await
            }
            Command::Newsletter(NewsletterCommand::List) => {
                let pool = app::prepare_database(&settings).await?;
                let all = db::run(&pool, newsletters::all).await?;
                println!("{:<24} {:<32} {:<6} TIMEZONE", "SLUG", "TITLE", "SEND");
                for n in all {
                    println!(
                        "{:<24} {:<32} {:<6} {}",
                        n.slug, n.title, n.send_at, n.timezone
                    );
                }
                Ok(())
            }
            Command::Newsletter(NewsletterCommand::Add {
                slug,
                title,
                description,
                send_at,
                timezone,
            }) => {
                let slug = NewsletterSlug::parse(&slug).context("invalid slug")?;
                let title = NewsletterTitle::parse(&title).context("invalid --title")?;
                let send_at = SendTime::parse(&send_at).context("invalid --send-at")?;
                let timezone =
                    NewsletterTimeZone::parse(&timezone).context("invalid --timezone")?;
                let description = description.trim().to_owned();
                if description.chars().count() > 300 || description.chars().any(char::is_control) {
                    bail!("invalid --description: at most 300 characters, on one line");
                }
                let pool = app::prepare_database(&settings).await?;
                let created = db::run(&pool, move |conn| {
                    newsletters::create(
                        conn,
                        &newsletters::NewNewsletter {
                            slug: slug.as_str(),
                            title: title.as_str(),
                            description: &description,
                            send_at: &send_at.to_string(),
                            timezone: timezone.name(),
                            created_at: db::now(),
                        },
                    )
                })
                .await?;
                match created {
                    Some(n) => {
                        println!(
                            "Created newsletter {} ({}), sent daily at {} {}.",
                            n.slug, n.title, n.send_at, n.timezone
                        );
                        Ok(())
                    }
                    None => bail!("a newsletter with that slug already exists"),
                }
            }
        }
    }
}

async fn run_worker(settings: Settings) -> anyhow::Result<()> {
    let pool = app::prepare_database(&settings).await?;
    let signer = app::policy(&settings, &pool).await?.signer;
    let counters = Arc::new(Metrics::new());
    let metrics =
        app::start_metrics_listener(&settings.observability, &counters, &pool)?.map(|server| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
    let shutdown = CancellationToken::new();
    let worker = app::spawn_worker(
        &settings,
        signer,
        &counters,
        pool,
        QueueSignal::default(),
        shutdown.clone(),
    )?;
    wait_for_stop_signal().await;
    tracing::info!("stopping: finishing the batch in flight");
    shutdown.cancel();
    let stopped = worker.await.context("the delivery worker ended abnormally");
    // Scraped until the end, so the last sends are counted.
    if let Some((handle, running)) = metrics {
        handle.stop(true).await;
        let _ = running.await;
    }
    stopped
}

/// Resolves on Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
