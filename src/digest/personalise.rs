//! Turns a claimed digest row into the reader's own copy of the issue.

use std::collections::HashMap;
use std::sync::Arc;

use super::UNSUBSCRIBE_PLACEHOLDER;
use crate::config::Settings;
use crate::db::digests::IssueBody;
use crate::db::outbound::QueuedEmail;
use crate::tokens::{UnsubscribeScope, UnsubscribeSigner};

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

    /// Completes a digest row from its issue; other rows are left as they are. Returns the
    /// `List-Id` for digests. `Err` when the issue is gone (the row cannot be sent).
    pub fn apply(
        &self,
        email: &mut QueuedEmail,
        issues: &HashMap<i64, Arc<IssueBody>>,
    ) -> Result<Option<String>, String> {
        let (Some(issue_id), Some(subscription_id)) = (email.issue_id, email.subscription_id)
        else {
            return Ok(None);
        };
        let issue = issues
            .get(&issue_id)
            .ok_or_else(|| format!("digest issue {issue_id} no longer exists"))?;
        let token = self
            .signer
            .sign(UnsubscribeScope::Subscription(subscription_id));
        let unsubscribe = self.settings.link(&format!("/unsubscribe?token={token}"));
        email.subject.clone_from(&issue.subject);
        email.body_text = issue
            .body_text
            .replace(UNSUBSCRIBE_PLACEHOLDER, &unsubscribe);
        email.body_html = issue
            .body_html
            .replace(UNSUBSCRIBE_PLACEHOLDER, &unsubscribe);
        email.list_unsubscribe = Some(unsubscribe);
        // Stable across retries, unique per reader and issue.
        email.message_id = format!(
            "digest.{issue_id}.{subscription_id}@{}",
            self.settings.from.email.domain()
        );
        let host = self.settings.base_url.host_str().unwrap_or("localhost");
        Ok(Some(format!(
            "{} <{}.{host}>",
            issue.newsletter_title, issue.newsletter_slug
        )))
    }
}
