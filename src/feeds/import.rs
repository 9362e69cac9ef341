//! A feed's stories into a newsletter: the step `stories import` and the poller share.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use diesel::QueryResult;
use url::Url;

use super::fetch::{FetchError, Fetched, Fetcher, Validators};
use super::parse::{FeedError, FeedOrigin, MAX_FEED_BYTES, ParsedFeed, Skipped, parse_feed};
use crate::config::FetchSettings;
use crate::db::stories::{self, UpsertCounts};
use crate::db::{self, DbConnection, Pool, StorageError};

/// What one import stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The feed's title or host.
    pub source: String,
    /// New, updated and unchanged stories.
    pub counts: UpsertCounts,
    /// Items without a date of their own (dated when first seen).
    pub undated: usize,
    /// Items left out, by reason.
    pub skipped: Skipped,
}

impl ImportReport {
    /// Stories the feed provided: new, updated and unchanged.
    pub fn stories(&self) -> usize {
        self.counts.new + self.counts.updated + self.counts.unchanged
    }
}

impl fmt::Display for ImportReport {
    /// `Imported 12 stories from X: 10 new, 2 updated, 0 unchanged (3 undated, dated now;
    /// 1 skipped: no link)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.stories();
        write!(
            f,
            "Imported {n} {} from {}: {} new, {} updated, {} unchanged",
            if n == 1 { "story" } else { "stories" },
            self.source,
            self.counts.new,
            self.counts.updated,
            self.counts.unchanged
        )?;
        let mut notes = Vec::new();
        let (undated, dated_now) = (self.undated, self.counts.new_undated);
        if undated > 0 {
            notes.push(if dated_now == undated {
                format!("{undated} undated, dated now")
            } else if dated_now == 0 {
                format!("{undated} undated, first-seen time kept")
            } else {
                format!(
                    "{undated} undated: {dated_now} dated now, {} first-seen time kept",
                    undated - dated_now
                )
            });
        }
        if self.skipped.total() > 0 {
            notes.push(self.skipped.to_string());
        }
        if !notes.is_empty() {
            write!(f, " ({})", notes.join("; "))?;
        }
        Ok(())
    }
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {}: {message}", path.display())]
    File {
        /// The file named.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The feed could not be fetched.
    #[error("cannot fetch the feed: {0}")]
    Fetch(#[from] FetchError),
    /// The bytes are not a usable feed.
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Stores a parsed feed's stories inside the caller's write transaction.
pub fn store_within(
    conn: &mut DbConnection,
    newsletter_id: i64,
    feed: &ParsedFeed,
    now: NaiveDateTime,
) -> QueryResult<ImportReport> {
    let counts = stories::upsert_within(conn, newsletter_id, &feed.items, now)?;
    Ok(ImportReport {
        source: feed.source.clone(),
        counts,
        undated: feed.undated(),
        skipped: feed.skipped.clone(),
    })
}

/// Parses on the blocking pool: sanitising 5 MiB of HTML must not stall the executor.
pub async fn parse_off_executor(
    bytes: Vec<u8>,
    origin: FeedOrigin,
) -> Result<ParsedFeed, FeedError> {
    let parsed = tokio::task::spawn_blocking(move || parse_feed(&bytes, &origin))
        .await
        .map_err(|_| FeedError::Malformed("the feed parser stopped unexpectedly".to_owned()))??;
    if parsed.items.is_empty() && parsed.skipped.total() > 0 {
        return Err(FeedError::NoUsableItems(parsed.skipped));
    }
    Ok(parsed)
}

/// Imports feed bytes into a newsletter, all or nothing.
pub async fn import_bytes(
    pool: &Pool,
    newsletter_id: i64,
    bytes: Vec<u8>,
    origin: FeedOrigin,
) -> Result<ImportReport, ImportError> {
    let parsed = parse_off_executor(bytes, origin).await?;
    let report = db::run(pool, move |conn| {
        db::write_transaction(conn, |conn| {
            store_within(conn, newsletter_id, &parsed, db::now())
        })
    })
    .await?;
    Ok(report)
}

/// Reads a feed file, refusing one over the size limit without reading it all.
pub async fn read_file(path: &Path) -> Result<Vec<u8>, ImportError> {
    let owned = path.to_path_buf();
    let failed = |message: String| ImportError::File {
        path: path.to_path_buf(),
        message,
    };
    let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let file = std::fs::File::open(&owned)?;
        let mut bytes = Vec::new();
        // One byte past the limit is enough to know the file is too large.
        file.take(MAX_FEED_BYTES as u64 + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(|e| failed(e.to_string()))?;
    if bytes.len() > MAX_FEED_BYTES {
        return Err(FeedError::TooLarge.into());
    }
    Ok(bytes)
}

/// Fetches a feed once, unconditionally (for `stories import URL` and the console).
pub async fn fetch_once(url: &Url, settings: &FetchSettings) -> Result<Vec<u8>, ImportError> {
    let fetcher = Fetcher::new(settings)?;
    match fetcher.fetch(url, &Validators::default()).await? {
        Fetched::Body { bytes, .. } => Ok(bytes),
        // Unreachable without validators, but a server may answer 304 regardless.
        Fetched::NotModified => Err(FetchError::Status("304 Not Modified".to_owned()).into()),
    }
}
