//! `POST /unsubscribe`: leave one newsletter or all of them, in one step.

use crate::db::states::SubscriptionStatus as Status;
use crate::db::{self, DbConnection};
use crate::db::{subscribers, subscriptions};
use crate::tokens::UnsubscribeScope;

use super::ServiceError;

/// What "all" is called on pages.
const ALL_NEWSLETTERS: &str = "all our newsletters";

/// The result shown after unsubscribing, with what a resubscribe form needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribed {
    /// "Space Daily", or "all our newsletters".
    pub what: String,
    /// The subscriber's address, for the resubscribe form.
    pub email: String,
    /// Slugs to resubscribe to.
    pub newsletter_slugs: Vec<String>,
    /// Whether this unsubscribed anything (false when repeated).
    pub changed: bool,
}

/// What the link would unsubscribe from, for the page behind `GET`; `None` when the
/// subscription no longer exists.
pub fn describe_scope(
    conn: &mut DbConnection,
    scope: UnsubscribeScope,
) -> Result<Option<String>, ServiceError> {
    Ok(match scope {
        UnsubscribeScope::Subscription(id) => {
            subscriptions::find_subscription(conn, id)?.map(|(_, _, newsletter)| newsletter.title)
        }
        UnsubscribeScope::Subscriber(id) => {
            subscribers::find(conn, id)?.map(|_| ALL_NEWSLETTERS.to_owned())
        }
    })
}

/// Unsubscribes; repeating it is harmless. `None` when the subscription no longer exists.
pub fn unsubscribe(
    conn: &mut DbConnection,
    scope: UnsubscribeScope,
) -> Result<Option<Unsubscribed>, ServiceError> {
    db::write_transaction(conn, |conn| {
        let now = db::now();
        match scope {
            UnsubscribeScope::Subscription(id) => {
                let Some((_, subscriber, newsletter)) = subscriptions::find_subscription(conn, id)?
                else {
                    return Ok(None);
                };
                let changed = subscriptions::unsubscribe_one(conn, id, now)?;
                if changed {
                    tracing::info!(subscriber_id = subscriber.id, newsletter = %newsletter.slug, "unsubscribed");
                }
                Ok(Some(Unsubscribed {
                    what: newsletter.title,
                    email: subscriber.email,
                    newsletter_slugs: vec![newsletter.slug],
                    changed,
                }))
            }
            UnsubscribeScope::Subscriber(id) => {
                let Some(subscriber) = subscribers::find(conn, id)? else {
                    return Ok(None);
                };
                let changed = subscriptions::unsubscribe_all(conn, id, now)?;
                if changed > 0 {
                    tracing::info!(
                        subscriber_id = id,
                        subscriptions = changed,
                        "unsubscribed from all"
                    );
                }
                let slugs = subscriptions::newsletters_with_status(conn, id, Status::Unsubscribed)?
                    .into_iter()
                    .map(|n| n.slug)
                    .collect();
                Ok(Some(Unsubscribed {
                    what: ALL_NEWSLETTERS.to_owned(),
                    email: subscriber.email,
                    newsletter_slugs: slugs,
                    changed: changed > 0,
                }))
            }
        }
    })
}
