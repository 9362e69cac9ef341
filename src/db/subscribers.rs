//! Subscribers (one row per address) and their subscriptions (one per newsletter).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{newsletters, subscribers, subscriptions};
use super::{DbConnection, newsletters::Newsletter};
use crate::on_backend;

/// A reader's address and details.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subscribers)]
pub struct Subscriber {
    /// Row id.
    pub id: i64,
    /// The address as entered, domain lower-cased.
    pub email: String,
    /// The whole address lower-cased: one subscriber per mailbox.
    pub email_key: String,
    /// Optional name.
    pub name: Option<String>,
    /// Client IP of the latest unconfirmed signup.
    pub signup_ip: Option<String>,
    /// First signup.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
    /// Consent recorded by an operator who imported the address as confirmed.
    pub consent_note: Option<String>,
}

/// A subscriber to create.
#[derive(Debug, Insertable)]
#[diesel(table_name = subscribers)]
pub struct NewSubscriber<'a> {
    /// Address as entered, domain lower-cased.
    pub email: &'a str,
    /// Lower-cased address.
    pub email_key: &'a str,
    /// Optional name.
    pub name: Option<&'a str>,
    /// Client IP.
    pub signup_ip: Option<&'a str>,
    /// Now.
    pub created_at: NaiveDateTime,
    /// Now.
    pub updated_at: NaiveDateTime,
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Signed up, not yet confirmed: receives nothing but the confirmation email.
    Pending,
    /// Confirmed: receives the newsletter.
    Confirmed,
    /// Left: receives nothing until a new double opt-in.
    Unsubscribed,
}

impl Status {
    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Unsubscribed => "unsubscribed",
        }
    }

    fn from_stored(s: &str) -> Self {
        match s {
            "confirmed" => Self::Confirmed,
            "unsubscribed" => Self::Unsubscribed,
            // The CHECK constraint admits only the three values.
            _ => Self::Pending,
        }
    }
}

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
    /// Stored status text; see [`Subscription::status`].
    pub status: String,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Confirmed (latest).
    pub confirmed_at: Option<NaiveDateTime>,
    /// Unsubscribed (latest).
    pub unsubscribed_at: Option<NaiveDateTime>,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

impl Subscription {
    /// The status as a type.
    pub fn status(&self) -> Status {
        Status::from_stored(&self.status)
    }
}

#[derive(Insertable)]
#[diesel(table_name = subscriptions)]
struct NewSubscription<'a> {
    subscriber_id: i64,
    newsletter_id: i64,
    status: &'a str,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// Inserts the subscriber unless the address is already known; returns the new row, or
/// `None` when the address was known.
pub fn insert_if_absent(
    conn: &mut DbConnection,
    new: &NewSubscriber<'_>,
) -> QueryResult<Option<Subscriber>> {
    on_backend!(conn, c => diesel::insert_into(subscribers::table)
        .values(new)
        .on_conflict(subscribers::email_key)
        .do_nothing()
        .returning(subscribers::all_columns)
        .get_result(c)
        .optional())
}

/// Returns the subscriber with this key, holding its row lock until the transaction ends,
/// so concurrent signups of one address are handled one after the other.
pub fn lock_by_key(
    conn: &mut DbConnection,
    email_key: &str,
    now: NaiveDateTime,
) -> QueryResult<Subscriber> {
    diesel::update(subscribers::table.filter(subscribers::email_key.eq(email_key)))
        .set(subscribers::updated_at.eq(now))
        .returning(subscribers::all_columns)
        .get_result(conn)
}

/// Replaces the name and signup IP.
pub fn update_details(
    conn: &mut DbConnection,
    id: i64,
    name: Option<&str>,
    signup_ip: Option<&str>,
) -> QueryResult<()> {
    diesel::update(subscribers::table.find(id))
        .set((
            subscribers::name.eq(name),
            subscribers::signup_ip.eq(signup_ip),
        ))
        .execute(conn)?;
    Ok(())
}

/// The subscriber with this id.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .find(id)
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

/// Every subscription of a subscriber.
pub fn subscriptions_of(
    conn: &mut DbConnection,
    subscriber_id: i64,
) -> QueryResult<Vec<Subscription>> {
    subscriptions::table
        .filter(subscriptions::subscriber_id.eq(subscriber_id))
        .order(subscriptions::newsletter_id.asc())
        .select(Subscription::as_select())
        .load(conn)
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
        .filter(subscriptions::status.eq(status.as_str()))
        .order(newsletters::id.asc())
        .select(Newsletter::as_select())
        .load(conn)
}

/// Adds a pending subscription.
pub fn insert_pending(
    conn: &mut DbConnection,
    subscriber_id: i64,
    newsletter_id: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(subscriptions::table)
        .values(NewSubscription {
            subscriber_id,
            newsletter_id,
            status: Status::Pending.as_str(),
            created_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    Ok(())
}

/// Puts an unsubscribed subscription back to pending: leaving and coming back means a
/// new double opt-in.
pub fn reopen(
    conn: &mut DbConnection,
    subscription_id: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        subscriptions::table
            .find(subscription_id)
            .filter(subscriptions::status.eq(Status::Unsubscribed.as_str())),
    )
    .set((
        subscriptions::status.eq(Status::Pending.as_str()),
        subscriptions::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// Confirms every pending subscription of the subscriber; returns their newsletter ids.
pub fn confirm_pending(
    conn: &mut DbConnection,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Vec<(i64, i64)>> {
    diesel::update(
        subscriptions::table
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .filter(subscriptions::status.eq(Status::Pending.as_str())),
    )
    .set((
        subscriptions::status.eq(Status::Confirmed.as_str()),
        subscriptions::confirmed_at.eq(now),
        subscriptions::updated_at.eq(now),
    ))
    .returning((subscriptions::id, subscriptions::newsletter_id))
    .get_results(conn)
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
            .filter(subscriptions::status.ne(Status::Unsubscribed.as_str())),
    )
    .set((
        subscriptions::status.eq(Status::Unsubscribed.as_str()),
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
            .filter(subscriptions::status.ne(Status::Unsubscribed.as_str())),
    )
    .set((
        subscriptions::status.eq(Status::Unsubscribed.as_str()),
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
