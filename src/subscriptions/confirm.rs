//! `POST /subscriptions/confirm`: the second half of double opt-in.

use super::{Policy, ServiceError};
use crate::db::outbound::{self, NewOutboundEmail};
use crate::db::states::{EmailKind, EmailStatus, SubscriptionStatus as Status};
use crate::db::{self, DbConnection, confirmation_tokens};
use crate::db::{subscribers, subscriptions};
use crate::mail::templates::{WelcomeEmail, WelcomeNewsletter};
use crate::mail::{RenderedEmail, new_message_id};
use crate::tokens::{self, UnsubscribeScope};

/// What a confirmation link did (or would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Confirmed now; the titles of the reader's newsletters.
    Confirmed(Vec<String>),
    /// The link was used before; nothing changed.
    AlreadyConfirmed(Vec<String>),
    /// The link is too old.
    Expired,
    /// No such link.
    Unknown,
}

/// Checks a link without changing anything, for the page behind `GET`: `Confirmed`
/// carries the titles of the newsletters that pressing the button would confirm.
pub fn peek_confirmation(
    conn: &mut DbConnection,
    token: &str,
) -> Result<ConfirmOutcome, ServiceError> {
    if !tokens::is_confirmation_token_shaped(token) {
        return Ok(ConfirmOutcome::Unknown);
    }
    let now = db::now();
    let token_hash = tokens::hash_token(token);
    Ok(match confirmation_tokens::find(conn, &token_hash)? {
        None => ConfirmOutcome::Unknown,
        Some(t) if t.consumed_at.is_some() => ConfirmOutcome::AlreadyConfirmed(Vec::new()),
        Some(t) if t.expires_at <= now => ConfirmOutcome::Expired,
        Some(t) => ConfirmOutcome::Confirmed(
            subscriptions::awaiting(conn, t.subscriber_id, &token_hash)?
                .into_iter()
                .map(|n| n.title)
                .collect(),
        ),
    })
}

/// Confirms the pending subscriptions the link was sent for, and no others (a signup
/// since, of other newsletters, asks with a link of its own), and queues the welcome
/// email. Idempotent: a used link answers "already confirmed" and changes nothing, so an old
/// link cannot re-subscribe someone who has since left.
pub fn confirm(
    conn: &mut DbConnection,
    policy: &Policy,
    token: &str,
) -> Result<ConfirmOutcome, ServiceError> {
    if !tokens::is_confirmation_token_shaped(token) {
        return Ok(ConfirmOutcome::Unknown);
    }
    let token_hash = tokens::hash_token(token);
    db::write_transaction(conn, |conn| {
        let now = db::now();
        if !confirmation_tokens::consume(conn, &token_hash, now)? {
            return Ok(match confirmation_tokens::find(conn, &token_hash)? {
                None => ConfirmOutcome::Unknown,
                Some(t) if t.consumed_at.is_some() => {
                    ConfirmOutcome::AlreadyConfirmed(confirmed_titles(conn, t.subscriber_id)?)
                }
                Some(_) => ConfirmOutcome::Expired,
            });
        }
        let Some(stored) = confirmation_tokens::find(conn, &token_hash)? else {
            return Ok(ConfirmOutcome::Unknown);
        };
        let subscriber_id = stored.subscriber_id;
        let confirmed = subscriptions::confirm_awaiting(conn, subscriber_id, &token_hash, now)?;
        if !confirmed.is_empty() {
            queue_welcome(conn, policy, subscriber_id, &confirmed, now)?;
        }
        Ok(ConfirmOutcome::Confirmed(confirmed_titles(
            conn,
            subscriber_id,
        )?))
    })
}

fn confirmed_titles(
    conn: &mut DbConnection,
    subscriber_id: i64,
) -> Result<Vec<String>, ServiceError> {
    Ok(
        subscriptions::newsletters_with_status(conn, subscriber_id, Status::Confirmed)?
            .into_iter()
            .map(|n| n.title)
            .collect(),
    )
}

/// The welcome email carries each new subscription's own unsubscribe link.
fn queue_welcome(
    conn: &mut DbConnection,
    policy: &Policy,
    subscriber_id: i64,
    confirmed: &[(i64, i64)],
    now: chrono::NaiveDateTime,
) -> Result<(), ServiceError> {
    let Some(subscriber) = subscribers::find(conn, subscriber_id)? else {
        return Ok(());
    };
    let titles = subscriptions::newsletters_with_status(conn, subscriber_id, Status::Confirmed)?;
    let unsubscribe_link =
        |scope| policy.link(&format!("/unsubscribe?token={}", policy.signer.sign(scope)));
    let newsletters: Vec<WelcomeNewsletter> = confirmed
        .iter()
        .filter_map(|(subscription_id, newsletter_id)| {
            titles
                .iter()
                .find(|n| n.id == *newsletter_id)
                .map(|n| WelcomeNewsletter {
                    title: n.title.clone(),
                    unsubscribe_url: unsubscribe_link(UnsubscribeScope::Subscription(
                        *subscription_id,
                    )),
                })
        })
        .collect();
    // One newsletter: the header leaves just that one; several: it leaves them all.
    let list_unsubscribe = match newsletters.as_slice() {
        [only] => only.unsubscribe_url.clone(),
        _ => unsubscribe_link(UnsubscribeScope::Subscriber(subscriber_id)),
    };
    let rendered = RenderedEmail::welcome(&WelcomeEmail {
        name: subscriber.name.clone(),
        newsletters,
        unsubscribe_all_url: unsubscribe_link(UnsubscribeScope::Subscriber(subscriber_id)),
        home_url: policy.link("/"),
    })?;
    let message_id = new_message_id(&policy.from);
    outbound::enqueue(
        conn,
        &NewOutboundEmail {
            kind: EmailKind::Welcome,
            subscriber_id: Some(subscriber_id),
            recipient_email: &subscriber.email,
            recipient_name: subscriber.name.as_deref(),
            subject: &rendered.subject,
            body_text: &rendered.text,
            body_html: &rendered.html,
            list_unsubscribe: Some(&list_unsubscribe),
            message_id: &message_id,
            status: EmailStatus::Pending,
            next_attempt_at: now,
            created_at: now,
        },
    )?;
    Ok(())
}
