//! An email rendered from its three templates (subject, text, HTML).

use askama::Template;

use super::templates::{
    ConfirmationEmail, ConfirmationHtml, ConfirmationSubject, ConfirmationText, DigestEmail,
    DigestHtml, DigestSubject, DigestText, WelcomeEmail, WelcomeHtml, WelcomeSubject, WelcomeText,
};

/// Subject and both bodies, ready to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line.
    pub subject: String,
    /// `text/plain`.
    pub text: String,
    /// `text/html`.
    pub html: String,
}

impl RenderedEmail {
    /// The double opt-in email.
    pub fn confirmation(email: &ConfirmationEmail) -> askama::Result<Self> {
        Ok(Self {
            subject: one_line(&ConfirmationSubject { email }.render()?),
            text: ConfirmationText { email }.render()?,
            html: inline_css(&ConfirmationHtml { email }.render()?),
        })
    }

    /// One day's digest.
    pub fn digest(email: &DigestEmail) -> askama::Result<Self> {
        Ok(Self {
            subject: one_line(&DigestSubject { email }.render()?),
            text: DigestText { email }.render()?,
            html: inline_css(&DigestHtml { email }.render()?),
        })
    }

    /// The email that follows a confirmation.
    pub fn welcome(email: &WelcomeEmail) -> askama::Result<Self> {
        Ok(Self {
            subject: one_line(&WelcomeSubject { email }.render()?),
            text: WelcomeText { email }.render()?,
            html: inline_css(&WelcomeHtml { email }.render()?),
        })
    }
}

/// Gmail and Outlook drop `<style>` blocks in many views: the rules are copied onto each
/// element, and the block stays for clients that honour its media queries.
fn inline_css(html: &str) -> String {
    let inliner = css_inline::CSSInliner::options()
        .keep_style_tags(true)
        .build();
    match inliner.inline(html) {
        Ok(inlined) => inlined,
        Err(error) => {
            // Our own templates: a failure is a bug, but the uninlined mail still reads well.
            tracing::error!(%error, "inlining email CSS failed");
            html.to_owned()
        }
    }
}

/// Subjects come from templates with user data in them; a line break there would start
/// a new header, so whitespace runs collapse to one space.
fn one_line(subject: &str) -> String {
    subject.split_whitespace().collect::<Vec<_>>().join(" ")
}
