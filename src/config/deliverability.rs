//! Deliverability settings: separate senders for transactional mail and the digest, and
//! the DKIM key that signs every email. Each sender setting falls back to
//! `SPACEDIGEST_FROM` / `SPACEDIGEST_SMTP_URL`, so a setup without them runs unchanged.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use lettre::message::Mailbox;
use lettre::message::dkim::{DkimSigningAlgorithm, DkimSigningKey};

use serde::Deserialize;

use super::{ConfigError, SmtpUrl};

/// Which stream an email belongs to; each may have its own From and relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailStream {
    /// Confirmation and welcome emails: what a reader asked for just now.
    Transactional,
    /// The daily digest: bulk mail to every confirmed reader.
    Digest,
}

/// `SPACEDIGEST_TRANSACTIONAL_*` and `SPACEDIGEST_DIGEST_*`; `None` means "as
/// `SPACEDIGEST_FROM` / `SPACEDIGEST_SMTP_URL`".
#[derive(Debug, Clone, Default)]
pub struct Senders {
    /// `SPACEDIGEST_TRANSACTIONAL_FROM`.
    pub transactional_from: Option<Mailbox>,
    /// `SPACEDIGEST_TRANSACTIONAL_SMTP_URL`.
    pub transactional_smtp_url: Option<SmtpUrl>,
    /// `SPACEDIGEST_DIGEST_FROM`.
    pub digest_from: Option<Mailbox>,
    /// `SPACEDIGEST_DIGEST_SMTP_URL`.
    pub digest_smtp_url: Option<SmtpUrl>,
}

/// `SPACEDIGEST_DKIM_*`: every email is signed when this is present.
#[derive(Debug, Clone)]
pub struct DkimSettings {
    /// The private key, read and checked at start.
    pub key: DkimKey,
    /// `SPACEDIGEST_DKIM_SELECTOR`: the key's DNS name is `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// `SPACEDIGEST_DKIM_DOMAIN`; when absent each email is signed for its From's domain.
    pub domain: Option<String>,
}

impl DkimSettings {
    /// Reads the key at `key_path` and checks the selector and domain.
    pub fn load(
        key_path: &Path,
        selector: &str,
        domain: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let selector = selector.trim();
        if !is_dns_name(selector) {
            return Err(ConfigError::new(
                "dkim_selector",
                "must be a DNS label such as mail2026 (letters, digits, '-', '_' and '.')",
            ));
        }
        let domain = match domain.map(str::trim) {
            Some(domain) if !is_dns_name(domain) || !domain.contains('.') => {
                return Err(ConfigError::new(
                    "dkim_domain",
                    "must be a domain name such as example.com",
                ));
            }
            other => other.map(str::to_ascii_lowercase),
        };
        let key = DkimKey::load(key_path).map_err(|reason| {
            ConfigError::new(
                "dkim_key_path",
                format!("cannot use {}: {reason}", key_path.display()),
            )
        })?;
        Ok(Self {
            key,
            selector: selector.to_owned(),
            domain,
        })
    }

    /// The `d=` domain for mail from `from`.
    pub fn domain_for(&self, from: &Mailbox) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| from.email.domain().to_ascii_lowercase())
    }
}

/// A DKIM private key in the form lettre reads: PKCS#1 PEM for RSA, the base64 seed for
/// Ed25519. Never printed.
#[derive(Clone)]
pub struct DkimKey {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// RSA or Ed25519.
    pub algorithm: DkimSigningAlgorithm,
    material: Arc<str>,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("path", &self.path)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// RFC 8301: verifiers may refuse RSA keys under 1024 bits, and signers must not use them.
const RSA_MIN_BITS: usize = 1024;

impl DkimKey {
    /// Reads a PEM file: `BEGIN RSA PRIVATE KEY` (PKCS#1) or `BEGIN PRIVATE KEY` (PKCS#8,
    /// RSA or Ed25519, as `openssl genpkey` writes). Errors never quote the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, LineEnding};
        use rsa::traits::PublicKeyParts;

        let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read it ({e})"))?;
        let pem = pem.trim();
        let rsa_key = if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            Some(
                rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                    .map_err(|_| "not a valid PKCS#1 RSA private key".to_owned())?,
            )
        } else if pem.starts_with("-----BEGIN PRIVATE KEY-----") {
            rsa::RsaPrivateKey::from_pkcs8_pem(pem).ok()
        } else {
            return Err(
                "not a PEM private key (expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)"
                    .into(),
            );
        };
        let (algorithm, material): (_, String) = match rsa_key {
            Some(key) => {
                let bits = key.size() * 8;
                if bits < RSA_MIN_BITS {
                    return Err(format!(
                        "the RSA key has {bits} bits; DKIM needs at least {RSA_MIN_BITS} (2048 recommended)"
                    ));
                }
                let pkcs1 = key
                    .to_pkcs1_pem(LineEnding::LF)
                    .map_err(|_| "cannot re-encode the RSA key".to_owned())?;
                (DkimSigningAlgorithm::Rsa, pkcs1.as_str().to_owned())
            }
            None => {
                let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                    .map_err(|_| "not a valid PKCS#8 RSA or Ed25519 private key".to_owned())?;
                use base64::Engine;
                let seed = base64::engine::general_purpose::STANDARD.encode(key.to_bytes());
                (DkimSigningAlgorithm::Ed25519, seed)
            }
        };
        let key = Self {
            path: path.to_owned(),
            algorithm,
            material: material.into(),
        };
        key.signing_key()?;
        Ok(key)
    }

    /// The key as lettre signs with; built once per signer, not per message.
    pub fn signing_key(&self) -> Result<DkimSigningKey, String> {
        DkimSigningKey::new(&self.material, self.algorithm)
            .map_err(|e| format!("lettre cannot use the key: {e}"))
    }
}

/// Letters, digits, `-`, `_` and dots between non-empty labels: safe inside a DKIM tag.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The deliverability settings as written (all optional; empty means unset).
#[derive(Debug, Deserialize)]
pub(super) struct RawDeliverability {
    #[serde(default)]
    transactional_from: Option<String>,
    #[serde(default)]
    transactional_smtp_url: Option<String>,
    #[serde(default)]
    digest_from: Option<String>,
    #[serde(default)]
    digest_smtp_url: Option<String>,
    #[serde(default)]
    dkim_key_path: Option<String>,
    #[serde(default)]
    dkim_selector: Option<String>,
    #[serde(default)]
    dkim_domain: Option<String>,
}

fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Parses a sender address the way `SPACEDIGEST_FROM` is parsed.
pub(super) fn parse_from(key: &str, raw: &str) -> Result<Mailbox, ConfigError> {
    Mailbox::from_str(raw.trim()).map_err(|e| {
        ConfigError::new(
            key,
            format!("not a valid sender ({e}); use e.g. Space Daily <news@example.com>"),
        )
    })
}

impl RawDeliverability {
    pub(super) fn validate(self) -> Result<(Senders, Option<DkimSettings>), ConfigError> {
        let from =
            |key: &str, raw: Option<String>| set(raw).map(|raw| parse_from(key, &raw)).transpose();
        let url = |key: &str, raw: Option<String>| {
            set(raw)
                .map(|raw| SmtpUrl::parse(raw.trim()).map_err(|e| ConfigError::new(key, e)))
                .transpose()
        };
        let senders = Senders {
            transactional_from: from("transactional_from", self.transactional_from)?,
            transactional_smtp_url: url("transactional_smtp_url", self.transactional_smtp_url)?,
            digest_from: from("digest_from", self.digest_from)?,
            digest_smtp_url: url("digest_smtp_url", self.digest_smtp_url)?,
        };
        let dkim = match (
            set(self.dkim_key_path),
            set(self.dkim_selector),
            set(self.dkim_domain),
        ) {
            (Some(path), Some(selector), domain) => Some(DkimSettings::load(
                Path::new(path.trim()),
                &selector,
                domain.as_deref(),
            )?),
            (Some(_), None, _) => {
                return Err(ConfigError::new(
                    "dkim_selector",
                    "must be set when SPACEDIGEST_DKIM_KEY_PATH is (set both to sign, or neither)",
                ));
            }
            (None, Some(_), _) => {
                return Err(ConfigError::new(
                    "dkim_key_path",
                    "must be set when SPACEDIGEST_DKIM_SELECTOR is (set both to sign, or neither)",
                ));
            }
            (None, None, Some(_)) => {
                return Err(ConfigError::new(
                    "dkim_domain",
                    "is used only with SPACEDIGEST_DKIM_KEY_PATH and SPACEDIGEST_DKIM_SELECTOR",
                ));
            }
            (None, None, None) => None,
        };
        Ok((senders, dkim))
    }
}

#[cfg(test)]
// figment's Jail dictates the closure's error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::config::tests::load_with;

    const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/deliverability");

    fn key(name: &str) -> String {
        format!("{KEYS}/{name}")
    }

    #[test]
    fn senders_default_to_from_and_smtp_url() {
        let s = load_with(&[
            ("SPACEDIGEST_FROM", "News <news@example.com>"),
            ("SPACEDIGEST_SMTP_URL", "smtp://relay.example.com:25"),
        ])
        .unwrap();
        for stream in [MailStream::Transactional, MailStream::Digest] {
            assert_eq!(
                s.mail.from_for(stream).to_string(),
                "News <news@example.com>"
            );
            assert_eq!(
                s.mail.smtp_url_for(stream),
                &SmtpUrl::Smtp("smtp://relay.example.com:25".into())
            );
        }
        assert!(s.mail.dkim.is_none());
    }

    #[test]
    fn each_stream_takes_its_own_sender_and_bad_ones_name_the_variable() {
        let s = load_with(&[
            (
                "SPACEDIGEST_TRANSACTIONAL_FROM",
                "Accounts <accounts@example.com>",
            ),
            ("SPACEDIGEST_DIGEST_FROM", "Daily <daily@news.example.com>"),
            (
                "SPACEDIGEST_DIGEST_SMTP_URL",
                "smtp://bulk.example.com:2525",
            ),
        ])
        .unwrap();
        assert_eq!(
            s.mail.from_for(MailStream::Transactional).email.to_string(),
            "accounts@example.com"
        );
        assert_eq!(
            s.mail.from_for(MailStream::Digest).email.to_string(),
            "daily@news.example.com"
        );
        assert_eq!(
            s.mail.smtp_url_for(MailStream::Transactional),
            &s.mail.smtp_url
        );
        assert_eq!(
            s.mail.smtp_url_for(MailStream::Digest),
            &SmtpUrl::Smtp("smtp://bulk.example.com:2525".into())
        );
        for (variable, value) in [
            ("SPACEDIGEST_TRANSACTIONAL_FROM", "not an address"),
            ("SPACEDIGEST_DIGEST_FROM", "a@"),
            ("SPACEDIGEST_TRANSACTIONAL_SMTP_URL", "http://mail"),
            ("SPACEDIGEST_DIGEST_SMTP_URL", "smtp://host?tls=maybe"),
        ] {
            let err = load_with(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{err}");
        }
    }

    #[test]
    fn dkim_needs_both_the_key_and_the_selector() {
        let path = key("test_key_rsa_pkcs1.pem");
        let err = load_with(&[("SPACEDIGEST_DKIM_KEY_PATH", &path)]).unwrap_err();
        assert_eq!(err.variable, "SPACEDIGEST_DKIM_SELECTOR");
        let err = load_with(&[("SPACEDIGEST_DKIM_SELECTOR", "s1")]).unwrap_err();
        assert_eq!(err.variable, "SPACEDIGEST_DKIM_KEY_PATH");
        let err = load_with(&[("SPACEDIGEST_DKIM_DOMAIN", "example.com")]).unwrap_err();
        assert_eq!(err.variable, "SPACEDIGEST_DKIM_DOMAIN");
        let s = load_with(&[
            ("SPACEDIGEST_DKIM_KEY_PATH", &path),
            ("SPACEDIGEST_DKIM_SELECTOR", "s1"),
            ("SPACEDIGEST_DKIM_DOMAIN", "Example.COM"),
        ])
        .unwrap();
        let dkim = s.mail.dkim.unwrap();
        assert_eq!(dkim.selector, "s1");
        assert_eq!(dkim.domain.as_deref(), Some("example.com"));
        let debug = format!("{dkim:?}");
        assert!(!debug.contains("MII"), "{debug}");
        let err = load_with(&[
            ("SPACEDIGEST_DKIM_KEY_PATH", &path),
            ("SPACEDIGEST_DKIM_SELECTOR", "s1; d=evil.example"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "SPACEDIGEST_DKIM_SELECTOR");
    }

    #[test]
    fn rsa_pkcs1_rsa_pkcs8_and_ed25519_keys_load() {
        let rsa1 = DkimKey::load(Path::new(&key("test_key_rsa_pkcs1.pem"))).unwrap();
        assert!(matches!(rsa1.algorithm, DkimSigningAlgorithm::Rsa));
        let rsa8 = DkimKey::load(Path::new(&key("test_key_rsa_pkcs8.pem"))).unwrap();
        assert!(matches!(rsa8.algorithm, DkimSigningAlgorithm::Rsa));
        assert_eq!(rsa1.material, rsa8.material);
        let ed = DkimKey::load(Path::new(&key("test_key_ed25519.pem"))).unwrap();
        assert!(matches!(ed.algorithm, DkimSigningAlgorithm::Ed25519));
    }

    #[test]
    fn unusable_keys_are_refused_without_quoting_them() {
        let small = DkimKey::load(Path::new(&key("test_key_rsa_512.pem"))).unwrap_err();
        assert!(small.contains("512 bits"), "{small}");
        let missing = DkimKey::load(Path::new("/nonexistent/dkim.pem")).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let garbled = dir.path().join("garbled.pem");
        std::fs::write(
            &garbled,
            "-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETbutbroken\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = DkimKey::load(&garbled).unwrap_err();
        assert!(!err.contains("TOPSECRET"), "{err}");
        let err = load_with(&[
            ("SPACEDIGEST_DKIM_KEY_PATH", garbled.to_str().unwrap()),
            ("SPACEDIGEST_DKIM_SELECTOR", "s1"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "SPACEDIGEST_DKIM_KEY_PATH");
        assert!(err.to_string().contains("garbled.pem"), "{err}");
    }
}
