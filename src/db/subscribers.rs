//! Subscribers: one row per address, with what an operator searches, exports and erases.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{newsletters, subscribers, subscriptions};
use super::states::{EmailKind, EmailStatus, SubscriptionStatus};
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
    /// `SubscriberEmail::mailbox_key`: what the limits on confirmation emails count.
    pub mailbox_key: Option<String>,
}

/// A subscriber to create.
#[derive(Debug, Insertable)]
#[diesel(table_name = subscribers)]
pub struct NewSubscriber<'a> {
    /// Address as entered, domain lower-cased.
    pub email: &'a str,
    /// Lower-cased address.
    pub email_key: &'a str,
    /// `SubscriberEmail::mailbox_key`.
    pub mailbox_key: &'a str,
    /// Optional name.
    pub name: Option<&'a str>,
    /// Client IP.
    pub signup_ip: Option<&'a str>,
    /// Now.
    pub created_at: NaiveDateTime,
    /// Now.
    pub updated_at: NaiveDateTime,
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
        .returning(Subscriber::as_returning())
        .get_result(c)
        .optional())
}

/// The subscriber with this id.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .find(id)
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(fragment: &str) -> String {
    let mut pattern = String::with_capacity(fragment.len() + 2);
    pattern.push('%');
    for c in fragment.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Subscribers whose address contains `fragment` (any case), newest first; every
/// subscriber when `fragment` is `None`. Returns the page and the number of matches.
pub fn search(
    conn: &mut DbConnection,
    fragment: Option<&str>,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Subscriber>, i64)> {
    let filtered = || {
        let mut query = subscribers::table.into_boxed();
        if let Some(fragment) = fragment {
            query = query.filter(
                subscribers::email_key
                    .like(like_pattern(&fragment.to_lowercase()))
                    .escape('\\'),
            );
        }
        query
    };
    let total = filtered().count().get_result(conn)?;
    let page = filtered()
        // Ids grow with signup time, and the primary key needs no sort: ordering by
        // `created_at` sorted a million rows for every page.
        .order(subscribers::id.desc())
        .offset(offset)
        .limit(limit)
        .select(Subscriber::as_select())
        .load(conn)?;
    Ok((page, total))
}

/// The subscriber with this address (any case).
pub fn find_by_key(conn: &mut DbConnection, email_key: &str) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .filter(subscribers::email_key.eq(email_key))
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

/// One email queued for a subscriber, as their history shows it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = super::schema::outbound_emails)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// What it was for.
    pub kind: EmailKind,
    /// Subject line.
    pub subject: String,
    /// Where it stands.
    pub status: EmailStatus,
    /// Attempts made.
    pub attempts: i32,
    /// Queued.
    pub created_at: NaiveDateTime,
    /// Sent or given up.
    pub finished_at: Option<NaiveDateTime>,
    /// The server's last reply on failure.
    pub last_error: Option<String>,
}

/// The subscriber's latest `limit` emails, newest first, and how many there are in all.
pub fn deliveries_of(
    conn: &mut DbConnection,
    subscriber_id: i64,
    limit: i64,
) -> QueryResult<(Vec<Delivery>, i64)> {
    use super::schema::outbound_emails;
    let total = outbound_emails::table
        .filter(outbound_emails::subscriber_id.eq(subscriber_id))
        .count()
        .get_result(conn)?;
    let latest = outbound_emails::table
        .filter(outbound_emails::subscriber_id.eq(subscriber_id))
        .order(outbound_emails::id.desc())
        .limit(limit)
        .select(Delivery::as_select())
        .load(conn)?;
    Ok((latest, total))
}

/// Everything one erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Emails, queued or finished.
    pub emails: usize,
    /// Confirmation tokens.
    pub tokens: usize,
    /// Subscriptions.
    pub subscriptions: usize,
}

/// Deletes the subscriber and every row about them: emails to them (by subscriber and by
/// address, so rows whose subscriber link was already cut go too, and a queued one can
/// never be sent), confirmation tokens, subscriptions, and their mailbox's row unless
/// another spelling of it is still subscribed. The caller gives the transaction.
pub fn delete_everything(conn: &mut DbConnection, subscriber: &Subscriber) -> QueryResult<Erased> {
    use super::schema::{confirmation_tokens, outbound_emails};
    let addresses = [subscriber.email.as_str(), subscriber.email_key.as_str()];
    let emails = diesel::delete(
        outbound_emails::table.filter(
            outbound_emails::subscriber_id
                .eq(subscriber.id)
                .or(outbound_emails::recipient_email.eq_any(addresses))
                .or(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("LOWER(recipient_email) = ")
                        .bind::<diesel::sql_types::Text, _>(subscriber.email_key.as_str()),
                ),
        ),
    )
    .execute(conn)?;
    let tokens = diesel::delete(
        confirmation_tokens::table.filter(confirmation_tokens::subscriber_id.eq(subscriber.id)),
    )
    .execute(conn)?;
    let subscriptions =
        diesel::delete(subscriptions::table.filter(subscriptions::subscriber_id.eq(subscriber.id)))
            .execute(conn)?;
    diesel::delete(subscribers::table.find(subscriber.id)).execute(conn)?;
    // The mailbox's row holds the address too (as its key): it goes with the last
    // subscriber of that mailbox.
    if let Some(mailbox_key) = &subscriber.mailbox_key {
        use super::schema::mailboxes;
        let shared = subscribers::table
            .filter(subscribers::mailbox_key.eq(mailbox_key))
            .count()
            .get_result::<i64>(conn)?;
        if shared == 0 {
            diesel::delete(mailboxes::table.find(mailbox_key)).execute(conn)?;
        }
    }
    Ok(Erased {
        emails,
        tokens,
        subscriptions,
    })
}

/// Records why the subscriber may be mailed without a double opt-in, unless a note is
/// already there (the first consent recorded stays).
pub fn note_consent(conn: &mut DbConnection, subscriber_id: i64, note: &str) -> QueryResult<()> {
    diesel::update(
        subscribers::table
            .find(subscriber_id)
            .filter(subscribers::consent_note.is_null()),
    )
    .set(subscribers::consent_note.eq(note))
    .execute(conn)?;
    Ok(())
}

/// One subscription as the CSV export writes it.
#[derive(Debug, Clone, Queryable)]
pub struct ExportRow {
    /// Subscription id (the export's keyset cursor).
    pub subscription_id: i64,
    /// Address.
    pub email: String,
    /// Name.
    pub name: Option<String>,
    /// Newsletter slug.
    pub newsletter: String,
    /// Status.
    pub status: SubscriptionStatus,
    /// Signed up.
    pub subscribed_at: NaiveDateTime,
    /// Confirmed.
    pub confirmed_at: Option<NaiveDateTime>,
    /// Unsubscribed.
    pub unsubscribed_at: Option<NaiveDateTime>,
    /// Signup IP.
    pub signup_ip: Option<String>,
    /// Consent note.
    pub consent_note: Option<String>,
}

/// Up to `limit` subscriptions after subscription id `after`, in id order: a keyset page,
/// so each batch costs the same however deep into the list it is.
pub fn export_batch(
    conn: &mut DbConnection,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<ExportRow>> {
    subscriptions::table
        .inner_join(subscribers::table)
        .inner_join(newsletters::table)
        .filter(subscriptions::id.gt(after))
        .order(subscriptions::id.asc())
        .limit(limit)
        .select((
            subscriptions::id,
            subscribers::email,
            subscribers::name,
            newsletters::slug,
            subscriptions::status,
            subscriptions::created_at,
            subscriptions::confirmed_at,
            subscriptions::unsubscribed_at,
            subscribers::signup_ip,
            subscribers::consent_note,
        ))
        .load(conn)
}

/// The subscribers with these addresses (lower-cased keys).
pub fn by_keys(conn: &mut DbConnection, email_keys: &[String]) -> QueryResult<Vec<Subscriber>> {
    subscribers::table
        .filter(subscribers::email_key.eq_any(email_keys))
        .select(Subscriber::as_select())
        .load(conn)
}
