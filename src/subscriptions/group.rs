//! A group of signups, decided and written together in the caller's transaction:
//!
//! 1. the group's mailboxes are held (on PostgreSQL, row locks in key order), then what
//!    the rules need is read for every address at once: subscribers, subscriptions,
//!    bounce marks, and each mailbox's confirmation emails of the last day;
//! 2. each signup is decided by [`rules::decide`], in order, against that state as the
//!    earlier signups of the group left it, so two signups of one address or mailbox are
//!    decided as if one after the other;
//! 3. the decisions are written with one statement per kind of row; a signup that
//!    stores nothing else still writes its mailbox's row, so no commit is cheaper than
//!    another and the answer's timing tells nothing about the address.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::rules::{self, Decision, Limits, MailboxHistory, SignupOutcome, Standing};
use super::signup::{PreparedSignup, confirmation_email};
use super::{Policy, ServiceError};
use crate::db::signups::{self as store, StoredSubscriber};
use crate::db::states::SubscriptionStatus as Status;
use crate::db::subscribers::NewSubscriber;
use crate::db::{self, DbConnection, newsletters};
use crate::domain::SubscriberName;
use crate::mail::RenderedEmail;

/// One address of the group as its signups are decided.
struct Address<'a> {
    /// `SubscriberEmail::key`.
    key: &'a str,
    stored: Option<&'a StoredSubscriber>,
    standing: Standing,
    /// The signup that creates the subscriber, for an address not stored yet.
    created_by: Option<usize>,
    /// The signup whose link is the address's newest: it confirms what awaits.
    link: Option<usize>,
    /// The signup whose name and IP are stored.
    details: Option<usize>,
}

impl<'a> Address<'a> {
    fn of(key: &'a str, stored: Option<&'a StoredSubscriber>) -> Self {
        let standing = stored.map_or_else(Standing::default, |s| Standing {
            known: true,
            bounced: s.bounced,
            subscriptions: s.subscriptions.iter().copied().collect(),
        });
        Self {
            key,
            stored,
            standing,
            created_by: None,
            link: None,
            details: None,
        }
    }
}

/// Records one prepared signup; the caller provides the transaction.
pub fn record_one(
    conn: &mut DbConnection,
    policy: &Policy,
    prepared: &PreparedSignup,
) -> Result<SignupOutcome, ServiceError> {
    let mut outcomes = record(conn, policy, &[prepared])?;
    Ok(outcomes.pop().unwrap_or(SignupOutcome::Throttled))
}

/// Records these signups in the caller's transaction; their outcomes, in order.
pub fn record(
    conn: &mut DbConnection,
    policy: &Policy,
    group: &[&PreparedSignup],
) -> Result<Vec<SignupOutcome>, ServiceError> {
    let now = db::now();
    let limits = Limits::of(&policy.signup);

    let mut mailbox_keys: Vec<String> = group.iter().map(|s| s.mailbox_key.clone()).collect();
    mailbox_keys.sort_unstable();
    mailbox_keys.dedup();
    store::hold_mailboxes(conn, &mailbox_keys, now)?;
    let mut email_keys: Vec<String> = group.iter().map(|s| s.email_key.clone()).collect();
    email_keys.sort_unstable();
    email_keys.dedup();
    let stored = store::subscribers_by_key(conn, &email_keys)?;
    let mut sent: HashMap<String, Vec<NaiveDateTime>> = HashMap::new();
    for (key, at) in store::recent_confirmations(conn, &mailbox_keys, now - rules::DAY)? {
        sent.entry(key).or_default().push(at);
    }
    let mut mailboxes: HashMap<&str, MailboxHistory> = mailbox_keys
        .iter()
        .map(|key| {
            let history = MailboxHistory::new(sent.remove(key).unwrap_or_default());
            (key.as_str(), history)
        })
        .collect();

    // In order of first appearance in the group: every statement writes its rows so.
    let mut addresses: Vec<Address<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let stored: HashMap<&str, &StoredSubscriber> =
        stored.iter().map(|s| (s.email_key.as_str(), s)).collect();
    let mut decisions = Vec::with_capacity(group.len());
    for (i, signup) in group.iter().enumerate() {
        let key = signup.email_key.as_str();
        let at = *index.entry(key).or_insert_with(|| {
            addresses.push(Address::of(key, stored.get(key).copied()));
            addresses.len() - 1
        });
        let address = &mut addresses[at];
        let history = mailboxes.entry(signup.mailbox_key.as_str()).or_default();
        let asked: Vec<i64> = signup.request.newsletters.iter().map(|n| n.id).collect();
        let decision = rules::decide(&address.standing, history, &asked, &limits, now);
        if let Decision::Confirm { rename, .. } = &decision {
            history.record(now);
            address.link = Some(i);
            if address.stored.is_none() && address.created_by.is_none() {
                address.created_by = Some(i);
            }
            if *rename {
                address.details = Some(i);
            }
        }
        address.standing.apply(&decision);
        decisions.push(decision);
    }

    write(conn, policy, group, &addresses, &decisions, now)?;
    let idle: Vec<&str> = group
        .iter()
        .zip(&decisions)
        .filter(|(_, decision)| !matches!(decision, Decision::Confirm { .. }))
        .map(|(signup, _)| signup.mailbox_key.as_str())
        .collect();
    store::note_signups(conn, &idle, now)?;
    Ok(decisions.iter().map(Decision::outcome).collect())
}

/// Stores what was decided: new subscribers first (the other rows need their ids), then
/// links, subscriptions, details and emails, in the order the rest of the application
/// takes the same rows, so that a concurrent confirm or erase waits rather than deadlocks.
fn write(
    conn: &mut DbConnection,
    policy: &Policy,
    group: &[&PreparedSignup],
    addresses: &[Address<'_>],
    decisions: &[Decision],
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let name = |i: usize| group[i].request.name.as_ref().map(SubscriberName::as_str);
    let ip = |i: usize| group[i].request.ip.as_deref();

    let new: Vec<NewSubscriber<'_>> = addresses
        .iter()
        .filter_map(|a| {
            a.created_by
                .map(|first| (first, a.details.unwrap_or(first)))
        })
        .map(|(first, details)| NewSubscriber {
            email: group[first].request.email.as_str(),
            email_key: &group[first].email_key,
            mailbox_key: &group[first].mailbox_key,
            name: name(details),
            signup_ip: ip(details),
            created_at: now,
            updated_at: now,
        })
        .collect();
    let inserted: HashMap<String, i64> = store::insert_subscribers(conn, &new, now)?
        .into_iter()
        .collect();
    let id_of = |a: &Address<'_>| -> Result<i64, ServiceError> {
        match (a.stored, a.created_by) {
            (Some(stored), _) => Ok(stored.id),
            (None, Some(first)) => inserted
                .get(&group[first].email_key)
                .copied()
                .ok_or(ServiceError::from(diesel::result::Error::NotFound)),
            (None, None) => Err(diesel::result::Error::NotFound.into()),
        }
    };

    let mut retired = Vec::new();
    let mut links = Vec::new();
    let mut awaiting = Vec::new();
    let mut details = Vec::new();
    for address in addresses {
        let Some(link) = address.link else {
            continue;
        };
        let subscriber_id = id_of(address)?;
        let token_hash = group[link].token_hash.as_str();
        if address.stored.is_some() {
            retired.push(subscriber_id);
            if let Some(i) = address.details {
                details.push(store::Details {
                    subscriber_id,
                    name: name(i),
                    signup_ip: ip(i),
                });
            }
        }
        links.push(store::NewToken {
            token_hash,
            subscriber_id,
        });
        awaiting.extend(
            address
                .standing
                .subscriptions
                .iter()
                .filter(|(_, status)| **status == Status::Pending)
                .map(|(newsletter_id, _)| store::Awaiting {
                    subscriber_id,
                    newsletter_id: *newsletter_id,
                    token_hash,
                }),
        );
    }
    store::retire_tokens(conn, &retired)?;
    store::insert_tokens(conn, &links, now, now + policy.signup.confirmation_ttl)?;
    store::await_confirmation(conn, &awaiting, now)?;
    store::update_details(conn, &details)?;

    let rendered = rerendered(conn, policy, group, decisions)?;
    let by_key: HashMap<&str, &Address<'_>> = addresses.iter().map(|a| (a.key, a)).collect();
    let mut emails = Vec::new();
    for (i, decision) in decisions.iter().enumerate() {
        if !matches!(decision, Decision::Confirm { .. }) {
            continue;
        }
        let signup = group[i];
        let address = by_key[signup.email_key.as_str()];
        let email = rendered[i].as_ref().unwrap_or(&signup.email);
        emails.push(store::Confirmation {
            subscriber_id: id_of(address)?,
            // As stored: the first spelling the address was signed up with.
            recipient_email: match (address.stored, address.created_by) {
                (Some(stored), _) => stored.email.as_str(),
                (None, Some(first)) => group[first].request.email.as_str(),
                (None, None) => signup.request.email.as_str(),
            },
            recipient_name: name(i),
            subject: &email.subject,
            body_text: &email.text,
            body_html: &email.html,
            message_id: &signup.message_id,
        });
    }
    store::queue_confirmations(conn, &emails, now)?;
    Ok(())
}

/// The confirmation emails that must list other newsletters than the ones asked for
/// (those already pending): the email rendered before the transaction serves the rest, so
/// the common case renders nothing while the write lock is held.
fn rerendered(
    conn: &mut DbConnection,
    policy: &Policy,
    group: &[&PreparedSignup],
    decisions: &[Decision],
) -> Result<Vec<Option<RenderedEmail>>, ServiceError> {
    let mut titles: Option<HashMap<i64, String>> = None;
    let mut rendered = Vec::with_capacity(decisions.len());
    for (signup, decision) in group.iter().zip(decisions) {
        let Decision::Confirm { confirms, .. } = decision else {
            rendered.push(None);
            continue;
        };
        let mut asked: Vec<i64> = signup.request.newsletters.iter().map(|n| n.id).collect();
        asked.sort_unstable();
        asked.dedup();
        if *confirms == asked {
            rendered.push(None);
            continue;
        }
        if titles.is_none() {
            titles = Some(
                newsletters::all(conn)?
                    .into_iter()
                    .map(|n| (n.id, n.title))
                    .collect(),
            );
        }
        let known = titles.as_ref();
        let listed = confirms
            .iter()
            .filter_map(|id| known.and_then(|t| t.get(id)).cloned())
            .collect();
        rendered.push(Some(confirmation_email(
            policy,
            &signup.request,
            &signup.token,
            listed,
        )?));
    }
    Ok(rendered)
}
