//! A signup before it is recorded: the valid request, and the work done before the
//! transaction (its token and its confirmation email). [`super::group`] records it.

use super::{Policy, ServiceError};
use crate::db::newsletters::Newsletter;
use crate::domain::{SubscriberEmail, SubscriberName};
use crate::mail::templates::ConfirmationEmail;
use crate::mail::{RenderedEmail, new_message_id};
use crate::tokens;

pub use super::rules::SignupOutcome;

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

/// A signup with the work that needs no database done in advance: a fresh token, and the
/// confirmation email as a brand-new reader of the requested newsletters gets it. Rendering
/// before the transaction keeps the write lock for writing.
#[derive(Debug)]
pub struct PreparedSignup {
    pub(super) request: SignupRequest,
    /// `SubscriberEmail::key`.
    pub(super) email_key: String,
    /// `SubscriberEmail::mailbox_key`.
    pub(super) mailbox_key: String,
    pub(super) token: String,
    pub(super) token_hash: String,
    pub(super) message_id: String,
    pub(super) email: RenderedEmail,
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
        email_key: request.email.key(),
        mailbox_key: request.email.mailbox_key(),
        message_id: new_message_id(&policy.from),
        request,
        token,
        token_hash,
        email,
    })
}

/// The confirmation email whose link carries `token` and asks about `newsletters`.
pub(super) fn confirmation_email(
    policy: &Policy,
    request: &SignupRequest,
    token: &str,
    newsletters: Vec<String>,
) -> Result<RenderedEmail, ServiceError> {
    let ttl = policy.signup.confirmation_ttl;
    Ok(RenderedEmail::confirmation(&ConfirmationEmail {
        name: request.name.as_ref().map(|n| n.as_str().to_owned()),
        confirm_url: policy.link(&format!("/subscriptions/confirm?token={token}")),
        newsletters,
        expires_hours: i64::try_from(ttl.as_secs() / 3600).unwrap_or(i64::MAX),
    })?)
}
