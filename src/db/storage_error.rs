//! Why a storage call failed, and whether trying again later may help.

/// Why a storage call from async code failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No connection could be had: the database is down or overloaded.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[from] r2d2::Error),
    /// A query failed.
    #[error("a database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// The blocking task was cancelled or panicked.
    #[error("a database task did not finish: {0}")]
    Task(String),
    /// A write shared with others could not be made; trying again later may succeed.
    #[error("the database could not take the write: {0}")]
    Busy(String),
}

impl StorageError {
    /// True when retrying later may help (connection trouble rather than a bad query).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Busy(_) => true,
            Self::Query(error) => query_error_is_unavailable(error),
            Self::Task(_) => false,
        }
    }
}

/// Messages of errors that mean the database went away or is busy, not that the query
/// was wrong: diesel reports no SQLSTATE, and a PostgreSQL shutdown or crash, or a SQLite
/// lock held past the busy timeout, arrives as an error of kind `Unknown`.
const UNAVAILABLE_MESSAGES: &[&str] = &[
    // SQLite: SQLITE_BUSY and SQLITE_LOCKED.
    "database is locked",
    "database table is locked",
    "database schema is locked",
    // PostgreSQL: 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
    "terminating connection due to",
    "terminating connection because of crash",
    "the database system is",
    // libpq, when the server is gone mid-conversation.
    "server closed the connection unexpectedly",
    "no connection to the server",
    "could not receive data from server",
    "could not send data to server",
    "connection to server was lost",
];

fn query_error_is_unavailable(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(kind, info) => {
            matches!(
                kind,
                DatabaseErrorKind::ClosedConnection
                    | DatabaseErrorKind::UnableToSendCommand
                    | DatabaseErrorKind::SerializationFailure
            ) || {
                let message = info.message().to_ascii_lowercase();
                UNAVAILABLE_MESSAGES.iter().any(|m| message.contains(m))
            }
        }
        Error::BrokenTransactionManager => true,
        Error::RollbackErrorOnCommit {
            rollback_error,
            commit_error,
        } => query_error_is_unavailable(rollback_error) || query_error_is_unavailable(commit_error),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn failed(kind: DatabaseErrorKind, message: &str) -> StorageError {
        StorageError::Query(Error::DatabaseError(kind, Box::new(message.to_owned())))
    }

    #[test]
    fn a_database_gone_away_or_locked_is_unavailable_and_a_bad_query_is_not() {
        for message in [
            "database is locked",
            "terminating connection due to administrator command",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            "the database system is shutting down",
            "no connection to the server",
        ] {
            assert!(
                failed(DatabaseErrorKind::Unknown, message).is_unavailable(),
                "{message}"
            );
        }
        assert!(failed(DatabaseErrorKind::UnableToSendCommand, "").is_unavailable());
        assert!(failed(DatabaseErrorKind::ClosedConnection, "").is_unavailable());
        assert!(
            !failed(DatabaseErrorKind::Unknown, "syntax error at or near \"x\"").is_unavailable()
        );
        assert!(!failed(DatabaseErrorKind::UniqueViolation, "duplicate key").is_unavailable());
        assert!(!StorageError::Query(Error::NotFound).is_unavailable());
    }
}
