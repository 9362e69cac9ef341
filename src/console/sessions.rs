//! Console sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie, stored only
//! as its SHA-256, with a CSRF token derived from the id and stored nowhere. Logout
//! deletes the row, so the cookie stops working everywhere at once.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::db::operators::{self, Operator, Session};
use crate::db::{DbConnection, now};
use crate::tokens::{hash_token, random_bytes};

/// How often `last_seen_at` is written: every request would make each page view a write.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A new random token (43 URL-safe characters).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes())
}

/// Starts a session for `operator_id` (a fresh id: logging in never reuses one). Returns
/// the session id for the cookie: it goes to the browser once and is not stored.
pub fn start(
    conn: &mut DbConnection,
    operator_id: i64,
    ip: Option<String>,
) -> diesel::QueryResult<String> {
    let cookie_value = new_token();
    let now = now();
    let session = Session {
        id_hash: hash_token(&cookie_value),
        operator_id,
        created_at: now,
        last_seen_at: now,
        ip,
    };
    operators::insert_session(conn, &session)?;
    Ok(cookie_value)
}

/// The lifetime limits of sessions.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    /// Unused this long, a session ends.
    pub idle: Duration,
    /// This long after login, a session ends.
    pub max: Duration,
}

impl Lifetime {
    fn expired(&self, session: &Session, now: NaiveDateTime) -> bool {
        session.last_seen_at <= cutoff(now, self.idle)
            || session.created_at <= cutoff(now, self.max)
    }
}

/// `now - age`, saturating: anything at or before the cutoff has outlived `age`.
pub fn cutoff(now: NaiveDateTime, age: Duration) -> NaiveDateTime {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(NaiveDateTime::MIN)
}

/// The live session for a cookie value, and its operator; an expired one is deleted.
pub fn resume(
    conn: &mut DbConnection,
    cookie_value: &str,
    lifetime: Lifetime,
) -> diesel::QueryResult<Option<(Session, Operator)>> {
    if cookie_value.len() != 43 {
        return Ok(None);
    }
    let id_hash = hash_token(cookie_value);
    let Some((session, operator)) = operators::find_session(conn, &id_hash)? else {
        return Ok(None);
    };
    let now = now();
    if lifetime.expired(&session, now) {
        operators::delete_session(conn, &id_hash)?;
        return Ok(None);
    }
    if (now - session.last_seen_at).to_std().unwrap_or_default() >= TOUCH_EVERY {
        operators::touch_session(conn, &id_hash, now)?;
    }
    Ok(Some((session, operator)))
}

/// The CSRF token of the session whose cookie holds `cookie_value`: an HMAC keyed with
/// the session id, so it is the same on every page of a session, differs between
/// sessions, and is stored nowhere. The database holds only the id's hash, from which it
/// cannot be computed, and the token does not reveal the id.
pub fn csrf_token(cookie_value: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(cookie_value.as_bytes()).expect("HMAC takes any key size");
    mac.update(b"spacedigest/console-csrf/v1");
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// True when two tokens are equal (constant time) and not empty.
pub fn tokens_match(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
