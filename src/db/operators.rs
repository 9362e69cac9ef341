//! Operator accounts, their console sessions, and login attempts (failed, or reserved
//! while their password is checked).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{login_failures, operator_sessions, operators};

/// An operator account.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = operators)]
pub struct Operator {
    /// Row id.
    pub id: i64,
    /// The address as entered.
    pub email: String,
    /// Lower-cased address: one account per mailbox.
    pub email_key: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Created at.
    pub created_at: NaiveDateTime,
    /// Last password change.
    pub password_changed_at: NaiveDateTime,
}

/// Creates an account; `None` when the address already has one.
pub fn create(
    conn: &mut DbConnection,
    email: &str,
    password_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Operator>> {
    let key = email.to_lowercase();
    if find_by_email(conn, &key)?.is_some() {
        return Ok(None);
    }
    diesel::insert_into(operators::table)
        .values((
            operators::email.eq(email),
            operators::email_key.eq(&key),
            operators::password_hash.eq(password_hash),
            operators::created_at.eq(now),
            operators::password_changed_at.eq(now),
        ))
        .execute(conn)?;
    find_by_email(conn, &key)
}

/// The account with this address (any case).
pub fn find_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<Operator>> {
    operators::table
        .filter(operators::email_key.eq(email.to_lowercase()))
        .select(Operator::as_select())
        .first(conn)
        .optional()
}

/// Every account, oldest first.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<Operator>> {
    operators::table
        .order(operators::id)
        .select(Operator::as_select())
        .load(conn)
}

/// How many accounts exist.
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    operators::table.count().get_result(conn)
}

/// Sets a new password hash and ends every session of the account except `keep`.
pub fn set_password(
    conn: &mut DbConnection,
    operator_id: i64,
    password_hash: &str,
    keep: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    super::write_transaction(conn, |conn| {
        diesel::update(operators::table.find(operator_id))
            .set((
                operators::password_hash.eq(password_hash),
                operators::password_changed_at.eq(now),
            ))
            .execute(conn)?;
        let others = operator_sessions::table
            .filter(operator_sessions::operator_id.eq(operator_id))
            .filter(operator_sessions::id_hash.ne(keep.unwrap_or("")));
        diesel::delete(others).execute(conn)?;
        Ok(())
    })
}

/// A stored console session.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = operator_sessions)]
pub struct Session {
    /// SHA-256 of the session id in the cookie.
    pub id_hash: String,
    /// Whose session.
    pub operator_id: i64,
    /// Login time.
    pub created_at: NaiveDateTime,
    /// Last request.
    pub last_seen_at: NaiveDateTime,
    /// Client IP at login.
    pub ip: Option<String>,
}

/// Stores a new session.
pub fn insert_session(conn: &mut DbConnection, session: &Session) -> QueryResult<()> {
    diesel::insert_into(operator_sessions::table)
        .values((
            operator_sessions::id_hash.eq(&session.id_hash),
            operator_sessions::operator_id.eq(session.operator_id),
            operator_sessions::created_at.eq(session.created_at),
            operator_sessions::last_seen_at.eq(session.last_seen_at),
            operator_sessions::ip.eq(session.ip.as_deref()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The session with this id hash and its operator.
pub fn find_session(
    conn: &mut DbConnection,
    id_hash: &str,
) -> QueryResult<Option<(Session, Operator)>> {
    operator_sessions::table
        .inner_join(operators::table)
        .filter(operator_sessions::id_hash.eq(id_hash))
        .select((Session::as_select(), Operator::as_select()))
        .first(conn)
        .optional()
}

/// Records activity on a session.
pub fn touch_session(
    conn: &mut DbConnection,
    id_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(operator_sessions::table.find(id_hash))
        .set(operator_sessions::last_seen_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Ends one session.
pub fn delete_session(conn: &mut DbConnection, id_hash: &str) -> QueryResult<()> {
    diesel::delete(operator_sessions::table.find(id_hash)).execute(conn)?;
    Ok(())
}

/// Removes sessions that can no longer be used.
pub fn delete_stale_sessions(
    conn: &mut DbConnection,
    idle_before: NaiveDateTime,
    created_before: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        operator_sessions::table.filter(
            operator_sessions::last_seen_at
                .lt(idle_before)
                .or(operator_sessions::created_at.lt(created_before)),
        ),
    )
    .execute(conn)
}

/// Attempts counted since `since`: for the account, for the account from this IP, and
/// from this IP for any account, with the oldest of each (for `Retry-After`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FailureCounts {
    /// For this account from anywhere.
    pub account: (i64, Option<NaiveDateTime>),
    /// For this account from this IP.
    pub account_from_ip: (i64, Option<NaiveDateTime>),
    /// From this IP, any account.
    pub ip: (i64, Option<NaiveDateTime>),
}

/// Counts the attempts at `email_key` and from `ip` since `since` and, unless `refuse`
/// finds a limit reached in the counts, records one more at `now` and returns its id; in
/// one transaction that every other reservation for the same account or the same IP
/// waits for, in every process. Rows older than `since` are forgotten on the way.
pub fn reserve_attempt<R>(
    conn: &mut DbConnection,
    email_key: &str,
    ip: &str,
    now: NaiveDateTime,
    since: NaiveDateTime,
    refuse: impl FnOnce(&FailureCounts) -> Option<R>,
) -> QueryResult<Result<i64, R>> {
    super::write_transaction(conn, |conn| {
        serialise_attempts(conn, email_key, ip, since)?;
        if let Some(refused) = refuse(&failures_since(conn, email_key, ip, since)?) {
            return Ok(Err(refused));
        }
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::email_key.eq(email_key),
                login_failures::ip.eq(ip),
                login_failures::failed_at.eq(now),
            ))
            .returning(login_failures::id)
            .get_result(conn)
            .map(Ok)
    })
}

/// Advisory-lock classes on PostgreSQL: one key space for accounts, one for IPs.
const ACCOUNT_LOCKS: i32 = 0x4c6f_6741; // "LogA"
const IP_LOCKS: i32 = 0x4c6f_6749; // "LogI"

/// Makes the count and the insert of [`reserve_attempt`] one step for its account and IP,
/// and forgets old rows.
///
/// SQLite: the write transaction already holds the database's one write lock.
/// PostgreSQL: transaction-scoped advisory locks on the account, then on the IP. Every
/// reservation takes them in that order and waits for nothing else while it holds the IP
/// lock, so no two can wait for each other. Old rows are deleted with `SKIP LOCKED`:
/// two reservations sweeping at once would otherwise wait on each other's rows.
fn serialise_attempts(
    conn: &mut DbConnection,
    email_key: &str,
    ip: &str,
    since: NaiveDateTime,
) -> QueryResult<()> {
    use diesel::sql_types::{Integer, Timestamp};
    match conn {
        DbConnection::Pg(pg) => {
            for (class, key) in [(ACCOUNT_LOCKS, email_key), (IP_LOCKS, ip)] {
                diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
                    .bind::<Integer, _>(class)
                    .bind::<Integer, _>(lock_key(key))
                    .execute(pg)?;
            }
            diesel::sql_query(
                "DELETE FROM login_failures WHERE id IN (SELECT id FROM login_failures \
                 WHERE failed_at <= $1 FOR UPDATE SKIP LOCKED)",
            )
            .bind::<Timestamp, _>(since)
            .execute(pg)?;
        }
        DbConnection::Sqlite(sqlite) => {
            diesel::delete(login_failures::table.filter(login_failures::failed_at.le(since)))
                .execute(sqlite)?;
        }
    }
    Ok(())
}

/// A 32-bit advisory-lock key for an account or IP. Two keys that collide only share a
/// lock: they wait for each other, and nothing else changes.
fn lock_key(key: &str) -> i32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Counts recent attempts (failed, or reserved and not yet known).
fn failures_since(
    conn: &mut DbConnection,
    email_key: &str,
    ip: &str,
    since: NaiveDateTime,
) -> QueryResult<FailureCounts> {
    let recent = || login_failures::table.filter(login_failures::failed_at.gt(since));
    let tally = (
        diesel::dsl::count_star(),
        diesel::dsl::min(login_failures::failed_at),
    );
    Ok(FailureCounts {
        account: recent()
            .filter(login_failures::email_key.eq(email_key))
            .select(tally)
            .first(conn)?,
        account_from_ip: recent()
            .filter(login_failures::email_key.eq(email_key))
            .filter(login_failures::ip.eq(ip))
            .select(tally)
            .first(conn)?,
        ip: recent()
            .filter(login_failures::ip.eq(ip))
            .select(tally)
            .first(conn)?,
    })
}

/// Forgets one reserved attempt (it was never made).
pub fn forget_attempt(conn: &mut DbConnection, id: i64) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(id)).execute(conn)?;
    Ok(())
}

/// Forgets the attempts at this account from this IP, the one that just succeeded
/// included.
pub fn clear_failures(conn: &mut DbConnection, email_key: &str, ip: &str) -> QueryResult<()> {
    diesel::delete(
        login_failures::table
            .filter(login_failures::email_key.eq(email_key))
            .filter(login_failures::ip.eq(ip)),
    )
    .execute(conn)?;
    Ok(())
}
