//! A known address's signup: what it changes, written in one statement on PostgreSQL.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamp};

use super::{CONFIRMATION, PENDING_SUBSCRIPTION};
use crate::db::outbound::{self, EmailKind, NewOutboundEmail, status};
use crate::db::subscribers::{self, Status};
use crate::db::{DbConnection, confirmation_tokens};

/// What a signup of a known address changes, decided after its subscriber row was locked.
#[derive(Debug)]
pub struct KnownSignup<'a> {
    /// The subscriber.
    pub subscriber_id: i64,
    /// A new name and signup IP, unless a confirmed reader must keep theirs.
    pub details: Option<(Option<&'a str>, Option<&'a str>)>,
    /// Unsubscribed subscriptions (ids) to put back to pending.
    pub reopen: &'a [i64],
    /// Newsletters (ids) to add pending subscriptions to.
    pub add: &'a [i64],
    /// Now.
    pub now: NaiveDateTime,
    /// When the confirmation may go out.
    pub limits: Limits,
    /// The confirmation to send, replacing any unused token, unless the limits say not now.
    pub confirmation: Confirmation<'a>,
}

/// The per-address limits on confirmation emails, as the queue's rows show them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Emails queued after this count towards the day's cap.
    pub counted_since: NaiveDateTime,
    /// The cap.
    pub per_day: i64,
    /// The latest email must be from before this.
    pub last_sent_before: NaiveDateTime,
}

/// A confirmation email and the token its link carries.
#[derive(Debug)]
pub struct Confirmation<'a> {
    /// SHA-256 of the token.
    pub token_hash: &'a str,
    /// When the token stops working.
    pub expires_at: NaiveDateTime,
    /// Envelope and `To` address.
    pub recipient_email: &'a str,
    /// `To` display name.
    pub recipient_name: Option<&'a str>,
    /// Subject.
    pub subject: &'a str,
    /// Plain text.
    pub body_text: &'a str,
    /// HTML.
    pub body_html: &'a str,
    /// `Message-ID`.
    pub message_id: &'a str,
}

/// Writes a known address's signup: one statement on PostgreSQL, one per step on SQLite.
/// True when the confirmation was queued, false when the limits held it back.
pub fn write_known(conn: &mut DbConnection, signup: &KnownSignup<'_>) -> QueryResult<bool> {
    if let DbConnection::Pg(pg) = conn {
        return WriteKnownSignup(&KnownBinds::of(signup)).get_result(pg);
    }
    let id = signup.subscriber_id;
    let limits = signup.limits;
    let (sent_today, latest) =
        outbound::recent_for_subscriber(conn, id, EmailKind::Confirmation, limits.counted_since)?;
    let send = sent_today < limits.per_day && latest.is_none_or(|at| at <= limits.last_sent_before);
    if let Some((name, ip)) = signup.details {
        subscribers::update_details(conn, id, name, ip)?;
    }
    for &subscription in signup.reopen {
        subscribers::reopen(conn, subscription, signup.now)?;
    }
    for &newsletter in signup.add {
        subscribers::insert_pending(conn, id, newsletter, signup.now)?;
    }
    if send {
        let c = &signup.confirmation;
        confirmation_tokens::replace(conn, id, c.token_hash, signup.now, c.expires_at)?;
        outbound::enqueue(
            conn,
            &NewOutboundEmail {
                kind: CONFIRMATION,
                subscriber_id: Some(id),
                recipient_email: c.recipient_email,
                recipient_name: c.recipient_name,
                subject: c.subject,
                body_text: c.body_text,
                body_html: c.body_html,
                list_unsubscribe: None,
                message_id: c.message_id,
                status: status::PENDING,
                next_attempt_at: signup.now,
                created_at: signup.now,
            },
        )?;
    }
    Ok(send)
}

/// [`write_known`]'s statement. Each part is switched off by an empty array or a false
/// flag rather than left out, so the text is always the same and prepared once. `send`
/// applies the limits to the queue as it stands: the row lock taken before makes a
/// concurrent signup of the address wait until this one has committed.
const WRITE_KNOWN_SIGNUP: &str = "
WITH recent AS (
    SELECT count(*) AS queued, max(created_at) AS latest FROM outbound_emails
    WHERE subscriber_id = {} AND kind = {} AND created_at > {}
), send AS (
    SELECT queued < {} AND (latest IS NULL OR latest <= {}) AS yes FROM recent
), details AS (
    UPDATE subscribers SET name = {}, signup_ip = {} WHERE id = {} AND {}
), reopened AS (
    UPDATE subscriptions SET status = {}, updated_at = {}
    WHERE id = ANY({}::bigint[]) AND status = {}
), added AS (
    INSERT INTO subscriptions (subscriber_id, newsletter_id, status, created_at, updated_at)
    SELECT {}, newsletter_id, {}, {}, {} FROM unnest({}::bigint[]) AS newsletter_id
), earlier_tokens AS (
    DELETE FROM confirmation_tokens
    WHERE subscriber_id = {} AND consumed_at IS NULL AND (SELECT yes FROM send)
), token AS (
    INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
    SELECT {}, {}, {}, {} FROM send WHERE yes
), queued AS (
    INSERT INTO outbound_emails (kind, subscriber_id, recipient_email, recipient_name, subject,
                                 body_text, body_html, message_id, status, next_attempt_at,
                                 created_at)
    SELECT {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {} FROM send WHERE yes
)
SELECT yes FROM send";

/// [`KnownSignup`] flattened into one value per bind.
struct KnownBinds<'a> {
    subscriber_id: i64,
    update_details: bool,
    name: Option<&'a str>,
    signup_ip: Option<&'a str>,
    reopen: &'a [i64],
    add: &'a [i64],
    now: NaiveDateTime,
    limits: Limits,
    token_hash: &'a str,
    expires_at: NaiveDateTime,
    recipient_email: &'a str,
    recipient_name: Option<&'a str>,
    subject: &'a str,
    body_text: &'a str,
    body_html: &'a str,
    message_id: &'a str,
}

impl<'a> KnownBinds<'a> {
    fn of(s: &KnownSignup<'a>) -> Self {
        let (name, signup_ip) = s.details.unwrap_or_default();
        let c = &s.confirmation;
        Self {
            subscriber_id: s.subscriber_id,
            update_details: s.details.is_some(),
            name,
            signup_ip,
            reopen: s.reopen,
            add: s.add,
            now: s.now,
            limits: s.limits,
            token_hash: c.token_hash,
            expires_at: c.expires_at,
            recipient_email: c.recipient_email,
            recipient_name: c.recipient_name,
            subject: c.subject,
            body_text: c.body_text,
            body_html: c.body_html,
            message_id: c.message_id,
        }
    }
}

/// [`WRITE_KNOWN_SIGNUP`] with its binds.
struct WriteKnownSignup<'s, 'a>(&'s KnownBinds<'a>);

impl QueryId for WriteKnownSignup<'_, '_> {
    type QueryId = ();
    // No static id: diesel keys its statement cache on the SQL text instead.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for WriteKnownSignup<'_, '_> {
    type SqlType = Bool;
}

impl RunQueryDsl<PgConnection> for WriteKnownSignup<'_, '_> {}

impl QueryFragment<Pg> for WriteKnownSignup<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let s = self.0;
        let mut pieces = WRITE_KNOWN_SIGNUP.split("{}");
        let mut sql = |out: &mut AstPass<'_, 'b, Pg>| {
            out.push_sql(pieces.next().unwrap_or_default());
        };
        sql(&mut out);
        out.push_bind_param::<BigInt, _>(&s.subscriber_id)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&CONFIRMATION)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.limits.counted_since)?;
        sql(&mut out);
        out.push_bind_param::<BigInt, _>(&s.limits.per_day)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.limits.last_sent_before)?;
        sql(&mut out);
        out.push_bind_param::<Nullable<Text>, _>(&s.name)?;
        sql(&mut out);
        out.push_bind_param::<Nullable<Text>, _>(&s.signup_ip)?;
        sql(&mut out);
        out.push_bind_param::<BigInt, _>(&s.subscriber_id)?;
        sql(&mut out);
        out.push_bind_param::<Bool, _>(&s.update_details)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&PENDING_SUBSCRIPTION)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Array<BigInt>, _>(&s.reopen)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&UNSUBSCRIBED_SUBSCRIPTION)?;
        sql(&mut out);
        out.push_bind_param::<BigInt, _>(&s.subscriber_id)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&PENDING_SUBSCRIPTION)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Array<BigInt>, _>(&s.add)?;
        sql(&mut out);
        out.push_bind_param::<BigInt, _>(&s.subscriber_id)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&s.token_hash)?;
        sql(&mut out);
        out.push_bind_param::<BigInt, _>(&s.subscriber_id)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.now)?;
        sql(&mut out);
        out.push_bind_param::<Timestamp, _>(&s.expires_at)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&CONFIRMATION)?;
        sql(&mut out);
        out.push_bind_param::<BigInt, _>(&s.subscriber_id)?;
        sql(&mut out);
        out.push_bind_param::<Text, _>(&s.recipient_email)?;
        sql(&mut out);
        out.push_bind_param::<Nullable<Text>, _>(&s.recipient_name)?;
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

const UNSUBSCRIBED_SUBSCRIPTION: &str = Status::Unsubscribed.as_str();

#[cfg(test)]
mod tests {
    use super::WRITE_KNOWN_SIGNUP;

    #[test]
    fn the_known_signup_statement_has_a_place_for_each_of_its_34_binds() {
        assert_eq!(WRITE_KNOWN_SIGNUP.matches("{}").count(), 34);
    }
}
