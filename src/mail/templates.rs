//! Askama templates for outgoing email: subject, plain-text and HTML parts.

use askama::Template;

/// Data for the double opt-in confirmation email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationEmail {
    /// Subscriber's name, if given.
    pub name: Option<String>,
    /// Absolute URL of the confirmation page.
    pub confirm_url: String,
    /// Titles of the newsletters requested.
    pub newsletters: Vec<String>,
    /// Hours until the link expires.
    pub expires_hours: i64,
}

/// Subject line of the confirmation email.
#[derive(Debug, Template)]
#[template(path = "email/confirmation/subject.txt")]
pub struct ConfirmationSubject<'a> {
    /// Email data.
    pub email: &'a ConfirmationEmail,
}

/// Plain-text part of the confirmation email.
#[derive(Debug, Template)]
#[template(path = "email/confirmation/body.txt")]
pub struct ConfirmationText<'a> {
    /// Email data.
    pub email: &'a ConfirmationEmail,
}

/// HTML part of the confirmation email.
#[derive(Debug, Template)]
#[template(path = "email/confirmation/body.html")]
pub struct ConfirmationHtml<'a> {
    /// Email data.
    pub email: &'a ConfirmationEmail,
}

/// One confirmed newsletter listed in the welcome email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeNewsletter {
    /// Newsletter name.
    pub title: String,
    /// Absolute URL that unsubscribes from this newsletter only.
    pub unsubscribe_url: String,
}

/// Data for the welcome email sent after confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeEmail {
    /// Subscriber's name, if given.
    pub name: Option<String>,
    /// Newsletters now active.
    pub newsletters: Vec<WelcomeNewsletter>,
    /// Absolute URL that unsubscribes from everything.
    pub unsubscribe_all_url: String,
    /// Absolute URL of the signup site.
    pub home_url: String,
}

/// Subject line of the welcome email.
#[derive(Debug, Template)]
#[template(path = "email/welcome/subject.txt")]
pub struct WelcomeSubject<'a> {
    /// Email data.
    pub email: &'a WelcomeEmail,
}

/// Plain-text part of the welcome email.
#[derive(Debug, Template)]
#[template(path = "email/welcome/body.txt")]
pub struct WelcomeText<'a> {
    /// Email data.
    pub email: &'a WelcomeEmail,
}

/// HTML part of the welcome email.
#[derive(Debug, Template)]
#[template(path = "email/welcome/body.html")]
pub struct WelcomeHtml<'a> {
    /// Email data.
    pub email: &'a WelcomeEmail,
}
