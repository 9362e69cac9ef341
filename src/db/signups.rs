//! A signup's writes on PostgreSQL in one statement each.
//!
//! A brand-new reader's subscriber, pending subscriptions, confirmation token and queued
//! confirmation email go in through data-modifying CTEs: one round trip instead of six.
//! When the address is already known the same statement locks its subscriber row
//! instead; the caller reads its subscriptions, and [`write_known`] writes what it decided,
//! limits applied, again in one round trip. SQLite has no data-modifying CTEs; there each
//! step is its own statement, which is cheap, as it runs in-process.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamp};

use super::outbound::{EmailKind, status};
use super::subscribers::{Status, Subscriber};

mod known;

pub use known::{Confirmation, KnownSignup, Limits, write_known};

/// Everything a new reader's signup writes.
#[derive(Debug)]
pub struct NewSignup<'a> {
    /// Address as given.
    pub email: &'a str,
    /// Case-folded address, the unique key.
    pub email_key: &'a str,
    /// Optional name.
    pub name: Option<&'a str>,
    /// Client IP.
    pub signup_ip: Option<&'a str>,
    /// The newsletters asked for.
    pub newsletter_ids: Vec<i64>,
    /// SHA-256 of the confirmation token.
    pub token_hash: &'a str,
    /// When the token stops working.
    pub expires_at: NaiveDateTime,
    /// Confirmation email subject.
    pub subject: &'a str,
    /// Its plain text.
    pub body_text: &'a str,
    /// Its HTML.
    pub body_html: &'a str,
    /// Its `Message-ID`.
    pub message_id: &'a str,
    /// Now.
    pub now: NaiveDateTime,
}

/// The statement, with `{}` where each bind goes. Built as a query fragment rather than
/// `sql_query` so that diesel prepares it once per connection: PostgreSQL would otherwise
/// parse and plan four inserts for every signup.
///
/// A known address's row is updated (`updated_at`) rather than skipped, which takes its
/// row lock: concurrent signups of one address then wait for each other, and the caller's
/// next statements, with snapshots taken after the lock, see what the earlier one wrote.
const INSERT_NEW_SIGNUP: &str = "
WITH subscriber AS (
    INSERT INTO subscribers (email, email_key, name, signup_ip, created_at, updated_at)
    VALUES ({}, {}, {}, {}, {}, {})
    ON CONFLICT (email_key) DO UPDATE SET updated_at = EXCLUDED.updated_at
    RETURNING id, email, email_key, name, signup_ip, created_at, updated_at, consent_note,
              xmax = 0 AS inserted
), added AS (
    INSERT INTO subscriptions (subscriber_id, newsletter_id, status, created_at, updated_at)
    SELECT subscriber.id, newsletter_id, {}, {}, {}
    FROM subscriber, unnest({}::bigint[]) AS newsletter_id WHERE subscriber.inserted
), token AS (
    INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
    SELECT {}, id, {}, {} FROM subscriber WHERE inserted
), queued AS (
    INSERT INTO outbound_emails (kind, subscriber_id, recipient_email, recipient_name, subject,
                                 body_text, body_html, message_id, status, next_attempt_at,
                                 created_at)
    SELECT {}, id, email, name, {}, {}, {}, {}, {}, {}, {} FROM subscriber WHERE inserted
)
SELECT id, email, email_key, name, signup_ip, created_at, updated_at, consent_note, inserted
FROM subscriber";

/// [`INSERT_NEW_SIGNUP`] with its binds.
struct InsertNewSignup<'s, 'a>(&'s NewSignup<'a>);

impl QueryId for InsertNewSignup<'_, '_> {
    type QueryId = ();
    // No static id: diesel keys its statement cache on the SQL text instead.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for InsertNewSignup<'_, '_> {
    type SqlType = (
        BigInt,
        Text,
        Text,
        Nullable<Text>,
        Nullable<Text>,
        Timestamp,
        Timestamp,
        Nullable<Text>,
        Bool,
    );
}

impl RunQueryDsl<PgConnection> for InsertNewSignup<'_, '_> {}

impl QueryFragment<Pg> for InsertNewSignup<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let s = self.0;
        let mut pieces = INSERT_NEW_SIGNUP.split("{}");
        let mut sql = |out: &mut AstPass<'_, 'b, Pg>| {
            out.push_sql(pieces.next().unwrap_or_default());
        };
        sql(&mut out);
        out.push_bind_param::<Text, _>(&s.email)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&s.email_key)?;
        sql(&mut out);
        out.push_bind_param::<Nullable<Text>, _>(&s.name)?;
        sql(&mut out);
        out.push_bind_param::<Nullable<Text>, _>(&s.signup_ip)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&PENDING_SUBSCRIPTION)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Array<BigInt>, _>(&s.newsletter_ids)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&s.token_hash)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.expires_at)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&CONFIRMATION)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&s.subject)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&s.body_text)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&s.body_html)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&s.message_id)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&status::PENDING)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        Ok(())
    }
}

const PENDING_SUBSCRIPTION: &str = Status::Pending.as_str();
const CONFIRMATION: &str = EmailKind::Confirmation.as_str();

/// Writes a new reader's signup, or locks the subscriber row of a known address (and
/// writes nothing else): the subscriber, and whether it is new.
pub fn upsert(conn: &mut PgConnection, signup: &NewSignup<'_>) -> QueryResult<(Subscriber, bool)> {
    type Row = (
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        NaiveDateTime,
        NaiveDateTime,
        Option<String>,
        bool,
    );
    let (id, email, email_key, name, signup_ip, created_at, updated_at, consent_note, inserted): Row =
        InsertNewSignup(signup).get_result(conn)?;
    let subscriber = Subscriber {
        id,
        email,
        email_key,
        name,
        signup_ip,
        created_at,
        updated_at,
        consent_note,
    };
    Ok((subscriber, inserted))
}

#[cfg(test)]
mod tests {
    use super::INSERT_NEW_SIGNUP;

    #[test]
    fn the_statement_has_a_place_for_each_of_its_21_binds() {
        assert_eq!(INSERT_NEW_SIGNUP.matches("{}").count(), 21);
    }
}
