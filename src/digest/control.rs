//! An operator's hand on a send in progress: pause, resume, cancel. Each reads the send's
//! state and changes it in one write transaction, and repeating an action that already
//! took effect changes nothing.

use crate::db::digests::{self, IssueCounts, SendState};
use crate::db::{self, DbConnection, outbound, write_transaction};

/// What an operator asked of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Hold back what has not gone out.
    Pause,
    /// Let paused deliveries go out again.
    Resume,
    /// Drop what has not gone out.
    Cancel,
}

/// What an action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controlled {
    /// It took effect on this many deliveries.
    Done(usize),
    /// It had already taken effect (a repeated click); nothing changed.
    AlreadyDone,
    /// It does not apply to the send in this state; nothing changed.
    Refused(Refusal),
}

/// Why an action does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The issue was never queued.
    NotSent,
    /// The send is in this state.
    State(SendState),
}

/// Applies `action` to the issue's send. `None` when there is no such issue.
pub fn apply(
    conn: &mut DbConnection,
    issue_id: i64,
    action: Action,
) -> diesel::QueryResult<Option<Controlled>> {
    write_transaction(conn, |conn| {
        let Some(found) = digests::find_by_id(conn, issue_id)? else {
            return Ok(None);
        };
        if found.issue.fanned_out_at.is_none() {
            return Ok(Some(Controlled::Refused(Refusal::NotSent)));
        }
        let counts = digests::counts(conn, issue_id)?;
        Ok(Some(decide(conn, issue_id, action, &counts)?))
    })
}

fn decide(
    conn: &mut DbConnection,
    issue_id: i64,
    action: Action,
    counts: &IssueCounts,
) -> diesel::QueryResult<Controlled> {
    let state = counts.state();
    Ok(match (action, state) {
        (Action::Pause, SendState::Sending) => {
            Controlled::Done(outbound::pause_issue(conn, issue_id)?)
        }
        (Action::Pause, SendState::Paused) => Controlled::AlreadyDone,
        (Action::Resume, SendState::Paused) => {
            Controlled::Done(outbound::resume_issue(conn, issue_id)?)
        }
        (Action::Resume, SendState::Sending) => Controlled::AlreadyDone,
        (Action::Cancel, SendState::Sending | SendState::Paused) => {
            Controlled::Done(outbound::cancel_issue(conn, issue_id, db::now())?)
        }
        (Action::Cancel, SendState::Cancelled) => Controlled::AlreadyDone,
        (_, state) => Controlled::Refused(Refusal::State(state)),
    })
}
