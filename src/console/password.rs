//! Operator passwords: a newtype that refuses weak ones, and argon2id hashing.
//!
//! Hashing costs tens of milliseconds of CPU and 19 MiB by design: every hash takes a
//! turn (`console::hashing`), which bounds how many run at once and lends them memory,
//! and runs on a blocking thread, never on the async executor.

use std::sync::LazyLock;

use argon2::password_hash::{Output, ParamsString, Salt, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};

use super::hashing::{self, Busy, Turn};

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

    /// The argon2id PHC string to store, with a fresh random salt; waits for a turn.
    pub async fn hash(self) -> Result<String, HashingError> {
        let mut turn = hashing::turn().await?;
        Ok(tokio::task::spawn_blocking(move || hash(&mut turn, &self.0)).await?)
    }
}

/// Why a password could not be checked or hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// Every turn was taken for longer than `hashing::WAIT`.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The blocking task that hashed did not finish (it panicked).
    #[error("the password hash did not finish: {0}")]
    Stopped(#[from] tokio::task::JoinError),
}

fn params() -> Params {
    Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the argon2 parameters are constants within range")
}

fn hash(turn: &mut Turn, password: &str) -> String {
    let params = params();
    let random = crate::tokens::random_bytes();
    let salt = &random[..16];
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        Ok(
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                .hash_password_into_with_memory(
                    password.as_bytes(),
                    salt,
                    out,
                    turn.memory(params.block_count()),
                )?,
        )
    })
    .expect("argon2id hashing with valid parameters does not fail");
    phc_string(&params, salt, output)
}

/// The PHC string of an argon2id hash, as `PasswordHasher::hash_password` writes it.
fn phc_string(params: &Params, salt: &[u8], output: Output) -> String {
    let salt = SaltString::encode_b64(salt).expect("16 bytes is a valid salt length");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).expect("the parameters fit a PHC string"),
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string()
}

/// What unknown addresses are checked against, so that they cost the same time and
/// memory as a wrong password: our parameters, and an output no password is expected to
/// give (it never matters: the answer for an unknown address is false whatever it says).
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let output = Output::new(&[0; Params::DEFAULT_OUTPUT_LEN]).expect("a valid output length");
    phc_string(&params(), b"spacedigest-none", output)
});

/// Prepares the dummy hash at start; it is made from constants, so this is cheap.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

/// True when `password` matches the stored hash; `None` checks the dummy hash (and
/// answers false) so that timing does not tell whether the account exists. Waits for a
/// turn, like every hash.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, HashingError> {
    let mut turn = hashing::turn().await?;
    Ok(
        tokio::task::spawn_blocking(move || verify_with(&mut turn, &password, stored.as_deref()))
            .await?,
    )
}

fn verify_with(turn: &mut Turn, password: &str, stored: Option<&str>) -> bool {
    let (hash, real) = match stored {
        Some(stored) => (stored, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        tracing::error!("an operator's stored password hash is not a valid PHC string");
        return false;
    };
    let matches = matches(turn, &parsed, password).unwrap_or_else(|error| {
        tracing::error!(%error, "an operator's stored password hash cannot be checked");
        false
    });
    matches && real
}

/// Hashes `password` as `stored` was hashed (its algorithm, version, parameters and salt:
/// raising our parameters later does not lock out existing accounts) and compares the
/// outputs in constant time, as `PasswordVerifier` does, in the turn's memory.
fn matches(
    turn: &mut Turn,
    stored: &PasswordHash<'_>,
    password: &str,
) -> argon2::password_hash::Result<bool> {
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return Err(argon2::password_hash::Error::PhcStringField);
    };
    let algorithm = Algorithm::try_from(stored.algorithm)?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(stored)?;
    let mut salt_bytes = [0; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            out,
            turn.memory(params.block_count()),
        )?)
    })?;
    Ok(computed == expected)
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

    #[tokio::test]
    async fn a_hash_is_argon2id_with_the_owasp_parameters_and_verifies() {
        let stored = OperatorPassword::parse("orbital tangerine lighthouse 47", "a@b.c")
            .unwrap()
            .hash()
            .await
            .unwrap();
        let parsed = PasswordHash::new(&stored).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = Params::try_from(&parsed).unwrap();
        assert!(params.m_cost() >= MEMORY_KIB && params.t_cost() >= 2 && params.p_cost() >= 1);
        let check = |password: &str, stored: Option<&str>| {
            verify(password.to_owned(), stored.map(str::to_owned))
        };
        assert!(
            check("orbital tangerine lighthouse 47", Some(&stored))
                .await
                .unwrap()
        );
        assert!(
            !check("orbital tangerine lighthouse 48", Some(&stored))
                .await
                .unwrap()
        );
        assert!(
            !check("orbital tangerine lighthouse 47", None)
                .await
                .unwrap()
        );
        let again = OperatorPassword::parse("orbital tangerine lighthouse 47", "a@b.c")
            .unwrap()
            .hash()
            .await
            .unwrap();
        assert_ne!(stored, again, "each hash has its own salt");
    }

    #[tokio::test]
    async fn hashes_in_lent_memory_are_those_of_the_argon2_crate() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let password = "copper nebula harmonica 1969";
        let ours = OperatorPassword::parse(password, "a@b.c")
            .unwrap()
            .hash()
            .await
            .unwrap();
        let theirs_verify = |hash: &str, password: &str| {
            Argon2::default()
                .verify_password(password.as_bytes(), &PasswordHash::new(hash).unwrap())
                .is_ok()
        };
        assert!(theirs_verify(&ours, password));
        assert!(!theirs_verify(&ours, "copper nebula harmonica 1970"));

        // Theirs, with other parameters and the older version: ours checks it the same.
        for (version, m_cost) in [(Version::V0x13, 8 * 1024), (Version::V0x10, 32 * 1024)] {
            let salt = SaltString::encode_b64(b"sixteen bytes ok").unwrap();
            let theirs = Argon2::new(
                Algorithm::Argon2id,
                version,
                Params::new(m_cost, 3, 1, None).unwrap(),
            )
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string();
            let check = |password: &str| verify(password.to_owned(), Some(theirs.clone()));
            assert!(check(password).await.unwrap(), "{theirs}");
            assert!(!check("copper nebula harmonica 1970").await.unwrap());
        }
        assert!(PasswordHash::new(&DUMMY_HASH).is_ok(), "{}", *DUMMY_HASH);
    }
}
