//! Newsletters: what a reader can subscribe to.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::newsletters;
use super::states::SubscriptionStatus;

/// A newsletter as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = newsletters)]
pub struct Newsletter {
    /// Row id.
    pub id: i64,
    /// URL-safe name, e.g. `space-daily`.
    pub slug: String,
    /// Shown to readers, e.g. "Space Daily".
    pub title: String,
    /// One line for the signup form.
    pub description: String,
    /// Daily send time, `HH:MM`.
    pub send_at: String,
    /// IANA time zone of the send time and of "the day".
    pub timezone: String,
    /// When it was created.
    pub created_at: NaiveDateTime,
}

/// A newsletter to create.
#[derive(Debug, Insertable)]
#[diesel(table_name = newsletters)]
pub struct NewNewsletter<'a> {
    /// URL-safe name.
    pub slug: &'a str,
    /// Title.
    pub title: &'a str,
    /// Description.
    pub description: &'a str,
    /// `HH:MM`.
    pub send_at: &'a str,
    /// IANA zone.
    pub timezone: &'a str,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// Every newsletter, oldest first (the default one leads the form).
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<Newsletter>> {
    newsletters::table
        .order(newsletters::id.asc())
        .select(Newsletter::as_select())
        .load(conn)
}

/// The newsletters with these slugs (unknown slugs are simply absent from the answer).
pub fn by_slugs(conn: &mut DbConnection, slugs: &[String]) -> QueryResult<Vec<Newsletter>> {
    newsletters::table
        .filter(newsletters::slug.eq_any(slugs))
        .order(newsletters::id.asc())
        .select(Newsletter::as_select())
        .load(conn)
}

/// Creates a newsletter; `Ok(None)` when the slug is taken.
pub fn create(conn: &mut DbConnection, new: &NewNewsletter<'_>) -> QueryResult<Option<Newsletter>> {
    let inserted = diesel::insert_into(newsletters::table)
        .values(new)
        // Whole rows: MultiBackend cannot type `as_returning()` on the derived select.
        .returning(newsletters::all_columns)
        .get_result(conn);
    match inserted {
        Ok(newsletter) => Ok(Some(newsletter)),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The newsletter with this id.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Newsletter>> {
    newsletters::table
        .find(id)
        .select(Newsletter::as_select())
        .first(conn)
        .optional()
}

/// What an operator may change about a newsletter (the slug is fixed: it is in URLs and
/// in every digest's `List-Id`).
#[derive(Debug, AsChangeset)]
#[diesel(table_name = newsletters)]
pub struct NewsletterChanges<'a> {
    /// Title.
    pub title: &'a str,
    /// Description.
    pub description: &'a str,
    /// `HH:MM`.
    pub send_at: &'a str,
    /// IANA zone.
    pub timezone: &'a str,
}

/// Applies changes; false when the newsletter no longer exists.
pub fn update(
    conn: &mut DbConnection,
    id: i64,
    changes: &NewsletterChanges<'_>,
) -> QueryResult<bool> {
    Ok(diesel::update(newsletters::table.find(id))
        .set(changes)
        .execute(conn)?
        > 0)
}

/// Confirmed subscribers per newsletter id (newsletters without any are absent).
pub fn confirmed_counts(conn: &mut DbConnection) -> QueryResult<Vec<(i64, i64)>> {
    use super::schema::subscriptions;
    subscriptions::table
        .filter(subscriptions::status.eq(SubscriptionStatus::Confirmed))
        .group_by(subscriptions::newsletter_id)
        .select((subscriptions::newsletter_id, diesel::dsl::count_star()))
        .load(conn)
}
