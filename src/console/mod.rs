//! The operator console's accounts and sessions: argon2id passwords, server-side sessions
//! with CSRF tokens, login rate limits, and the turns that bound how many passwords are
//! hashed at once. The pages live in `web::admin`; this module holds the rules, so the
//! CLI (`admin create`) and the web share them.

pub mod hashing;
pub mod login_limit;
pub mod password;
pub mod sessions;

pub use password::{OperatorPassword, PasswordError};
