//! The database going away under load: PostgreSQL restarted or stopped mid-send and
//! during signups (each test on a private cluster, `crate::support::pg_cluster`, since the shared
//! server must stay up for every other test), and SQLite locked by another process.

mod pg_down_signups;
mod pg_exit;
mod pg_restart;
mod sqlite_locked;

use spacedigest::config::{DatabaseUrl, Settings};

use std::time::Duration;

use crate::support::app::{Mail, TestApp, mail_to_within, spawn_app_with, unique_email};
use crate::support::pg_cluster::PgCluster;
use crate::support::smtp_server::ReceivedMessage;

/// The app on a database of its own in `cluster`, with a fresh SMTP server.
pub async fn app_on_cluster(cluster: &PgCluster, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let url = cluster.create_database("spacedigest").await;
    spawn_app_with(Mail::Server, move |settings| {
        settings.database.url = DatabaseUrl::Postgres(url);
        configure(settings);
    })
    .await
}

/// What a reader could find half-done: a subscriber without a subscription, a pending
/// subscription without its confirmation token or without its confirmation email.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PartialRows {
    pub subscribers_without_subscription: usize,
    pub pending_without_token: usize,
    pub pending_without_confirmation_email: usize,
}

impl PartialRows {
    pub fn total(&self) -> usize {
        self.subscribers_without_subscription
            + self.pending_without_token
            + self.pending_without_confirmation_email
    }
}

/// Checks every subscriber in the database for half-done signups.
pub async fn partial_rows(app: &TestApp) -> PartialRows {
    use diesel::prelude::*;
    use spacedigest::db::schema::{
        confirmation_tokens, outbound_emails, subscribers, subscriptions,
    };
    use std::collections::HashSet;
    let (subscriber_ids, subscriptions, tokens, confirmations) = app
        .db(|c| {
            let subscriber_ids: Vec<i64> = subscribers::table.select(subscribers::id).load(c)?;
            let subscriptions: Vec<(i64, String)> = subscriptions::table
                .select((subscriptions::subscriber_id, subscriptions::status))
                .load(c)?;
            let tokens: Vec<i64> = confirmation_tokens::table
                .select(confirmation_tokens::subscriber_id)
                .load(c)?;
            let confirmations: Vec<Option<i64>> = outbound_emails::table
                .filter(outbound_emails::kind.eq("confirmation"))
                .select(outbound_emails::subscriber_id)
                .load(c)?;
            Ok((subscriber_ids, subscriptions, tokens, confirmations))
        })
        .await;
    let with_subscription: HashSet<i64> = subscriptions.iter().map(|(id, _)| *id).collect();
    let tokens: HashSet<i64> = tokens.into_iter().collect();
    let confirmations: HashSet<i64> = confirmations.into_iter().flatten().collect();
    let pending: HashSet<i64> = subscriptions
        .iter()
        .filter(|(_, status)| status == "pending")
        .map(|(id, _)| *id)
        .collect();
    PartialRows {
        subscribers_without_subscription: subscriber_ids
            .iter()
            .filter(|id| !with_subscription.contains(id))
            .count(),
        pending_without_token: pending.iter().filter(|id| !tokens.contains(id)).count(),
        pending_without_confirmation_email: pending
            .iter()
            .filter(|id| !confirmations.contains(id))
            .count(),
    }
}

/// Whether `email` is stored as a subscriber at all.
pub async fn is_stored(app: &TestApp, email: &str) -> bool {
    use diesel::prelude::*;
    use spacedigest::db::schema::subscribers;
    let key = email.to_lowercase();
    let found: i64 = app
        .db(move |c| {
            subscribers::table
                .filter(subscribers::email_key.eq(key))
                .count()
                .get_result(c)
        })
        .await;
    found > 0
}

/// Fragments of database and driver errors that must never reach a page.
pub const RAW_ERROR_TEXT: &[&str] = &[
    "database is locked",
    "SQLITE",
    "refused",
    "timed out",
    "waiting for connection",
    "Is the server running",
    "terminating connection",
    "server closed the connection",
    "postgres",
    "r2d2",
    "diesel",
    "query failed",
];

/// Panics if `body` shows any raw error text.
pub fn assert_no_raw_error(what: &str, body: &str) {
    for raw in RAW_ERROR_TEXT {
        assert!(
            !body.to_lowercase().contains(&raw.to_lowercase()),
            "{what}: the answer shows the raw error text {raw:?}: {body}"
        );
    }
}

/// A reader with a confirmation link still to follow and one with an unsubscribe link,
/// both made through the real signup path.
pub struct ReadersWithLinks {
    /// The pending reader's confirmation link.
    pub confirm_link: String,
    /// Its token.
    pub confirm_token: String,
    /// The pending reader.
    pub pending: String,
    /// The confirmed reader's one-click unsubscribe URL.
    pub unsubscribe: String,
    /// The confirmed reader.
    pub leaving: String,
}

impl ReadersWithLinks {
    pub async fn sign_up(app: &TestApp) -> Self {
        let pending = unique_email();
        app.sign_up(&pending).await;
        let confirm_link = app.confirmation_link(&mail_to(app, &pending, 1).await[0]);
        let confirm_token = confirm_link.split("token=").nth(1).unwrap().to_owned();
        let leaving = unique_email();
        app.sign_up(&leaving).await;
        let link = app.confirmation_link(&mail_to(app, &leaving, 1).await[0]);
        assert_eq!(app.confirm_via(&link).await.status, 200);
        let welcome = mail_to(app, &leaving, 2).await.remove(1);
        let unsubscribe = welcome
            .header("List-Unsubscribe")
            .expect("the welcome email's unsubscribe link")
            .trim_matches(['<', '>'])
            .to_owned();
        Self {
            confirm_link,
            confirm_token,
            pending,
            unsubscribe,
            leaving,
        }
    }
}

/// Waits for `n` emails to `email`, longer than elsewhere: the database has just come back.
pub async fn mail_to(app: &TestApp, email: &str, n: usize) -> Vec<ReceivedMessage> {
    mail_to_within(app, email, n, Duration::from_secs(30)).await
}
