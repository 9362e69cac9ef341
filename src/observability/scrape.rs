//! One scrape: the process's counters, then the queue's gauges read from the database
//! under a short deadline. A database that is down or slow costs the scrape the deadline,
//! never an error: the answer still carries the counters and `spacedigest_database_up 0`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

use super::{KINDS, Metrics, PREFIX};
use crate::db::{self, Pool, queue_stats};

/// OpenMetrics text, which Prometheus reads (and prefers) since 2.5.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape waits for the queue's numbers. Prometheus's default scrape timeout
/// is 10 s; this leaves it ample room.
const DATABASE_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoredKind {
    kind: String,
}

/// The text of one scrape.
pub async fn render(pool: &Pool, metrics: &Metrics) -> String {
    let now = db::now();
    let read = db::run(pool, move |conn| queue_stats::queue_stats(conn, now));
    let stats = match tokio::time::timeout(DATABASE_DEADLINE, read).await {
        Ok(Ok(stats)) => Some(stats),
        Ok(Err(error)) => {
            tracing::warn!(%error, "metrics: cannot read the queue");
            None
        }
        Err(_) => {
            tracing::warn!(deadline = ?DATABASE_DEADLINE, "metrics: the queue did not answer in time");
            None
        }
    };
    let mut scraped = Registry::with_prefix(PREFIX);
    let up = Gauge::<i64>::default();
    up.set(i64::from(stats.is_some()));
    scraped.register(
        "database_up",
        "1 when this scrape read the queue from the database, 0 when it could not (the queue gauges are then left out)",
        up,
    );
    if let Some(stats) = stats {
        let depth = Family::<StoredKind, Gauge>::default();
        for kind in KINDS {
            drop(depth.get_or_create(&StoredKind {
                kind: kind.to_owned(),
            }));
        }
        for (kind, count) in stats.pending_by_kind {
            depth.get_or_create(&StoredKind { kind }).set(count);
        }
        scraped.register(
            "queue_depth",
            "Emails still to send in the shared queue (due, claimed by a worker, or waiting for a retry), by kind",
            depth,
        );
        let oldest = Gauge::<f64, AtomicU64>::default();
        let late = stats.oldest_due.map_or(0.0, |due| {
            (now - due).num_milliseconds().max(0) as f64 / 1000.0
        });
        oldest.set(late);
        scraped.register(
            "queue_oldest_pending_age_seconds",
            "How late the most overdue email is: seconds since the earliest due time among due, unclaimed emails (0 when none is due)",
            oldest,
        );
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode_registry(&mut text, metrics.registry())
        .and_then(|()| encode_registry(&mut text, &scraped))
        .and_then(|()| encode_eof(&mut text));
    text
}

/// The HTTP answer of one scrape.
pub async fn response(pool: &Pool, metrics: &Metrics) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(render(pool, metrics).await)
}

/// Whether an `Authorization` header carries `Bearer <expected>`, compared in constant time.
pub fn bearer_matches(authorization: Option<&str>, expected: &str) -> bool {
    let Some(given) = authorization.and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }) else {
        return false;
    };
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let token = "0123456789abcdef0123";
        assert!(bearer_matches(Some(&format!("Bearer {token}")), token));
        assert!(bearer_matches(Some(&format!("bearer  {token} ")), token));
        assert!(!bearer_matches(Some(token), token));
        assert!(!bearer_matches(Some(&format!("Basic {token}")), token));
        assert!(!bearer_matches(Some("Bearer 0123456789abcdef012"), token));
        assert!(!bearer_matches(Some("Bearer "), token));
        assert!(!bearer_matches(None, token));
    }
}
