//! An email rendered from its three templates (subject, text, HTML).

use askama::Template;

use super::templates::{
    ConfirmationEmail, ConfirmationHtml, ConfirmationSubject, ConfirmationText, WelcomeEmail,
    WelcomeHtml, WelcomeSubject, WelcomeText,
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
            html: ConfirmationHtml { email }.render()?,
        })
    }

    /// The email that follows a confirmation.
    pub fn welcome(email: &WelcomeEmail) -> askama::Result<Self> {
        Ok(Self {
            subject: one_line(&WelcomeSubject { email }.render()?),
            text: WelcomeText { email }.render()?,
            html: WelcomeHtml { email }.render()?,
        })
    }
}

/// Subjects come from templates with user data in them; a line break there would start
/// a new header, so whitespace runs collapse to one space.
fn one_line(subject: &str) -> String {
    subject.split_whitespace().collect::<Vec<_>>().join(" ")
}
