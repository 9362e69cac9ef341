//! Subscriptions: one subscriber's relation to one newsletter, and how it moves between
//! pending, confirmed and unsubscribed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::newsletters::Newsletter;
use super::schema::{newsletters, subscribers, subscriptions};
use super::states::SubscriptionStatus as Status;
use super::subscribers::Subscriber;

/// One subscriber's relation to one newsletter.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subscriptions)]
pub struct Subscription {
    /// Row id.
    pub id: i64,
    /// Who.
    pub subscriber_id: i64,
    /// To what.
    pub newsletter_id: i64,
    /// Where it stands.
    pub status: Status,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Confirmed (latest).
    pub confirmed_at: Option<NaiveDateTime>,
    /// Unsubscribed (latest).
    pub unsubscribed_at: Option<NaiveDateTime>,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = subscriptions)]
struct NewSubscription {
    subscriber_id: i64,
    newsletter_id: i64,
    status: Status,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// Titles of the subscriber's newsletters in one status, in form order.
pub fn newsletters_with_status(
    conn: &mut DbConnection,
    subscriber_id: i64,
    status: Status,
) -> QueryResult<Vec<Newsletter>> {
    subscriptions::table
        .inner_join(newsletters::table)
        .filter(subscriptions::subscriber_id.eq(subscriber_id))
        .filter(subscriptions::status.eq(status))
        .order(newsletters::id.asc())
        .select(Newsletter::as_select())
        .load(conn)
}

/// Confirms the subscriber's pending subscriptions that await this link, and no others:
/// (subscription id, newsletter id) of each.
pub fn confirm_awaiting(
    conn: &mut DbConnection,
    subscriber_id: i64,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<(i64, i64)>> {
    diesel::update(
        subscriptions::table
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .filter(subscriptions::status.eq(Status::Pending))
            .filter(subscriptions::confirmation_token_hash.eq(token_hash)),
    )
    .set((
        subscriptions::status.eq(Status::Confirmed),
        subscriptions::confirmed_at.eq(now),
        subscriptions::updated_at.eq(now),
        subscriptions::confirmation_token_hash.eq(None::<String>),
    ))
    .returning((subscriptions::id, subscriptions::newsletter_id))
    .get_results(conn)
}

/// The newsletters, in form order, whose pending subscriptions this link would confirm.
pub fn awaiting(
    conn: &mut DbConnection,
    subscriber_id: i64,
    token_hash: &str,
) -> QueryResult<Vec<Newsletter>> {
    subscriptions::table
        .inner_join(newsletters::table)
        .filter(subscriptions::subscriber_id.eq(subscriber_id))
        .filter(subscriptions::status.eq(Status::Pending))
        .filter(subscriptions::confirmation_token_hash.eq(token_hash))
        .order(newsletters::id.asc())
        .select(Newsletter::as_select())
        .load(conn)
}

/// Unsubscribes one subscription; false when it was not subscribed (idempotent).
pub fn unsubscribe_one(
    conn: &mut DbConnection,
    subscription_id: i64,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        subscriptions::table
            .find(subscription_id)
            .filter(subscriptions::status.ne(Status::Unsubscribed)),
    )
    .set((
        subscriptions::status.eq(Status::Unsubscribed),
        subscriptions::unsubscribed_at.eq(now),
        subscriptions::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed > 0)
}

/// Unsubscribes every subscription of a subscriber.
pub fn unsubscribe_all(
    conn: &mut DbConnection,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        subscriptions::table
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .filter(subscriptions::status.ne(Status::Unsubscribed)),
    )
    .set((
        subscriptions::status.eq(Status::Unsubscribed),
        subscriptions::unsubscribed_at.eq(now),
        subscriptions::updated_at.eq(now),
    ))
    .execute(conn)
}

/// A subscription with its subscriber and newsletter.
pub fn find_subscription(
    conn: &mut DbConnection,
    subscription_id: i64,
) -> QueryResult<Option<(Subscription, Subscriber, Newsletter)>> {
    subscriptions::table
        .inner_join(subscribers::table)
        .inner_join(newsletters::table)
        .filter(subscriptions::id.eq(subscription_id))
        .select((
            Subscription::as_select(),
            Subscriber::as_select(),
            Newsletter::as_select(),
        ))
        .first(conn)
        .optional()
}

/// The subscriptions of these subscribers with their newsletters, in newsletter order.
pub fn subscriptions_with_newsletters(
    conn: &mut DbConnection,
    subscriber_ids: &[i64],
) -> QueryResult<Vec<(Subscription, Newsletter)>> {
    subscriptions::table
        .inner_join(newsletters::table)
        .filter(subscriptions::subscriber_id.eq_any(subscriber_ids))
        .order((subscriptions::subscriber_id, newsletters::id))
        .select((Subscription::as_select(), Newsletter::as_select()))
        .load(conn)
}

/// Adds a confirmed subscription (an operator's import with recorded consent).
pub fn insert_confirmed(
    conn: &mut DbConnection,
    subscriber_id: i64,
    newsletter_id: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(subscriptions::table)
        .values((
            subscriptions::subscriber_id.eq(subscriber_id),
            subscriptions::newsletter_id.eq(newsletter_id),
            subscriptions::status.eq(Status::Confirmed),
            subscriptions::created_at.eq(now),
            subscriptions::confirmed_at.eq(now),
            subscriptions::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Confirms one pending subscription.
pub fn confirm_one(
    conn: &mut DbConnection,
    subscription_id: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        subscriptions::table
            .find(subscription_id)
            .filter(subscriptions::status.eq(Status::Pending)),
    )
    .set((
        subscriptions::status.eq(Status::Confirmed),
        subscriptions::confirmed_at.eq(now),
        subscriptions::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// These subscribers' subscriptions to one newsletter.
pub fn subscriptions_to(
    conn: &mut DbConnection,
    subscriber_ids: &[i64],
    newsletter_id: i64,
) -> QueryResult<Vec<Subscription>> {
    subscriptions::table
        .filter(subscriptions::subscriber_id.eq_any(subscriber_ids))
        .filter(subscriptions::newsletter_id.eq(newsletter_id))
        .select(Subscription::as_select())
        .load(conn)
}
