//! Operator passwords: a newtype that refuses weak ones, and argon2id hashing.
//!
//! Hashing costs tens of milliseconds of CPU by design: callers run it on a blocking
//! thread (`db::run`, `web::block`), never on the async executor.

use std::sync::LazyLock;

use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

/// OWASP's argon2id floor: 19 MiB of memory, two passes, one lane.
pub const MEMORY_KIB: u32 = 19_456;
/// Passes over the memory.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// Shortest password accepted, in characters.
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in characters: argon2 takes any length, but a megabyte of
/// "password" is a denial-of-service attempt, not a password.
pub const MAX_CHARS: usize = 128;

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than [`MIN_CHARS`] characters.
    #[error("the password must be at least {MIN_CHARS} characters long")]
    TooShort,
    /// More than [`MAX_CHARS`] characters.
    #[error("the password must be at most {MAX_CHARS} characters long")]
    TooLong,
    /// A common password, or one guessable from its pattern or the operator's address.
    #[error("this password is too common or too easy to guess{hint}; try a few unrelated words")]
    TooGuessable {
        /// zxcvbn's warning, if it has one, with a leading "; " (empty otherwise).
        hint: String,
    },
}

/// A password good enough to set. Holding one means it passed the policy.
pub struct OperatorPassword(String);

impl std::fmt::Debug for OperatorPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorPassword(***)")
    }
}

impl OperatorPassword {
    /// Checks length and guessability; `email` is the account's address, which a password
    /// must not be built from.
    pub fn parse(raw: &str, email: &str) -> Result<Self, PasswordError> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(PasswordError::TooShort);
        }
        if chars > MAX_CHARS {
            return Err(PasswordError::TooLong);
        }
        let local = email.split('@').next().unwrap_or_default();
        let estimate = zxcvbn::zxcvbn(raw, &[email, local, "spacedigest", "space", "daily"]);
        // Score 3 ("safely unguessable") means about 10^8 guesses or more: beyond what the
        // login rate limit lets an online attacker try in years.
        if u8::from(estimate.score()) < 3 {
            let hint = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!(" ({})", w.to_string().trim_end_matches('.').to_lowercase()))
                .unwrap_or_default();
            return Err(PasswordError::TooGuessable { hint });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The argon2id PHC string to store, with a fresh random salt.
    pub fn hash(&self) -> String {
        hash(&self.0)
    }
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the argon2 parameters are constants within range");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash(password: &str) -> String {
    let random = crate::tokens::random_bytes();
    let salt = SaltString::encode_b64(&random[..16]).expect("16 bytes is a valid salt length");
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hashing with valid parameters does not fail")
        .to_string()
}

/// A hash of a random password, checked when the account does not exist so that an
/// unknown address costs the same time as a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash(&hex::encode(crate::tokens::random_bytes())));

/// Computes the dummy hash now (at start), so the first unknown address is not faster
/// or slower than the rest.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

/// True when `password` matches the stored hash; `None` checks the dummy hash (and
/// answers false) so that timing does not tell whether the account exists.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let (hash, real) = match stored {
        Some(stored) => (stored, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        tracing::error!("an operator's stored password hash is not a valid PHC string");
        return false;
    };
    // Verification takes its parameters from the stored hash, so raising them later
    // does not lock out existing accounts.
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_common_passwords_are_refused() {
        let email = "ops@example.com";
        assert_eq!(
            OperatorPassword::parse("short1!", email).unwrap_err(),
            PasswordError::TooShort
        );
        assert_eq!(
            OperatorPassword::parse(&"x".repeat(129), email).unwrap_err(),
            PasswordError::TooLong
        );
        for common in [
            "password1234",
            "qwertyuiop123",
            "123456789012",
            "ops@example.com1",
        ] {
            assert!(
                matches!(
                    OperatorPassword::parse(common, email),
                    Err(PasswordError::TooGuessable { .. })
                ),
                "{common} was accepted"
            );
        }
        assert!(OperatorPassword::parse("orbital tangerine lighthouse 47", email).is_ok());
    }

    #[test]
    fn a_hash_is_argon2id_with_the_owasp_parameters_and_verifies() {
        let password = OperatorPassword::parse("orbital tangerine lighthouse 47", "a@b.c").unwrap();
        let stored = password.hash();
        let parsed = PasswordHash::new(&stored).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = Params::try_from(&parsed).unwrap();
        assert!(params.m_cost() >= MEMORY_KIB && params.t_cost() >= 2 && params.p_cost() >= 1);
        assert!(verify("orbital tangerine lighthouse 47", Some(&stored)));
        assert!(!verify("orbital tangerine lighthouse 48", Some(&stored)));
        assert!(!verify("orbital tangerine lighthouse 47", None));
        assert_ne!(stored, password.hash(), "each hash has its own salt");
    }
}
