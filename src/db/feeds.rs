//! Feeds `serve` polls, one per (newsletter, URL), with what the last poll learned.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{feeds, newsletters};
use crate::on_backend;

/// The longest error text kept per feed: enough to diagnose, never a whole HTML page.
const MAX_ERROR_CHARS: usize = 500;

/// A registered feed.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = feeds)]
pub struct Feed {
    /// Row id.
    pub id: i64,
    /// The newsletter its stories go to.
    pub newsletter_id: i64,
    /// The feed's http(s) URL, normalised.
    pub url: String,
    /// The server's `ETag` from the last successful fetch.
    pub etag: Option<String>,
    /// The server's `Last-Modified` from the last successful fetch.
    pub last_modified: Option<String>,
    /// The last poll, whatever its outcome.
    pub last_polled_at: Option<NaiveDateTime>,
    /// The last poll that read the feed (or learned it had not changed).
    pub last_success_at: Option<NaiveDateTime>,
    /// Why the last poll failed; `None` after a success.
    pub last_error: Option<String>,
    /// When it was added.
    pub created_at: NaiveDateTime,
}

/// Registers a feed; `Ok(None)` when the newsletter has it already.
pub fn add(
    conn: &mut DbConnection,
    newsletter_id: i64,
    url: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Feed>> {
    on_backend!(conn, c => diesel::insert_into(feeds::table)
        .values((
            feeds::newsletter_id.eq(newsletter_id),
            feeds::url.eq(url),
            feeds::created_at.eq(now),
        ))
        .on_conflict((feeds::newsletter_id, feeds::url))
        .do_nothing()
        // Whole rows: the derived select cannot be typed for both backends at once.
        .returning(feeds::all_columns)
        .get_result::<Feed>(c)
        .optional())
}

/// Every feed, oldest first.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<Feed>> {
    feeds::table
        .order(feeds::id.asc())
        .select(Feed::as_select())
        .load(conn)
}

/// Every feed with its newsletter's slug, by newsletter then age.
pub fn all_with_newsletter(conn: &mut DbConnection) -> QueryResult<Vec<(Feed, String)>> {
    feeds::table
        .inner_join(newsletters::table)
        .order((newsletters::id.asc(), feeds::id.asc()))
        .select((Feed::as_select(), newsletters::slug))
        .load(conn)
}

/// Removes the feed with this URL from one newsletter, or from every newsletter when
/// `newsletter_id` is `None`; returns the slugs it was removed from.
pub fn remove(
    conn: &mut DbConnection,
    url: &str,
    newsletter_id: Option<i64>,
) -> QueryResult<Vec<String>> {
    super::write_transaction(conn, |conn| {
        let found: Vec<(i64, String)> = feeds::table
            .inner_join(newsletters::table)
            .filter(feeds::url.eq(url))
            .select((feeds::id, feeds::newsletter_id, newsletters::slug))
            .load::<(i64, i64, String)>(conn)?
            .into_iter()
            .filter(|(_, owner, _)| newsletter_id.is_none_or(|id| id == *owner))
            .map(|(id, _, slug)| (id, slug))
            .collect();
        let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
        diesel::delete(feeds::table.filter(feeds::id.eq_any(&ids))).execute(conn)?;
        Ok(found.into_iter().map(|(_, slug)| slug).collect())
    })
}

/// Records a poll the server answered with 304 Not Modified: a success that stores
/// nothing new.
pub fn record_not_modified(
    conn: &mut DbConnection,
    id: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(feeds::table.find(id))
        .set((
            feeds::last_polled_at.eq(now),
            feeds::last_success_at.eq(now),
            feeds::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a poll that read the feed, with the validators for the next conditional GET.
pub fn record_success(
    conn: &mut DbConnection,
    id: i64,
    etag: Option<&str>,
    last_modified: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(feeds::table.find(id))
        .set((
            feeds::etag.eq(etag),
            feeds::last_modified.eq(last_modified),
            feeds::last_polled_at.eq(now),
            feeds::last_success_at.eq(now),
            feeds::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a failed poll; the validators stay, so the next poll is still conditional.
pub fn record_failure(
    conn: &mut DbConnection,
    id: i64,
    error: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    diesel::update(feeds::table.find(id))
        .set((feeds::last_polled_at.eq(now), feeds::last_error.eq(error)))
        .execute(conn)?;
    Ok(())
}

/// The feed with this id.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Feed>> {
    feeds::table
        .find(id)
        .select(Feed::as_select())
        .first(conn)
        .optional()
}

/// Removes one feed by id; false when it did not exist.
pub fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    Ok(diesel::delete(feeds::table.find(id)).execute(conn)? > 0)
}
