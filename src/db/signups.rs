//! A brand-new reader's signup on PostgreSQL in one statement.
//!
//! The subscriber, their pending subscriptions, the confirmation token and the queued
//! confirmation email go in through data-modifying CTEs: one round trip and one implicit
//! transaction instead of eight. When the address is already known nothing is written and
//! `None` comes back; the caller then takes the general path. SQLite has no
//! data-modifying CTEs; there the general path is cheap, as it runs in-process.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};

use super::outbound::{EmailKind, status};
use super::subscribers::Status;

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

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

const INSERT_NEW_SIGNUP: &str = "
WITH new_subscriber AS (
    INSERT INTO subscribers (email, email_key, name, signup_ip, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $5)
    ON CONFLICT (email_key) DO NOTHING
    RETURNING id, email
), added AS (
    INSERT INTO subscriptions (subscriber_id, newsletter_id, status, created_at, updated_at)
    SELECT new_subscriber.id, newsletter_id, $6, $5, $5
    FROM new_subscriber, unnest($7::bigint[]) AS newsletter_id
), token AS (
    INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
    SELECT $8, id, $5, $9 FROM new_subscriber
), queued AS (
    INSERT INTO outbound_emails (kind, subscriber_id, recipient_email, recipient_name, subject,
                                 body_text, body_html, message_id, status, next_attempt_at,
                                 created_at)
    SELECT $10, id, email, $3, $11, $12, $13, $14, $15, $5, $5 FROM new_subscriber
)
SELECT id FROM new_subscriber";

/// Writes a new reader's signup; `None` (and nothing written) if the address is known.
pub fn insert_new(conn: &mut PgConnection, signup: &NewSignup<'_>) -> QueryResult<Option<i64>> {
    diesel::sql_query(INSERT_NEW_SIGNUP)
        .bind::<Text, _>(signup.email)
        .bind::<Text, _>(signup.email_key)
        .bind::<Nullable<Text>, _>(signup.name)
        .bind::<Nullable<Text>, _>(signup.signup_ip)
        .bind::<Timestamp, _>(signup.now)
        .bind::<Text, _>(Status::Pending.as_str())
        .bind::<Array<BigInt>, _>(&signup.newsletter_ids)
        .bind::<Text, _>(signup.token_hash)
        .bind::<Timestamp, _>(signup.expires_at)
        .bind::<Text, _>(EmailKind::Confirmation.as_str())
        .bind::<Text, _>(signup.subject)
        .bind::<Text, _>(signup.body_text)
        .bind::<Text, _>(signup.body_html)
        .bind::<Text, _>(signup.message_id)
        .bind::<Text, _>(status::PENDING)
        .get_result::<Inserted>(conn)
        .optional()
        .map(|row| row.map(|row| row.id))
}
