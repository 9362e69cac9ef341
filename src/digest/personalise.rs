//! Turns a claimed row into the message its reader gets. A digest's body is encoded once
//! per issue ([`PreparedIssue`]); each reader's copy adds only their headers and link.

use super::UNSUBSCRIBE_PLACEHOLDER;
use crate::config::Settings;
use crate::db::digests::IssueBody;
use crate::db::outbound::QueuedEmail;
use crate::mail::{Envelope, Outgoing, PreparedBody, build_message, build_prepared};
use crate::tokens::{UnsubscribeScope, UnsubscribeSigner};

/// An issue ready to send to any number of readers.
#[derive(Debug)]
pub struct PreparedIssue {
    subject: String,
    list_id: String,
    body: PreparedBody,
}

/// Fills in each reader's unsubscribe link, headers and `Message-ID`.
#[derive(Debug, Clone)]
pub struct Personaliser {
    signer: UnsubscribeSigner,
    settings: Settings,
}

impl Personaliser {
    /// A personaliser with the deployment's signer and base URL.
    pub fn new(settings: Settings, signer: UnsubscribeSigner) -> Self {
        Self { signer, settings }
    }

    /// Encodes an issue's body once, for all its readers.
    pub fn prepare(&self, issue: &IssueBody) -> PreparedIssue {
        PreparedIssue {
            subject: issue.subject.clone(),
            list_id: self.list_id(&issue.newsletter_title, &issue.newsletter_slug),
            body: PreparedBody::new(&issue.body_text, &issue.body_html, UNSUBSCRIBE_PLACEHOLDER),
        }
    }

    /// `List-Id` (RFC 2919) of a newsletter.
    fn list_id(&self, title: &str, slug: &str) -> String {
        let host = self.settings.base_url.host_str().unwrap_or("localhost");
        format!("{title} <{slug}.{host}>")
    }

    /// The message for a claimed row. Digest rows take their body from `issues`; `Err`
    /// when the row cannot be sent (its issue is gone, or its address is unusable).
    pub fn message(
        &self,
        email: &QueuedEmail,
        issue: Option<&PreparedIssue>,
    ) -> Result<Outgoing, String> {
        let (Some(issue_id), Some(subscription_id)) = (email.issue_id, email.subscription_id)
        else {
            return build_message(&self.settings.from, email, None)
                .map(|message| Outgoing::from_message(&message));
        };
        let issue = issue.ok_or_else(|| format!("digest issue {issue_id} no longer exists"))?;
        let token = self
            .signer
            .sign(UnsubscribeScope::Subscription(subscription_id));
        let unsubscribe = self.settings.link(&format!("/unsubscribe?token={token}"));
        // Stable across retries, unique per reader and issue.
        let message_id = format!(
            "digest.{issue_id}.{subscription_id}@{}",
            self.settings.from.email.domain()
        );
        self.digest_copy(
            issue,
            &email.recipient_email,
            email.recipient_name.as_deref(),
            &message_id,
            &unsubscribe,
        )
    }

    /// One reader's copy of a prepared issue.
    pub fn digest_copy(
        &self,
        issue: &PreparedIssue,
        recipient_email: &str,
        recipient_name: Option<&str>,
        message_id: &str,
        unsubscribe: &str,
    ) -> Result<Outgoing, String> {
        let envelope = Envelope {
            from: &self.settings.from,
            recipient_email,
            recipient_name,
            subject: &issue.subject,
            message_id,
            list_id: Some(&issue.list_id),
            list_unsubscribe: Some(unsubscribe),
        };
        build_prepared(&envelope, &issue.body, unsubscribe)
    }
}
