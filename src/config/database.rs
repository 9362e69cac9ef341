//! The database: where the data lives, how many connections each process opens, and
//! how hard SQLite holds on to each commit.

use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::ConfigError;
use super::values::Positive;

/// The database section.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `SPACEDIGEST_DATABASE_URL`.
    pub url: DatabaseUrl,
    /// `SPACEDIGEST_DB_POOL_SIZE`: connections per process.
    pub pool_size: u32,
    /// `SPACEDIGEST_SQLITE_SYNCHRONOUS`: `full` or `normal`.
    pub sqlite_synchronous: SqliteSynchronous,
}

/// Where the data lives, chosen by the URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// Embedded SQLite file.
    Sqlite(PathBuf),
    /// PostgreSQL server, the full libpq URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH` or `postgres://…` / `postgresql://…`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://spacedigest.db".into());
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Url::parse(raw).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
            Ok(Self::Postgres(raw.to_owned()))
        } else {
            Err("use sqlite://PATH or postgres://USER@HOST/DB".into())
        }
    }

    /// A description safe for logs: no password.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(raw) => match Url::parse(raw) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    url.to_string()
                }
                Err(_) => "postgres://…".into(),
            },
        }
    }
}

/// SQLite's `synchronous` pragma: FULL survives power loss, NORMAL may lose the last commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// fsync on every commit (the default: an accepted signup is never lost).
    Full,
    /// fsync at checkpoints only; faster, and WAL keeps the file consistent.
    Normal,
}

/// The database settings as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawDatabase {
    #[serde(default = "default_database_url")]
    database_url: String,
    #[serde(default = "Positive::of::<8>")]
    db_pool_size: Positive,
    #[serde(default = "default_sqlite_synchronous")]
    sqlite_synchronous: String,
}

fn default_database_url() -> String {
    "sqlite://spacedigest.db".into()
}

fn default_sqlite_synchronous() -> String {
    "full".into()
}

impl RawDatabase {
    pub(super) fn validate(self) -> Result<DatabaseSettings, ConfigError> {
        let url = DatabaseUrl::parse(&self.database_url)
            .map_err(|e| ConfigError::new("database_url", e))?;
        let sqlite_synchronous = match self.sqlite_synchronous.to_ascii_lowercase().as_str() {
            "full" => SqliteSynchronous::Full,
            "normal" => SqliteSynchronous::Normal,
            _ => {
                return Err(ConfigError::new("sqlite_synchronous", "use full or normal"));
            }
        };
        Ok(DatabaseSettings {
            url,
            pool_size: self.db_pool_size.as_u32(),
            sqlite_synchronous,
        })
    }
}
