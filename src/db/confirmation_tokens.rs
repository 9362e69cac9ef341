//! Confirmation tokens, stored only as SHA-256 hashes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::confirmation_tokens;

/// A stored token.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = confirmation_tokens)]
pub struct ConfirmationToken {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Whose.
    pub subscriber_id: i64,
    /// Issued.
    pub created_at: NaiveDateTime,
    /// Stops working.
    pub expires_at: NaiveDateTime,
    /// First used: later uses show "already confirmed" and change nothing.
    pub consumed_at: Option<NaiveDateTime>,
}

/// Stores a token for a subscriber who has none yet.
pub fn insert(
    conn: &mut DbConnection,
    subscriber_id: i64,
    token_hash: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(confirmation_tokens::table)
        .values((
            confirmation_tokens::token_hash.eq(token_hash),
            confirmation_tokens::subscriber_id.eq(subscriber_id),
            confirmation_tokens::created_at.eq(now),
            confirmation_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The token with this hash.
pub fn find(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<ConfirmationToken>> {
    confirmation_tokens::table
        .find(token_hash)
        .select(ConfirmationToken::as_select())
        .first(conn)
        .optional()
}

/// Marks the token used if it is still unused and unexpired; false otherwise.
pub fn consume(conn: &mut DbConnection, token_hash: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let changed = diesel::update(
        confirmation_tokens::table
            .find(token_hash)
            .filter(confirmation_tokens::consumed_at.is_null())
            .filter(confirmation_tokens::expires_at.gt(now)),
    )
    .set(confirmation_tokens::consumed_at.eq(now))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Deletes tokens that expired before `before`; they can never be used again.
pub fn delete_expired(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(confirmation_tokens::table.filter(confirmation_tokens::expires_at.lt(before)))
        .execute(conn)
}
