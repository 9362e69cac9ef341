//! Erasing a subscriber on a privacy request: every row about them goes, at once.

use crate::db::subscribers::{self, Erased};
use crate::db::{DbConnection, write_transaction};

/// Erases the subscriber with this id in one write transaction; `None` if there is none.
/// Logs the id only: the address is exactly what is being forgotten.
pub fn erase(conn: &mut DbConnection, subscriber_id: i64) -> diesel::QueryResult<Option<Erased>> {
    let erased = write_transaction(conn, |conn| {
        let Some(subscriber) = subscribers::find(conn, subscriber_id)? else {
            return Ok(None);
        };
        subscribers::delete_everything(conn, &subscriber).map(Some)
    })?;
    if let Some(e) = &erased {
        tracing::info!(
            subscriber_id,
            emails = e.emails,
            tokens = e.tokens,
            subscriptions = e.subscriptions,
            "subscriber erased"
        );
    }
    Ok(erased)
}
