//! The daily scheduler inside `serve`: each newsletter goes out at its send time in its
//! own time zone, once a day. Checking every half minute also catches up after a restart
//! that missed the time; the issue's once-only fan-out means it never sends twice, even
//! with several `serve` processes on one PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use super::{SendOutcome, send, zone};
use crate::config::Settings;
use crate::db::newsletters::{self, Newsletter};
use crate::db::{self, Pool};
use crate::domain::SendTime;
use crate::queue_signal::QueueSignal;

const TICK: Duration = Duration::from_secs(30);

/// Runs until cancelled; checks at start (catch-up), then every 30 s.
pub async fn run_scheduler(
    pool: Pool,
    settings: Settings,
    signal: QueueSignal,
    shutdown: CancellationToken,
) {
    // Days already reported as having no stories, so the log says it once.
    let mut reported_empty: HashSet<(i64, NaiveDate)> = HashSet::new();
    while !shutdown.is_cancelled() {
        match db::run(&pool, newsletters::all).await {
            Ok(all) => {
                for newsletter in all.into_iter().filter(is_due) {
                    tick(&pool, &settings, &signal, newsletter, &mut reported_empty).await;
                }
            }
            Err(error) => tracing::warn!(%error, "scheduler cannot read newsletters"),
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

/// True once today's send time has passed in the newsletter's zone.
fn is_due(newsletter: &Newsletter) -> bool {
    let send_at = SendTime::parse(&newsletter.send_at).unwrap_or_default();
    Utc::now().with_timezone(&zone(newsletter)).time() >= send_at.time()
}

async fn tick(
    pool: &Pool,
    settings: &Settings,
    signal: &QueueSignal,
    newsletter: Newsletter,
    reported_empty: &mut HashSet<(i64, NaiveDate)>,
) {
    let date = super::today(&newsletter);
    let slug = newsletter.slug.clone();
    let id = newsletter.id;
    let settings = settings.clone();
    let outcome = db::run_with(pool, move |conn| {
        // Cheap check first: most ticks find the day's issue already queued.
        if let Some(issue) = db::digests::find(conn, newsletter.id, date)? {
            if issue.fanned_out_at.is_some() {
                return Ok(SendOutcome::AlreadyQueued { issue_id: issue.id });
            }
        }
        send(conn, &settings, &newsletter, date)
    })
    .await;
    match outcome {
        Ok(SendOutcome::Queued { recipients, .. }) => {
            tracing::info!(newsletter = %slug, %date, recipients, "scheduled digest queued");
            signal.notify();
        }
        Ok(SendOutcome::AlreadyQueued { .. }) => {}
        Ok(SendOutcome::NoStories) => {
            if reported_empty.insert((id, date)) {
                tracing::info!(newsletter = %slug, %date, "no stories yet today; nothing sent");
            }
        }
        Err(error) => {
            tracing::warn!(newsletter = %slug, %date, %error, "scheduled digest failed; will retry")
        }
    }
}
