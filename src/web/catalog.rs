//! The newsletters, as the public pages see them.
//!
//! Every form page and every signup needs the list of newsletters, and it changes only
//! when an operator edits it, so each process reads it at most once per [`FRESH_FOR`] and
//! renders the signup page once per read. A signup naming a newsletter the cached list
//! lacks reads the list again at once, so a newsletter is usable the moment it exists.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use askama::Template;

use super::pages::{FormErrors, SubscribePage};
use super::routes::home::newsletter_options;
use crate::db::newsletters::{self, Newsletter};
use crate::db::{self, Pool, StorageError};

/// How long a read of the newsletters is trusted.
pub const FRESH_FOR: Duration = Duration::from_secs(2);

/// The newsletters and the signup page made from them.
#[derive(Debug)]
pub struct Snapshot {
    /// Every newsletter, by id.
    pub newsletters: Vec<Newsletter>,
    /// `GET /`, rendered; `None` if rendering failed (the page then renders per request).
    pub home_page: Option<Bytes>,
    read_at: Instant,
}

/// Shared by the workers of one process.
#[derive(Debug)]
pub struct Catalog {
    pool: Pool,
    current: RwLock<Option<Arc<Snapshot>>>,
}

impl Catalog {
    /// An empty cache over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            current: RwLock::new(None),
        }
    }

    /// The newsletters as of at most [`FRESH_FOR`] ago.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, StorageError> {
        let cached = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match cached {
            Some(snapshot) if snapshot.read_at.elapsed() < FRESH_FOR => Ok(snapshot),
            _ => self.reload().await,
        }
    }

    /// The newsletters, read now.
    pub async fn reload(&self) -> Result<Arc<Snapshot>, StorageError> {
        let newsletters = db::run(&self.pool, newsletters::all).await?;
        let page = SubscribePage {
            newsletters: newsletter_options(&newsletters, None),
            email: String::new(),
            name: String::new(),
            errors: FormErrors::default(),
        };
        let home_page = match page.render() {
            Ok(html) => Some(Bytes::from(html)),
            Err(error) => {
                tracing::error!(%error, status = %StatusCode::INTERNAL_SERVER_ERROR, "rendering the signup page failed");
                None
            }
        };
        let snapshot = Arc::new(Snapshot {
            newsletters,
            home_page,
            read_at: Instant::now(),
        });
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&snapshot));
        Ok(snapshot)
    }
}
