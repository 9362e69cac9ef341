//! An issue's recipients as the console pages through them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::outbound_emails;
use crate::db::states::EmailStatus;

/// Which of an issue's recipients to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientFilter {
    /// Every one.
    All,
    /// Accepted by the server.
    Sent,
    /// Refused or given up.
    Failed,
    /// Queued or retrying.
    Remaining,
    /// Held back by a pause.
    Paused,
    /// Not sent: the send was cancelled.
    Cancelled,
    /// Not sent: the reader left first.
    Skipped,
}

impl RecipientFilter {
    /// Every filter, in the order the console offers them.
    pub const ALL: [Self; 7] = [
        Self::All,
        Self::Sent,
        Self::Failed,
        Self::Remaining,
        Self::Paused,
        Self::Cancelled,
        Self::Skipped,
    ];

    /// The name in URLs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Remaining => "remaining",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    /// The filter named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    fn status(self) -> Option<EmailStatus> {
        match self {
            Self::All => None,
            Self::Sent => Some(EmailStatus::Sent),
            Self::Failed => Some(EmailStatus::Failed),
            Self::Remaining => Some(EmailStatus::Pending),
            Self::Paused => Some(EmailStatus::Paused),
            Self::Cancelled => Some(EmailStatus::Cancelled),
            Self::Skipped => Some(EmailStatus::Skipped),
        }
    }
}

/// One recipient of an issue, as the console lists it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbound_emails)]
pub struct Recipient {
    /// Row id (the page's key).
    pub id: i64,
    /// Address.
    pub recipient_email: String,
    /// Where it stands.
    pub status: EmailStatus,
    /// Attempts made.
    pub attempts: i32,
    /// When it reached its outcome.
    pub finished_at: Option<NaiveDateTime>,
    /// The server's last reply to a refusal or failure.
    pub last_error: Option<String>,
}

/// Where a page of recipients starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStart {
    /// The first page.
    First,
    /// The page after the row with this id.
    After(i64),
    /// The page before the row with this id.
    Before(i64),
}

/// A page of an issue's recipients in row order, keyed by id so that deep pages cost no
/// more than the first. Returns the rows and whether more lie beyond the page in the
/// direction it was read.
pub fn recipients(
    conn: &mut DbConnection,
    issue_id: i64,
    filter: RecipientFilter,
    start: PageStart,
    limit: i64,
) -> QueryResult<(Vec<Recipient>, bool)> {
    let mut query = outbound_emails::table
        .filter(outbound_emails::issue_id.eq(issue_id))
        .select(Recipient::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(state) = filter.status() {
        query = query.filter(outbound_emails::status.eq(state));
    }
    query = match start {
        PageStart::First => query.order(outbound_emails::id.asc()),
        PageStart::After(id) => query
            .filter(outbound_emails::id.gt(id))
            .order(outbound_emails::id.asc()),
        PageStart::Before(id) => query
            .filter(outbound_emails::id.lt(id))
            .order(outbound_emails::id.desc()),
    };
    let mut rows = query.load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if matches!(start, PageStart::Before(_)) {
        rows.reverse();
    }
    Ok((rows, more))
}
