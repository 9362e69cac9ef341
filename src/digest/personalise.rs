//! Turns a claimed row into the message its reader gets. A digest's body is encoded once
//! per issue ([`PreparedIssue`]); each reader's copy adds only their headers and link.

use std::sync::Arc;

use super::UNSUBSCRIBE_PLACEHOLDER;
use crate::config::{MailStream, Settings};
use crate::db::digests::IssueBody;
use crate::db::outbound::QueuedEmail;
use crate::mail::{DkimSigner, Envelope, Outgoing, PreparedBody, build_message, build_prepared};
use crate::tokens::{UnsubscribeScope, UnsubscribeSigner};

/// An issue ready to send to any number of readers.
#[derive(Debug)]
pub struct PreparedIssue {
    subject: String,
    list_id: String,
    body: PreparedBody,
}

/// Fills in each reader's unsubscribe link, headers and `Message-ID`, and signs with DKIM.
#[derive(Debug, Clone)]
pub struct Personaliser {
    signer: UnsubscribeSigner,
    settings: Settings,
    /// DKIM signers of the transactional stream and of the digest (the same one when both
    /// sign for one domain); `None` when DKIM is not configured.
    dkim: Option<(Arc<DkimSigner>, Arc<DkimSigner>)>,
}

impl Personaliser {
    /// A personaliser with the deployment's signer, base URL, senders and DKIM key.
    pub fn new(settings: Settings, signer: UnsubscribeSigner) -> anyhow::Result<Self> {
        let dkim = match &settings.mail.dkim {
            None => None,
            Some(dkim) => {
                let signer_for = |stream| {
                    DkimSigner::new(dkim, settings.mail.from_for(stream)).map_err(|e| {
                        anyhow::anyhow!(
                            "invalid setting SPACEDIGEST_DKIM_KEY_PATH: {}: {e}",
                            dkim.key.path.display()
                        )
                    })
                };
                let transactional = Arc::new(signer_for(MailStream::Transactional)?);
                let digest = if dkim.domain_for(settings.mail.from_for(MailStream::Digest))
                    == transactional.domain()
                {
                    Arc::clone(&transactional)
                } else {
                    Arc::new(signer_for(MailStream::Digest)?)
                };
                Some((transactional, digest))
            }
        };
        Ok(Self {
            signer,
            settings,
            dkim,
        })
    }

    /// True when messages are DKIM-signed, which makes building one CPU work.
    pub fn signs(&self) -> bool {
        self.dkim.is_some()
    }

    /// The DKIM signer of a stream, if DKIM is configured.
    fn dkim_for(&self, stream: MailStream) -> Option<&DkimSigner> {
        self.dkim
            .as_ref()
            .map(|(transactional, digest)| match stream {
                MailStream::Transactional => transactional.as_ref(),
                MailStream::Digest => digest.as_ref(),
            })
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
        let host = self
            .settings
            .server
            .base_url
            .host_str()
            .unwrap_or("localhost");
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
            let stream = email.kind.stream();
            let envelope = Envelope {
                from: self.settings.mail.from_for(stream),
                recipient_email: &email.recipient_email,
                recipient_name: email.recipient_name.as_deref(),
                subject: &email.subject,
                message_id: &email.message_id,
                list_id: None,
                list_unsubscribe: email.list_unsubscribe.as_deref(),
            };
            return build_message(
                &envelope,
                &email.body_text,
                &email.body_html,
                self.dkim_for(stream),
            );
        };
        let issue = issue.ok_or_else(|| format!("digest issue {issue_id} no longer exists"))?;
        let token = self
            .signer
            .sign(UnsubscribeScope::Subscription(subscription_id));
        let unsubscribe = self
            .settings
            .server
            .link(&format!("/unsubscribe?token={token}"));
        // Stable across retries, unique per reader and issue.
        let message_id = format!(
            "digest.{issue_id}.{subscription_id}@{}",
            self.settings
                .mail
                .from_for(MailStream::Digest)
                .email
                .domain()
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
            from: self.settings.mail.from_for(MailStream::Digest),
            recipient_email,
            recipient_name,
            subject: &issue.subject,
            message_id,
            list_id: Some(&issue.list_id),
            list_unsubscribe: Some(unsubscribe),
        };
        build_prepared(
            &envelope,
            &issue.body,
            unsubscribe,
            self.dkim_for(MailStream::Digest),
        )
    }
}
