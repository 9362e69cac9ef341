//! Process-independent secrets kept in the database when the operator sets none.

use super::schema::app_secrets;
use super::{DbConnection, now};
use crate::on_backend;
use diesel::prelude::*;

const SECRET_KEY: &str = "secret_key";

/// The secret key: generated once (256 random bits) and shared by every process.
pub fn secret_key(conn: &mut DbConnection) -> QueryResult<String> {
    let candidate = hex::encode(crate::tokens::random_bytes());
    // Two processes starting at once both try; the first insert wins and both read it.
    on_backend!(conn, c => diesel::insert_into(app_secrets::table)
        .values((
            app_secrets::name.eq(SECRET_KEY),
            app_secrets::value.eq(&candidate),
            app_secrets::created_at.eq(now()),
        ))
        .on_conflict(app_secrets::name)
        .do_nothing()
        .execute(c))?;
    app_secrets::table
        .find(SECRET_KEY)
        .select(app_secrets::value)
        .first(conn)
}
