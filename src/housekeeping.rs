//! Periodic clean-up of the database, beside every delivery worker (`serve`, `worker`
//! and `digest send` each run one): whichever process sends email also keeps the tables
//! it reads tidy. The daily digest's own periodic job is [`crate::digest::scheduler`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::{self, Pool};

/// How long an expired confirmation token is kept to explain itself.
const EXPIRED_TOKEN_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often a worker removes expired confirmation tokens.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);

/// Removes expired confirmation tokens at start, then every [`CLEANUP_INTERVAL`], until
/// `shutdown` is cancelled.
pub async fn run_token_cleanup(pool: Pool, shutdown: CancellationToken) {
    loop {
        delete_expired_tokens(&pool).await;
        tokio::select! {
            () = tokio::time::sleep(CLEANUP_INTERVAL) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Expired confirmation tokens can never be used again: remove them, a week late, so
/// an old link still explains that it expired rather than that it is unknown.
async fn delete_expired_tokens(pool: &Pool) {
    match db::run(pool, |conn| {
        db::confirmation_tokens::delete_expired(conn, db::now() - EXPIRED_TOKEN_GRACE)
    })
    .await
    {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "expired confirmation tokens removed"),
        Err(error) => tracing::warn!(%error, "cannot remove expired confirmation tokens"),
    }
}
