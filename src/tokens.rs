//! Tokens in links. Confirmation tokens are 256 random bits from the OS, stored only as
//! SHA-256. Unsubscribe tokens are HMAC-signed ids: every email carries one, the database
//! holds none, and each stays valid for as long as the subscription exists.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// 32 bytes from the operating system's random source.
pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    // The kernel's CSPRNG does not fail once the system has booted; a failure here
    // would mean no secure token can be made at all, so refusing to continue is right.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A new confirmation token (URL-safe, 43 characters) and the hash to store.
pub fn new_confirmation_token() -> (String, String) {
    let token = URL_SAFE_NO_PAD.encode(random_bytes());
    let hash = hash_token(&token);
    (token, hash)
}

/// The stored form of a token: hex SHA-256.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// True when `token` has the shape of a confirmation token; anything else is not looked up.
pub fn is_confirmation_token_shaped(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What an unsubscribe token lets its holder leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeScope {
    /// One subscription (one newsletter).
    Subscription(i64),
    /// Every subscription of one subscriber.
    Subscriber(i64),
}

const TOKEN_VERSION: u8 = 1;
const MAC_LEN: usize = 16;

/// Signs and checks unsubscribe tokens with a key derived from the secret key.
#[derive(Clone)]
pub struct UnsubscribeSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for UnsubscribeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeSigner(..)")
    }
}

impl UnsubscribeSigner {
    /// A signer for this secret key.
    pub fn new(secret_key: &str) -> Self {
        // A purpose-specific key: the same secret may sign other things later.
        let mut hasher = Sha256::new();
        hasher.update(b"spacedigest/unsubscribe/v1\0");
        hasher.update(secret_key.as_bytes());
        Self {
            key: hasher.finalize().into(),
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(payload);
        mac
    }

    /// The token for `scope`.
    pub fn sign(&self, scope: UnsubscribeScope) -> String {
        let payload = payload(scope);
        let tag = self.mac(&payload).finalize().into_bytes();
        let mut bytes = payload.to_vec();
        bytes.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The scope of a genuine token; `None` for anything forged, altered or malformed.
    pub fn verify(&self, token: &str) -> Option<UnsubscribeScope> {
        if token.len() > 64 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != 10 + MAC_LEN || bytes[0] != TOKEN_VERSION {
            return None;
        }
        let (payload, tag) = bytes.split_at(10);
        self.mac(payload).verify_truncated_left(tag).ok()?;
        let id = i64::from_be_bytes(payload[2..10].try_into().ok()?);
        match payload[1] {
            1 => Some(UnsubscribeScope::Subscription(id)),
            2 => Some(UnsubscribeScope::Subscriber(id)),
            _ => None,
        }
    }
}

fn payload(scope: UnsubscribeScope) -> [u8; 10] {
    let (kind, id) = match scope {
        UnsubscribeScope::Subscription(id) => (1u8, id),
        UnsubscribeScope::Subscriber(id) => (2u8, id),
    };
    let mut payload = [0u8; 10];
    payload[0] = TOKEN_VERSION;
    payload[1] = kind;
    payload[2..].copy_from_slice(&id.to_be_bytes());
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn confirmation_tokens_are_unique_and_only_their_hash_is_stored() {
        let (a, hash_a) = new_confirmation_token();
        let (b, _) = new_confirmation_token();
        assert_ne!(a, b);
        assert!(is_confirmation_token_shaped(&a));
        assert_eq!(hash_a, hash_token(&a));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }

    #[test]
    fn unsubscribe_tokens_round_trip_and_resist_tampering() {
        let signer = UnsubscribeSigner::new("k".repeat(32).as_str());
        let token = signer.sign(UnsubscribeScope::Subscription(42));
        assert_eq!(
            signer.verify(&token),
            Some(UnsubscribeScope::Subscription(42))
        );
        let all = signer.sign(UnsubscribeScope::Subscriber(42));
        assert_ne!(token, all);
        assert_eq!(signer.verify(&all), Some(UnsubscribeScope::Subscriber(42)));

        let other = UnsubscribeSigner::new("z".repeat(32).as_str());
        assert_eq!(other.verify(&token), None);
        assert_eq!(signer.verify(""), None);
        assert_eq!(signer.verify("not a token"), None);
    }

    proptest! {
        #[test]
        fn any_altered_character_invalidates_the_token(id in 1i64..i64::MAX, pos in 0usize..35, c in "[A-Za-z0-9_-]") {
            let signer = UnsubscribeSigner::new("secret-secret-secret-secret-secret");
            let token = signer.sign(UnsubscribeScope::Subscription(id));
            prop_assert_eq!(signer.verify(&token), Some(UnsubscribeScope::Subscription(id)));
            let mut chars: Vec<char> = token.chars().collect();
            let pos = pos % chars.len();
            let replacement = c.chars().next().unwrap();
            prop_assume!(chars[pos] != replacement);
            chars[pos] = replacement;
            let altered: String = chars.into_iter().collect();
            // The last character carries padding bits that decoding may ignore.
            if pos < token.len() - 1 {
                prop_assert_eq!(signer.verify(&altered), None);
            }
        }

        #[test]
        fn garbage_never_verifies(s in ".{0,80}") {
            let signer = UnsubscribeSigner::new("secret-secret-secret-secret-secret");
            prop_assert_eq!(signer.verify(&s), None);
        }

        #[test]
        fn every_id_and_scope_round_trips(id in any::<i64>(), whole_subscriber in any::<bool>()) {
            let signer = UnsubscribeSigner::new("secret-secret-secret-secret-secret");
            let scope = if whole_subscriber {
                UnsubscribeScope::Subscriber(id)
            } else {
                UnsubscribeScope::Subscription(id)
            };
            let token = signer.sign(scope);
            prop_assert_eq!(token.len(), 35);
            prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            prop_assert_eq!(signer.verify(&token), Some(scope));
            // The other scope of the same id has a token of its own.
            let other = match scope {
                UnsubscribeScope::Subscriber(id) => UnsubscribeScope::Subscription(id),
                UnsubscribeScope::Subscription(id) => UnsubscribeScope::Subscriber(id),
            };
            prop_assert_ne!(signer.sign(other), token);
        }

        #[test]
        fn any_altered_byte_is_refused(
            id in any::<i64>(),
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let signer = UnsubscribeSigner::new("secret-secret-secret-secret-secret");
            let token = signer.sign(UnsubscribeScope::Subscriber(id));
            let mut bytes = token.clone().into_bytes();
            let at = pos.index(bytes.len());
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            // Every position, the last character's padding bits included: a token has one spelling.
            if let Ok(altered) = String::from_utf8(bytes) {
                prop_assert_eq!(signer.verify(&altered), None, "{} altered to {}", token, altered);
            }
        }

        #[test]
        fn token_shaped_strings_never_verify(s in "[A-Za-z0-9_-]{35}") {
            let signer = UnsubscribeSigner::new("secret-secret-secret-secret-secret");
            prop_assert_eq!(signer.verify(&s), None);
        }

        #[test]
        fn tokens_from_one_key_fail_under_another(id in any::<i64>(), key in "[ -~]{1,40}") {
            let signer = UnsubscribeSigner::new("secret-secret-secret-secret-secret");
            prop_assume!(key != "secret-secret-secret-secret-secret");
            let token = signer.sign(UnsubscribeScope::Subscription(id));
            prop_assert_eq!(UnsubscribeSigner::new(&key).verify(&token), None);
        }

        #[test]
        fn confirmation_token_shape_is_43_url_safe_characters(s in prop_oneof![
            "[A-Za-z0-9_-]{40,46}",
            "[A-Za-z0-9_=+/.-]{43}",
            ".{0,50}",
        ]) {
            let expected = s.len() == 43
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            prop_assert_eq!(is_confirmation_token_shaped(&s), expected);
        }

        #[test]
        fn new_confirmation_tokens_are_shaped_and_hash_to_hex(_run in 0..32u8) {
            let (token, hash) = new_confirmation_token();
            prop_assert!(is_confirmation_token_shaped(&token));
            prop_assert_eq!(hash.len(), 64);
            prop_assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            prop_assert_eq!(hash_token(&token), hash);
        }
    }
}
