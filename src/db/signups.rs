//! A group of signups' reads and writes. The rules are decided in Rust
//! (`subscriptions::rules`); these statements read what the rules need for the whole group
//! and store what was decided, each guarded so that it never undoes a change made by
//! someone else since.
//!
//! On PostgreSQL each write is one statement for the whole group, with its rows bound as
//! arrays and `unnest`ed: the text never changes with the group's size, so it is prepared
//! once per connection. SQLite runs in-process, where one small statement per row is
//! cheap.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};

use super::outbound::{self, NewOutboundEmail};
use super::schema::{confirmation_tokens, mailboxes, outbound_emails, subscribers, subscriptions};
use super::states::{EmailKind, EmailStatus, SubscriptionStatus as Status};
use super::subscribers::NewSubscriber;
use super::{DbConnection, confirmation_tokens as tokens};

mod pg;

use pg::{Statement, bind};

/// A subscriber as the signup rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscriber {
    /// Row id.
    pub id: i64,
    /// The address as first stored (confirmations go to it).
    pub email: String,
    /// Lower-cased address.
    pub email_key: String,
    /// Mail to it bounced.
    pub bounced: bool,
    /// Its subscriptions: (newsletter id, status).
    pub subscriptions: Vec<(i64, Status)>,
}

/// Holds these mailboxes (keys ascending, no repeats) until the transaction ends, so that
/// every later read and write of the group is about mailboxes no other signup is deciding
/// at the same time. On PostgreSQL that is a row lock on each mailbox's row (written, so
/// that a mailbox named for the first time has one), taken in key order, so two groups
/// that share mailboxes cannot deadlock. On SQLite the write lock, held since the
/// transaction began, already serialises every signup: nothing to do.
pub fn hold_mailboxes(
    conn: &mut DbConnection,
    keys: &[String],
    now: NaiveDateTime,
) -> QueryResult<()> {
    debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
    if let DbConnection::Pg(pg) = conn {
        Statement::<()>::new(
            HOLD_MAILBOXES,
            vec![bind::<Timestamp, _>(&now), bind::<Array<Text>, _>(keys)],
        )
        .execute(pg)?;
    }
    Ok(())
}

/// Writes the rows of these mailboxes for signups that store nothing else (held back,
/// bounced, nothing to confirm), so that their commit costs what any signup's does and
/// its timing cannot tell them apart. PostgreSQL wrote every mailbox's row when holding it.
pub fn note_signups(conn: &mut DbConnection, keys: &[&str], now: NaiveDateTime) -> QueryResult<()> {
    let DbConnection::Sqlite(sqlite) = conn else {
        return Ok(());
    };
    for key in keys {
        diesel::insert_into(mailboxes::table)
            .values((
                mailboxes::mailbox_key.eq(key),
                mailboxes::last_signup_at.eq(now),
            ))
            .on_conflict(mailboxes::mailbox_key)
            .do_update()
            .set(mailboxes::last_signup_at.eq(now))
            .execute(sqlite)?;
    }
    Ok(())
}

const HOLD_MAILBOXES: &str = "
INSERT INTO mailboxes (mailbox_key, last_signup_at)
SELECT mailbox_key, {}::timestamp FROM unnest({}::text[]) AS mailbox_key ORDER BY mailbox_key
ON CONFLICT (mailbox_key) DO UPDATE SET last_signup_at = EXCLUDED.last_signup_at";

/// The subscribers with these addresses (lower-cased keys) and their subscriptions.
pub fn subscribers_by_key(
    conn: &mut DbConnection,
    email_keys: &[String],
) -> QueryResult<Vec<StoredSubscriber>> {
    type Row = (
        i64,
        String,
        String,
        Option<NaiveDateTime>,
        Option<i64>,
        Option<Status>,
    );
    let rows: Vec<Row> = match conn {
        DbConnection::Pg(pg) => {
            Statement::<(
                BigInt,
                Text,
                Text,
                Nullable<Timestamp>,
                Nullable<BigInt>,
                Nullable<Text>,
            )>::new(SUBSCRIBERS_BY_KEY, vec![bind::<Array<Text>, _>(email_keys)])
            .load(pg)?
        }
        DbConnection::Sqlite(sqlite) => subscribers::table
            .left_join(subscriptions::table)
            .filter(subscribers::email_key.eq_any(email_keys))
            .order((subscribers::id, subscriptions::newsletter_id))
            .select((
                subscribers::id,
                subscribers::email,
                subscribers::email_key,
                subscribers::bounced_at,
                subscriptions::newsletter_id.nullable(),
                subscriptions::status.nullable(),
            ))
            .load(sqlite)?,
    };
    let mut stored: Vec<StoredSubscriber> = Vec::new();
    for (id, email, email_key, bounced_at, newsletter, status) in rows {
        if stored.last().is_none_or(|s| s.id != id) {
            stored.push(StoredSubscriber {
                id,
                email,
                email_key,
                bounced: bounced_at.is_some(),
                subscriptions: Vec::new(),
            });
        }
        if let (Some(newsletter), Some(status), Some(subscriber)) =
            (newsletter, status, stored.last_mut())
        {
            subscriber.subscriptions.push((newsletter, status));
        }
    }
    Ok(stored)
}

/// When each confirmation email since `since` to any subscriber of these mailboxes was
/// queued: (mailbox key, time).
pub fn recent_confirmations(
    conn: &mut DbConnection,
    mailbox_keys: &[String],
    since: NaiveDateTime,
) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    let kind = EmailKind::Confirmation;
    let rows: Vec<(Option<String>, NaiveDateTime)> = match conn {
        DbConnection::Pg(pg) => Statement::<(Nullable<Text>, Timestamp)>::new(
            RECENT_CONFIRMATIONS,
            vec![
                bind::<Array<Text>, _>(mailbox_keys),
                bind::<Text, _>(&kind),
                bind::<Timestamp, _>(&since),
            ],
        )
        .load(pg)?,
        DbConnection::Sqlite(sqlite) => outbound_emails::table
            .inner_join(
                subscribers::table
                    .on(outbound_emails::subscriber_id.eq(subscribers::id.nullable())),
            )
            .filter(subscribers::mailbox_key.eq_any(mailbox_keys))
            .filter(outbound_emails::kind.eq(kind))
            .filter(outbound_emails::created_at.gt(since))
            .select((subscribers::mailbox_key, outbound_emails::created_at))
            .load(sqlite)?,
    };
    Ok(rows
        .into_iter()
        .filter_map(|(key, at)| key.map(|key| (key, at)))
        .collect())
}

// The reads start from the group's keys and look each one up by its index (`LATERAL …
// OFFSET 0` keeps PostgreSQL from turning a lookup into a join): with a generic plan
// and tables that grow fast from empty, it otherwise chose hash joins that scanned every
// subscription and every recent confirmation email, for every group.
const SUBSCRIBERS_BY_KEY: &str = "
SELECT s.id, s.email, s.email_key, s.bounced_at, sub.newsletter_id, sub.status
FROM unnest({}::text[]) AS k (email_key)
CROSS JOIN LATERAL (
    SELECT id, email, email_key, bounced_at FROM subscribers
    WHERE subscribers.email_key = k.email_key OFFSET 0
) AS s
LEFT JOIN LATERAL (
    SELECT newsletter_id, status FROM subscriptions
    WHERE subscriptions.subscriber_id = s.id OFFSET 0
) AS sub ON true
ORDER BY s.id, sub.newsletter_id";

const RECENT_CONFIRMATIONS: &str = "
SELECT s.mailbox_key, o.created_at
FROM unnest({}::text[]) AS k (mailbox_key)
CROSS JOIN LATERAL (
    SELECT id, mailbox_key FROM subscribers WHERE subscribers.mailbox_key = k.mailbox_key OFFSET 0
) AS s
CROSS JOIN LATERAL (
    SELECT created_at FROM outbound_emails
    WHERE outbound_emails.subscriber_id = s.id AND outbound_emails.kind = {}
      AND outbound_emails.created_at > {}
    OFFSET 0
) AS o";

/// Inserts these subscribers (none of them stored yet): (email key, id) of each.
pub fn insert_subscribers(
    conn: &mut DbConnection,
    rows: &[NewSubscriber<'_>],
    now: NaiveDateTime,
) -> QueryResult<Vec<(String, i64)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    match conn {
        DbConnection::Pg(pg) => {
            let emails: Vec<&str> = rows.iter().map(|r| r.email).collect();
            let keys: Vec<&str> = rows.iter().map(|r| r.email_key).collect();
            let mailboxes: Vec<&str> = rows.iter().map(|r| r.mailbox_key).collect();
            let names: Vec<Option<&str>> = rows.iter().map(|r| r.name).collect();
            let ips: Vec<Option<&str>> = rows.iter().map(|r| r.signup_ip).collect();
            Statement::<(Text, BigInt)>::new(
                INSERT_SUBSCRIBERS,
                vec![
                    bind::<Timestamp, _>(&now),
                    bind::<Array<Text>, _>(&emails),
                    bind::<Array<Text>, _>(&keys),
                    bind::<Array<Text>, _>(&mailboxes),
                    bind::<Array<Nullable<Text>>, _>(&names),
                    bind::<Array<Nullable<Text>>, _>(&ips),
                ],
            )
            .load(pg)
        }
        DbConnection::Sqlite(sqlite) => rows
            .iter()
            .map(|row| {
                diesel::insert_into(subscribers::table)
                    .values(row)
                    .returning((subscribers::email_key, subscribers::id))
                    .get_result(sqlite)
            })
            .collect(),
    }
}

const INSERT_SUBSCRIBERS: &str = "
INSERT INTO subscribers (email, email_key, mailbox_key, name, signup_ip, created_at, updated_at)
SELECT email, email_key, mailbox_key, name, signup_ip, now, now
FROM (SELECT {}::timestamp AS now) AS clock,
     unnest({}::text[], {}::text[], {}::text[], {}::text[], {}::text[])
         AS row (email, email_key, mailbox_key, name, signup_ip)
RETURNING email_key, id";

/// Deletes the unused confirmation tokens of these subscribers: a new link replaces them.
pub fn retire_tokens(conn: &mut DbConnection, subscriber_ids: &[i64]) -> QueryResult<()> {
    if subscriber_ids.is_empty() {
        return Ok(());
    }
    diesel::delete(
        confirmation_tokens::table
            .filter(confirmation_tokens::subscriber_id.eq_any(subscriber_ids))
            .filter(confirmation_tokens::consumed_at.is_null()),
    )
    .execute(conn)?;
    Ok(())
}

/// A new confirmation link: the SHA-256 of its token, and whose it is.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    /// SHA-256 of the token.
    pub token_hash: &'a str,
    /// Whose.
    pub subscriber_id: i64,
}

/// Stores these tokens, issued now and valid until `expires_at`.
pub fn insert_tokens(
    conn: &mut DbConnection,
    rows: &[NewToken<'_>],
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match conn {
        DbConnection::Pg(pg) => {
            let hashes: Vec<&str> = rows.iter().map(|r| r.token_hash).collect();
            let ids: Vec<i64> = rows.iter().map(|r| r.subscriber_id).collect();
            Statement::<()>::new(
                INSERT_TOKENS,
                vec![
                    bind::<Timestamp, _>(&now),
                    bind::<Timestamp, _>(&expires_at),
                    bind::<Array<Text>, _>(&hashes),
                    bind::<Array<BigInt>, _>(&ids),
                ],
            )
            .execute(pg)?;
        }
        DbConnection::Sqlite(_) => {
            for row in rows {
                tokens::insert(conn, row.subscriber_id, row.token_hash, now, expires_at)?;
            }
        }
    }
    Ok(())
}

const INSERT_TOKENS: &str = "
INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
SELECT token_hash, subscriber_id, clock.now, clock.expires_at
FROM (SELECT {}::timestamp AS now, {}::timestamp AS expires_at) AS clock,
     unnest({}::text[], {}::bigint[]) AS row (token_hash, subscriber_id)";

/// A subscription that awaits confirmation by one link from now on.
#[derive(Debug, Clone, Copy)]
pub struct Awaiting<'a> {
    /// Who.
    pub subscriber_id: i64,
    /// To what.
    pub newsletter_id: i64,
    /// SHA-256 of the token whose link confirms it.
    pub token_hash: &'a str,
}

/// Makes each of these subscriptions pending, confirmable by its token only: added if
/// absent, reopened if the reader had left, moved to the new link if already pending.
/// A subscription confirmed meanwhile stays confirmed.
pub fn await_confirmation(
    conn: &mut DbConnection,
    rows: &[Awaiting<'_>],
    now: NaiveDateTime,
) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let pending = Status::Pending;
    match conn {
        DbConnection::Pg(pg) => {
            let subscribers: Vec<i64> = rows.iter().map(|r| r.subscriber_id).collect();
            let newsletters: Vec<i64> = rows.iter().map(|r| r.newsletter_id).collect();
            let hashes: Vec<&str> = rows.iter().map(|r| r.token_hash).collect();
            Statement::<()>::new(
                AWAIT_CONFIRMATION,
                vec![
                    bind::<Text, _>(&pending),
                    bind::<Timestamp, _>(&now),
                    bind::<Array<BigInt>, _>(&subscribers),
                    bind::<Array<BigInt>, _>(&newsletters),
                    bind::<Array<Text>, _>(&hashes),
                    bind::<Text, _>(&Status::Confirmed),
                ],
            )
            .execute(pg)?;
        }
        DbConnection::Sqlite(sqlite) => {
            // The write lock is held from the read on: nothing can have changed since.
            for row in rows {
                diesel::insert_into(subscriptions::table)
                    .values((
                        subscriptions::subscriber_id.eq(row.subscriber_id),
                        subscriptions::newsletter_id.eq(row.newsletter_id),
                        subscriptions::status.eq(pending),
                        subscriptions::confirmation_token_hash.eq(row.token_hash),
                        subscriptions::created_at.eq(now),
                        subscriptions::updated_at.eq(now),
                    ))
                    .on_conflict((subscriptions::subscriber_id, subscriptions::newsletter_id))
                    .do_update()
                    .set((
                        subscriptions::status.eq(pending),
                        subscriptions::confirmation_token_hash.eq(row.token_hash),
                        subscriptions::updated_at.eq(now),
                    ))
                    .execute(sqlite)?;
            }
        }
    }
    Ok(())
}

const AWAIT_CONFIRMATION: &str = "
INSERT INTO subscriptions (subscriber_id, newsletter_id, status, confirmation_token_hash,
                           created_at, updated_at)
SELECT subscriber_id, newsletter_id, clock.pending, token_hash, clock.now, clock.now
FROM (SELECT {}::text AS pending, {}::timestamp AS now) AS clock,
     unnest({}::bigint[], {}::bigint[], {}::text[]) AS row (subscriber_id, newsletter_id, token_hash)
ON CONFLICT (subscriber_id, newsletter_id) DO UPDATE
SET status = EXCLUDED.status, confirmation_token_hash = EXCLUDED.confirmation_token_hash,
    updated_at = EXCLUDED.updated_at
WHERE subscriptions.status <> {}";

/// New details for a known subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Details<'a> {
    /// Who.
    pub subscriber_id: i64,
    /// Name given.
    pub name: Option<&'a str>,
    /// Client IP.
    pub signup_ip: Option<&'a str>,
}

/// Replaces these subscribers' names and signup IPs.
pub fn update_details(conn: &mut DbConnection, rows: &[Details<'_>]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match conn {
        DbConnection::Pg(pg) => {
            let ids: Vec<i64> = rows.iter().map(|r| r.subscriber_id).collect();
            let names: Vec<Option<&str>> = rows.iter().map(|r| r.name).collect();
            let ips: Vec<Option<&str>> = rows.iter().map(|r| r.signup_ip).collect();
            Statement::<()>::new(
                UPDATE_DETAILS,
                vec![
                    bind::<Array<BigInt>, _>(&ids),
                    bind::<Array<Nullable<Text>>, _>(&names),
                    bind::<Array<Nullable<Text>>, _>(&ips),
                ],
            )
            .execute(pg)?;
        }
        DbConnection::Sqlite(sqlite) => {
            for row in rows {
                diesel::update(subscribers::table.find(row.subscriber_id))
                    .set((
                        subscribers::name.eq(row.name),
                        subscribers::signup_ip.eq(row.signup_ip),
                    ))
                    .execute(sqlite)?;
            }
        }
    }
    Ok(())
}

const UPDATE_DETAILS: &str = "
UPDATE subscribers SET name = row.name, signup_ip = row.signup_ip
FROM unnest({}::bigint[], {}::text[], {}::text[]) AS row (id, name, signup_ip)
WHERE subscribers.id = row.id";

/// A confirmation email to queue.
#[derive(Debug, Clone, Copy)]
pub struct Confirmation<'a> {
    /// Whose.
    pub subscriber_id: i64,
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

/// Queues these confirmation emails, due now.
pub fn queue_confirmations(
    conn: &mut DbConnection,
    rows: &[Confirmation<'_>],
    now: NaiveDateTime,
) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let kind = EmailKind::Confirmation;
    match conn {
        DbConnection::Pg(pg) => {
            let ids: Vec<i64> = rows.iter().map(|r| r.subscriber_id).collect();
            let to: Vec<&str> = rows.iter().map(|r| r.recipient_email).collect();
            let names: Vec<Option<&str>> = rows.iter().map(|r| r.recipient_name).collect();
            let subjects: Vec<&str> = rows.iter().map(|r| r.subject).collect();
            let texts: Vec<&str> = rows.iter().map(|r| r.body_text).collect();
            let htmls: Vec<&str> = rows.iter().map(|r| r.body_html).collect();
            let message_ids: Vec<&str> = rows.iter().map(|r| r.message_id).collect();
            Statement::<()>::new(
                QUEUE_CONFIRMATIONS,
                vec![
                    bind::<Text, _>(&kind),
                    bind::<Text, _>(&EmailStatus::Pending),
                    bind::<Timestamp, _>(&now),
                    bind::<Array<BigInt>, _>(&ids),
                    bind::<Array<Text>, _>(&to),
                    bind::<Array<Nullable<Text>>, _>(&names),
                    bind::<Array<Text>, _>(&subjects),
                    bind::<Array<Text>, _>(&texts),
                    bind::<Array<Text>, _>(&htmls),
                    bind::<Array<Text>, _>(&message_ids),
                ],
            )
            .execute(pg)?;
        }
        DbConnection::Sqlite(_) => {
            for row in rows {
                outbound::enqueue(
                    conn,
                    &NewOutboundEmail {
                        kind,
                        subscriber_id: Some(row.subscriber_id),
                        recipient_email: row.recipient_email,
                        recipient_name: row.recipient_name,
                        subject: row.subject,
                        body_text: row.body_text,
                        body_html: row.body_html,
                        list_unsubscribe: None,
                        message_id: row.message_id,
                        status: EmailStatus::Pending,
                        next_attempt_at: now,
                        created_at: now,
                    },
                )?;
            }
        }
    }
    Ok(())
}

const QUEUE_CONFIRMATIONS: &str = "
INSERT INTO outbound_emails (kind, subscriber_id, recipient_email, recipient_name, subject,
                             body_text, body_html, message_id, status, next_attempt_at,
                             created_at)
SELECT clock.kind, subscriber_id, recipient_email, recipient_name, subject, body_text,
       body_html, message_id, clock.status, clock.now, clock.now
FROM (SELECT {}::text AS kind, {}::text AS status, {}::timestamp AS now) AS clock,
     unnest({}::bigint[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[])
         AS row (subscriber_id, recipient_email, recipient_name, subject, body_text, body_html,
                 message_id)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_statement_has_a_place_for_each_of_its_binds() {
        for (sql, binds) in [
            (HOLD_MAILBOXES, 2),
            (SUBSCRIBERS_BY_KEY, 1),
            (RECENT_CONFIRMATIONS, 3),
            (INSERT_SUBSCRIBERS, 6),
            (INSERT_TOKENS, 4),
            (AWAIT_CONFIRMATION, 6),
            (UPDATE_DETAILS, 3),
            (QUEUE_CONFIRMATIONS, 10),
        ] {
            assert_eq!(sql.matches("{}").count(), binds, "{sql}");
        }
    }
}
