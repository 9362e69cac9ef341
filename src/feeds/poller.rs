//! The feed poller `serve` runs: every registered feed once at start, then every interval.
//! A bad feed is recorded on its row and logged; it never stops the others.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::fetch::{Fetched, Fetcher, Validators, redacted};
use super::import::{ImportReport, parse_off_executor, store_within};
use super::parse::FeedOrigin;
use crate::config::FetchSettings;
use crate::db::feeds::{self, Feed};
use crate::db::{self, Pool};

/// Feeds fetched at once: enough to hide slow servers, few enough to be polite.
const CONCURRENT_FETCHES: usize = 4;

/// The outcome of polling one feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// The server answered 304: nothing to store.
    NotModified,
    /// The feed was read and its stories stored.
    Imported(ImportReport),
    /// Fetching, reading or storing failed; the message is on the feed's row.
    Failed(String),
}

/// One feed's poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// The feed's row id.
    pub feed_id: i64,
    /// Its URL.
    pub url: String,
    /// What happened.
    pub outcome: PollOutcome,
}

/// Polls every registered feed once, a few at a time, reaching only the addresses
/// `settings` allow; reports in feed order.
pub async fn poll_all_once(pool: &Pool, settings: &FetchSettings) -> Vec<PollReport> {
    let registered = match db::run(pool, feeds::all).await {
        Ok(registered) => registered,
        Err(error) => {
            tracing::error!(%error, "cannot list the feeds to poll");
            return Vec::new();
        }
    };
    let fetcher = match Fetcher::new(settings) {
        Ok(fetcher) => fetcher,
        Err(error) => {
            tracing::error!(%error, "cannot build the HTTP client for feeds");
            return Vec::new();
        }
    };
    let mut reports: Vec<PollReport> = futures_util::stream::iter(registered)
        .map(|feed| poll_one(pool, &fetcher, feed))
        .buffer_unordered(CONCURRENT_FETCHES)
        .collect()
        .await;
    reports.sort_by_key(|r| r.feed_id);
    reports
}

/// Polls at once, then every `interval`, until `shutdown` is cancelled.
pub async fn run_poller(
    pool: Pool,
    interval: Duration,
    settings: FetchSettings,
    shutdown: CancellationToken,
) {
    tracing::info!(
        interval_minutes = interval.as_secs() / 60,
        "feed poller started"
    );
    loop {
        tokio::select! {
            reports = poll_all_once(&pool, &settings) => log_round(&reports),
            () = shutdown.cancelled() => break,
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => break,
        }
    }
    tracing::info!("feed poller stopped");
}

fn log_round(reports: &[PollReport]) {
    let failed = reports
        .iter()
        .filter(|r| matches!(r.outcome, PollOutcome::Failed(_)))
        .count();
    let new: usize = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            PollOutcome::Imported(report) => Some(report.counts.new),
            _ => None,
        })
        .sum();
    tracing::info!(
        feeds = reports.len(),
        new_stories = new,
        failed,
        "feeds polled"
    );
}

/// Polls one feed now (the console's "Poll now"), recording the outcome on its row as
/// the poller does.
pub async fn poll_feed(pool: &Pool, settings: &FetchSettings, feed: Feed) -> PollReport {
    match Fetcher::new(settings) {
        Ok(fetcher) => poll_one(pool, &fetcher, feed).await,
        Err(error) => PollReport {
            feed_id: feed.id,
            url: feed.url,
            outcome: PollOutcome::Failed(format!("cannot build the HTTP client: {error}")),
        },
    }
}

async fn poll_one(pool: &Pool, fetcher: &Fetcher, feed: Feed) -> PollReport {
    let outcome = match fetch_and_store(pool, fetcher, &feed).await {
        Ok(outcome) => outcome,
        Err(message) => {
            tracing::warn!(
                feed_id = feed.id,
                url = %redacted(&feed.url),
                error = %message,
                "feed poll failed"
            );
            let recorded = message.clone();
            let id = feed.id;
            if let Err(error) = db::run(pool, move |conn| {
                feeds::record_failure(conn, id, &recorded, db::now())
            })
            .await
            {
                tracing::error!(feed_id = feed.id, %error, "cannot record a failed feed poll");
            }
            PollOutcome::Failed(message)
        }
    };
    PollReport {
        feed_id: feed.id,
        url: feed.url,
        outcome,
    }
}

async fn fetch_and_store(
    pool: &Pool,
    fetcher: &Fetcher,
    feed: &Feed,
) -> Result<PollOutcome, String> {
    let url = Url::parse(&feed.url).map_err(|e| format!("invalid feed URL: {e}"))?;
    let validators = Validators {
        etag: feed.etag.clone(),
        last_modified: feed.last_modified.clone(),
    };
    let id = feed.id;
    match fetcher
        .fetch(&url, &validators)
        .await
        .map_err(|e| e.to_string())?
    {
        Fetched::NotModified => {
            db::run(pool, move |conn| {
                feeds::record_not_modified(conn, id, db::now())
            })
            .await
            .map_err(|e| e.to_string())?;
            tracing::debug!(feed_id = id, "feed not modified");
            Ok(PollOutcome::NotModified)
        }
        Fetched::Body { bytes, validators } => {
            let parsed = parse_off_executor(bytes, FeedOrigin::url(&url))
                .await
                .map_err(|e| e.to_string())?;
            let newsletter_id = feed.newsletter_id;
            // The stories and the validators commit together: a failed store must not
            // leave an ETag that would hide the unstored stories from the next poll.
            let report = db::run(pool, move |conn| {
                db::write_transaction(conn, |conn| {
                    let now = db::now();
                    let report = store_within(conn, newsletter_id, &parsed, now)?;
                    feeds::record_success(
                        conn,
                        id,
                        validators.etag.as_deref(),
                        validators.last_modified.as_deref(),
                        now,
                    )?;
                    Ok(report)
                })
            })
            .await
            .map_err(|e| e.to_string())?;
            tracing::info!(
                feed_id = id,
                new = report.counts.new,
                updated = report.counts.updated,
                unchanged = report.counts.unchanged,
                "feed polled"
            );
            Ok(PollOutcome::Imported(report))
        }
    }
}
