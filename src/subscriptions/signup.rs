//! `POST /subscriptions`: record the signup and queue the confirmation email.

use chrono::NaiveDateTime;

use super::{Policy, ServiceError};
use crate::db::newsletters::Newsletter;
use crate::db::outbound::{self, EmailKind, NewOutboundEmail};
use crate::db::subscribers::{self, NewSubscriber, Status};
use crate::db::{self, DbConnection, confirmation_tokens};
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
}

/// Records a signup in one transaction; concurrent signups of one address are serialised
/// on the subscriber row, so they yield one subscriber and at most one email.
pub fn subscribe(
    conn: &mut DbConnection,
    policy: &Policy,
    request: &SignupRequest,
) -> Result<SignupOutcome, ServiceError> {
    db::write_transaction(conn, |conn| {
        let now = db::now();
        let email_key = request.email.key();
        let name = request.name.as_ref().map(SubscriberName::as_str);
        subscribers::insert_if_absent(
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
        let subscriber = subscribers::lock_by_key(conn, &email_key, now)?;
        let existing = subscribers::subscriptions_of(conn, subscriber.id)?;

        // Someone who knows an address must not be able to rename a confirmed reader.
        if !existing.iter().any(|s| s.status() == Status::Confirmed) {
            subscribers::update_details(conn, subscriber.id, name, request.ip.as_deref())?;
        }

        let mut needs_confirmation = false;
        for newsletter in &request.newsletters {
            match existing.iter().find(|s| s.newsletter_id == newsletter.id) {
                None => {
                    subscribers::insert_pending(conn, subscriber.id, newsletter.id, now)?;
                    needs_confirmation = true;
                }
                Some(s) if s.status() == Status::Unsubscribed => {
                    subscribers::reopen(conn, s.id, now)?;
                    needs_confirmation = true;
                }
                Some(s) if s.status() == Status::Pending => needs_confirmation = true,
                Some(_) => {}
            }
        }
        if !needs_confirmation {
            return Ok(SignupOutcome::AlreadySubscribed);
        }
        if throttled(conn, policy, subscriber.id, now)? {
            // The earlier email's link stays valid: replacing the token without sending a
            // new one would leave the reader with a dead link.
            return Ok(SignupOutcome::Throttled);
        }

        let (token, token_hash) = tokens::new_confirmation_token();
        let ttl = policy.settings.confirmation_ttl;
        confirmation_tokens::replace(conn, subscriber.id, &token_hash, now, now + ttl)?;

        let pending = subscribers::newsletters_with_status(conn, subscriber.id, Status::Pending)?;
        let rendered = RenderedEmail::confirmation(&ConfirmationEmail {
            name: name.map(str::to_owned),
            confirm_url: policy
                .settings
                .link(&format!("/subscriptions/confirm?token={token}")),
            newsletters: pending.into_iter().map(|n| n.title).collect(),
            expires_hours: i64::try_from(ttl.as_secs() / 3600).unwrap_or(i64::MAX),
        })?;
        let message_id = new_message_id(&policy.settings.from);
        outbound::enqueue(
            conn,
            &NewOutboundEmail {
                kind: EmailKind::Confirmation.as_str(),
                subscriber_id: Some(subscriber.id),
                recipient_email: &subscriber.email,
                recipient_name: name,
                subject: &rendered.subject,
                body_text: &rendered.text,
                body_html: &rendered.html,
                list_unsubscribe: None,
                message_id: &message_id,
                status: outbound::status::PENDING,
                next_attempt_at: now,
                created_at: now,
            },
        )?;
        Ok(SignupOutcome::ConfirmationQueued)
    })
}

/// At most one confirmation email per address per resend interval, and a daily cap, so
/// the form cannot be used to flood someone's inbox.
fn throttled(
    conn: &mut DbConnection,
    policy: &Policy,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> Result<bool, ServiceError> {
    let day_ago = now - chrono::Duration::hours(24);
    let (sent_today, latest) =
        outbound::recent_for_subscriber(conn, subscriber_id, EmailKind::Confirmation, day_ago)?;
    if sent_today >= i64::from(policy.settings.confirmations_per_day) {
        return Ok(true);
    }
    Ok(latest.is_some_and(|at| now < at + policy.settings.confirmation_resend_interval))
}
