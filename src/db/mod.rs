//! Storage through diesel on SQLite (embedded, the default) or PostgreSQL (scale-out).
//!
//! Error rule: queries return `QueryResult`; callers at the edges turn a failure into a
//! typed error (503 for an unreachable database) and never into "not found".

pub mod bounces;
pub mod confirmation_tokens;
mod connecting;
pub mod dashboard;
pub mod digests;
pub mod feeds;
pub mod newsletters;
pub mod operators;
pub mod outbound;
pub mod queue_stats;
pub mod schema;
pub mod secrets;
pub mod signups;
pub mod states;
mod storage_error;
pub mod stories;
pub mod subscribers;
pub mod subscriptions;
mod write;

pub use connecting::stop_connecting;
pub use storage_error::StorageError;
pub use write::write_transaction;

use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{DatabaseUrl, Settings, SqliteSynchronous};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite writer waits for the lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// An arbitrary constant that serialises migrations across processes on PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x5370_6163_6544_6967;

/// A connection to either backend; the variant is chosen from the URL scheme.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL.
    Pg(PgConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
}

/// A pool of connections shared by the web server and the workers.
pub type Pool = r2d2::Pool<ConnectionManager>;
/// Runs `$body` with `$conn` bound to the concrete connection of either backend. For the
/// few queries whose SQL differs (upserts, `SKIP LOCKED`), so each stays in one place.
#[macro_export]
macro_rules! on_backend {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::DbConnection::Pg($conn) => $body,
            $crate::db::DbConnection::Sqlite($conn) => $body,
        }
    };
}

/// Opens connections of the configured backend and prepares each one.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    synchronous: SqliteSynchronous,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl, synchronous: SqliteSynchronous) -> Self {
        Self { url, synchronous }
    }

    fn connect(&self) -> Result<DbConnection, diesel::ConnectionError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let _attempt = connecting::begin().ok_or_else(|| {
                    diesel::ConnectionError::BadConnection("the program is exiting".into())
                })?;
                PgConnection::establish(url).map(DbConnection::Pg)
            }
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)?;
                let synchronous = match self.synchronous {
                    SqliteSynchronous::Full => "FULL",
                    SqliteSynchronous::Normal => "NORMAL",
                };
                // WAL lets readers run beside the one writer; the busy timeout makes a
                // second writer wait instead of failing with "database is locked".
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        ConnectionManager::connect(self).map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

/// Builds the pool. Connections are opened lazily, so a database that is down at start
/// delays work rather than stopping the program; `migrate` reports it plainly.
pub fn pool(settings: &Settings) -> Pool {
    r2d2::Pool::builder()
        .max_size(settings.database.pool_size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(5))
        .build_unchecked(ConnectionManager::new(
            settings.database.url.clone(),
            settings.database.sqlite_synchronous,
        ))
}

/// Creates the SQLite file's directory when needed, then applies pending migrations.
pub fn migrate(pool: &Pool) -> anyhow::Result<Vec<String>> {
    let mut conn = pool.get()?;
    let applied = match &mut *conn {
        DbConnection::Pg(pg) => {
            // Two processes starting together must not both run the same migration.
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            let result = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect());
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            result
        }
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect()),
    };
    applied.map_err(|e| anyhow::anyhow!("applying migrations failed: {e}"))
}

/// Now, in UTC, at the microsecond precision both backends store.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// Runs a diesel closure on the blocking thread pool, never on the async executor.
pub async fn run<T, F>(pool: &Pool, f: F) -> Result<T, StorageError>
where
    F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        f(&mut conn).map_err(StorageError::from)
    })
    .await
    .map_err(|e| StorageError::Task(e.to_string()))?
}

/// Like [`run`], for closures with their own error type.
pub async fn run_with<T, E, F>(pool: &Pool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StorageError> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(StorageError::from)?;
        f(&mut conn)
    })
    .await
    .map_err(|e| E::from(StorageError::Task(e.to_string())))?
}

/// Like [`run_with`], for closures that write. On SQLite the process's one writer turn
/// is taken before a connection is checked out, so writers waiting behind a lock (another
/// process's, or a slow writer's) do not hold the connections that readers need; WAL lets
/// those readers go on meanwhile. For the writes many readers may make at once; `url` is
/// the pool's.
pub async fn run_writing<T, E, F>(pool: &Pool, url: &DatabaseUrl, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StorageError> + From<diesel::result::Error> + Send + 'static,
{
    let pool = pool.clone();
    let sqlite = matches!(url, DatabaseUrl::Sqlite(_));
    tokio::task::spawn_blocking(move || {
        let _turn = if sqlite {
            Some(write::take_turn()?)
        } else {
            None
        };
        let mut conn = pool.get().map_err(StorageError::from)?;
        f(&mut conn)
    })
    .await
    .map_err(|e| E::from(StorageError::Task(e.to_string())))?
}
