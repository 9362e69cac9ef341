//! `POST /subscriptions`: record the signup and queue the confirmation email.

use chrono::NaiveDateTime;

use super::{Policy, ServiceError};
use crate::db::newsletters::Newsletter;
use crate::db::outbound::{self, EmailKind, NewOutboundEmail};
use crate::db::subscribers::{self, NewSubscriber, Status};
use crate::db::{self, DbConnection, confirmation_tokens, newsletters};
use crate::domain::{SubscriberEmail, SubscriberName};
use crate::mail::templates::ConfirmationEmail;
use crate::mail::{RenderedEmail, new_message_id};
use crate::tokens;

/// A valid signup.
#[derive(Debug, Clone)]
pub struct SignupRequest {
    /// Address.
    pub email: SubscriberEmail,
    /// Optional name.
    pub name: Option<SubscriberName>,
    /// Existing newsletters, at least one.
    pub newsletters: Vec<Newsletter>,
    /// Client IP, for the subscriber's history.
    pub ip: Option<String>,
}

/// What the signup did. The reader sees the same answer for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A confirmation email is queued.
    ConfirmationQueued,
    /// Every requested newsletter was already confirmed: nothing to send.
    AlreadySubscribed,
    /// A confirmation is needed but the per-address limits say not now.
    Throttled,
    /// The address is marked bounced: nothing is changed and nothing is sent to it.
    Bounced,
}

/// A signup with the work that needs no database done in advance: a fresh token, and the
/// confirmation email as a brand-new reader of the requested newsletters gets it. Rendering
/// before the transaction keeps the write lock for writing.
#[derive(Debug)]
pub struct PreparedSignup {
    request: SignupRequest,
    token: String,
    token_hash: String,
    message_id: String,
    email: RenderedEmail,
}

/// Does the database-free part of a signup.
pub fn prepare(policy: &Policy, request: SignupRequest) -> Result<PreparedSignup, ServiceError> {
    let (token, token_hash) = tokens::new_confirmation_token();
    let titles = request
        .newsletters
        .iter()
        .map(|n| n.title.clone())
        .collect();
    let email = confirmation_email(policy, &request, &token, titles)?;
    Ok(PreparedSignup {
        message_id: new_message_id(
            policy
                .settings
                .from_for(crate::config::MailStream::Transactional),
        ),
        request,
        token,
        token_hash,
        email,
    })
}

fn confirmation_email(
    policy: &Policy,
    request: &SignupRequest,
    token: &str,
    newsletters: Vec<String>,
) -> Result<RenderedEmail, ServiceError> {
    let ttl = policy.settings.confirmation_ttl;
    Ok(RenderedEmail::confirmation(&ConfirmationEmail {
        name: request.name.as_ref().map(|n| n.as_str().to_owned()),
        confirm_url: policy
            .settings
            .link(&format!("/subscriptions/confirm?token={token}")),
        newsletters,
        expires_hours: i64::try_from(ttl.as_secs() / 3600).unwrap_or(i64::MAX),
    })?)
}

/// Records a prepared signup; the caller provides the transaction. Concurrent signups of
/// one address are serialised on the subscriber row, so they yield one subscriber and at
/// most one email.
pub fn record(
    conn: &mut DbConnection,
    policy: &Policy,
    prepared: &PreparedSignup,
) -> Result<SignupOutcome, ServiceError> {
    let request = &prepared.request;
    let now = db::now();
    let email_key = request.email.key();
    let name = request.name.as_ref().map(SubscriberName::as_str);
    let subscriber = match conn {
        // One statement writes a new reader's every row, or locks a known reader's row.
        DbConnection::Pg(pg) => {
            let (subscriber, inserted) = db::signups::upsert(
                pg,
                &db::signups::NewSignup {
                    email: request.email.as_str(),
                    email_key: &email_key,
                    name,
                    signup_ip: request.ip.as_deref(),
                    newsletter_ids: request.newsletters.iter().map(|n| n.id).collect(),
                    token_hash: &prepared.token_hash,
                    expires_at: now + policy.settings.confirmation_ttl,
                    subject: &prepared.email.subject,
                    body_text: &prepared.email.text,
                    body_html: &prepared.email.html,
                    message_id: &prepared.message_id,
                    now,
                },
            )?;
            if inserted {
                return Ok(SignupOutcome::ConfirmationQueued);
            }
            subscriber
        }
        DbConnection::Sqlite(_) => {
            let new = subscribers::insert_if_absent(
                conn,
                &NewSubscriber {
                    email: request.email.as_str(),
                    email_key: &email_key,
                    name,
                    signup_ip: request.ip.as_deref(),
                    created_at: now,
                    updated_at: now,
                },
            )?;
            if let Some(subscriber) = new {
                // The common case, in four statements: nothing to look up for a new address.
                for newsletter in &request.newsletters {
                    subscribers::insert_pending(conn, subscriber.id, newsletter.id, now)?;
                }
                queue_confirmation(conn, policy, prepared, &subscriber, &prepared.email, now)?;
                return Ok(SignupOutcome::ConfirmationQueued);
            }
            subscribers::lock_by_key(conn, &email_key, now)?
        }
    };
    record_known(conn, policy, prepared, &subscriber, now)
}

/// A signup of an address already on the list, whose subscriber row is locked: its
/// subscriptions are read, then every change is written at once
/// ([`db::signups::write_known`], which also applies the per-address limits). So a known
/// address costs two round trips more than a new one, not a dozen: its answer must not
/// take measurably longer, or the timing would tell who is on the list.
fn record_known(
    conn: &mut DbConnection,
    policy: &Policy,
    prepared: &PreparedSignup,
    subscriber: &subscribers::Subscriber,
    now: NaiveDateTime,
) -> Result<SignupOutcome, ServiceError> {
    let request = &prepared.request;
    let existing = subscribers::subscriptions_of(conn, subscriber.id)?;

    let mut reopen = Vec::new();
    let mut add = Vec::new();
    let mut needs_confirmation = false;
    for newsletter in &request.newsletters {
        match existing.iter().find(|s| s.newsletter_id == newsletter.id) {
            None => {
                add.push(newsletter.id);
                needs_confirmation = true;
            }
            Some(s) if s.status() == Status::Unsubscribed => {
                reopen.push(s.id);
                needs_confirmation = true;
            }
            Some(s) if s.status() == Status::Pending => needs_confirmation = true,
            Some(_) => {}
        }
    }
    if !needs_confirmation {
        return Ok(SignupOutcome::AlreadySubscribed);
    }
    // Mail to it bounced: a confirmation would bounce too, and count against our sender.
    if db::bounces::is_bounced(conn, subscriber.id)? {
        return Ok(SignupOutcome::Bounced);
    }
    // Someone who knows an address must not be able to rename a confirmed reader.
    let details = (!existing.iter().any(|s| s.status() == Status::Confirmed)).then(|| {
        (
            request.name.as_ref().map(SubscriberName::as_str),
            request.ip.as_deref(),
        )
    });
    let rendered = pending_confirmation(conn, policy, prepared, &existing, &reopen, &add)?;
    let email = rendered.as_ref().unwrap_or(&prepared.email);
    let sent = db::signups::write_known(
        conn,
        &db::signups::KnownSignup {
            subscriber_id: subscriber.id,
            details,
            reopen: &reopen,
            add: &add,
            now,
            limits: limits(policy, now),
            confirmation: db::signups::Confirmation {
                token_hash: &prepared.token_hash,
                expires_at: now + policy.settings.confirmation_ttl,
                recipient_email: &subscriber.email,
                recipient_name: request.name.as_ref().map(SubscriberName::as_str),
                subject: &email.subject,
                body_text: &email.text,
                body_html: &email.html,
                message_id: &prepared.message_id,
            },
        },
    )?;
    // When throttled the earlier email's link stays valid: replacing the token without
    // sending a new one would leave the reader with a dead link.
    Ok(if sent {
        SignupOutcome::ConfirmationQueued
    } else {
        SignupOutcome::Throttled
    })
}

/// The confirmation email lists every newsletter awaiting confirmation once this signup
/// is written, not only those asked for now. `None` when that is the ones asked for, so
/// the email rendered before the transaction serves: rendering here would hold the write
/// lock for it, and would make a known address slower to answer than a new one.
fn pending_confirmation(
    conn: &mut DbConnection,
    policy: &Policy,
    prepared: &PreparedSignup,
    existing: &[subscribers::Subscription],
    reopen: &[i64],
    add: &[i64],
) -> Result<Option<RenderedEmail>, ServiceError> {
    let mut pending: Vec<i64> = existing
        .iter()
        .filter(|s| s.status() == Status::Pending || reopen.contains(&s.id))
        .map(|s| s.newsletter_id)
        .chain(add.iter().copied())
        .collect();
    pending.sort_unstable();
    let asked: Vec<i64> = prepared.request.newsletters.iter().map(|n| n.id).collect();
    if pending == asked {
        return Ok(None);
    }
    let titles = newsletters::all(conn)?
        .into_iter()
        .filter(|n| pending.contains(&n.id))
        .map(|n| n.title)
        .collect();
    Ok(Some(confirmation_email(
        policy,
        &prepared.request,
        &prepared.token,
        titles,
    )?))
}

fn queue_confirmation(
    conn: &mut DbConnection,
    policy: &Policy,
    prepared: &PreparedSignup,
    subscriber: &subscribers::Subscriber,
    email: &RenderedEmail,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let expires_at = now + policy.settings.confirmation_ttl;
    confirmation_tokens::insert(conn, subscriber.id, &prepared.token_hash, now, expires_at)?;
    outbound::enqueue(
        conn,
        &NewOutboundEmail {
            kind: EmailKind::Confirmation.as_str(),
            subscriber_id: Some(subscriber.id),
            recipient_email: &subscriber.email,
            recipient_name: prepared.request.name.as_ref().map(SubscriberName::as_str),
            subject: &email.subject,
            body_text: &email.text,
            body_html: &email.html,
            list_unsubscribe: None,
            message_id: &prepared.message_id,
            status: outbound::status::PENDING,
            next_attempt_at: now,
            created_at: now,
        },
    )?;
    Ok(())
}

/// At most one confirmation email per address per resend interval, and a daily cap, so
/// the form cannot be used to flood someone's inbox.
fn limits(policy: &Policy, now: NaiveDateTime) -> db::signups::Limits {
    db::signups::Limits {
        counted_since: now - chrono::Duration::hours(24),
        per_day: i64::from(policy.settings.confirmations_per_day),
        last_sent_before: now - policy.settings.confirmation_resend_interval,
    }
}
