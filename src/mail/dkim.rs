//! DKIM signing (RFC 6376) with lettre's signer, relaxed/relaxed.
//!
//! The key is parsed once per signer, when the worker (or a preview) starts; each message
//! then costs one body hash and one signature.

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
};
use lettre::message::header::HeaderName;

use crate::config::DkimSettings;

/// Headers the signature covers. One absent from a message (`List-Unsubscribe` on a
/// confirmation) is signed as absent, so it cannot be added on the way either.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Signs messages for one `d=` domain with the deployment's key.
#[derive(Debug)]
pub struct DkimSigner {
    config: DkimConfig,
    domain: String,
    algorithm: DkimSigningAlgorithm,
}

impl DkimSigner {
    /// A signer for mail from `from`: `d=` is `SPACEDIGEST_DKIM_DOMAIN`, else `from`'s domain.
    pub fn new(settings: &DkimSettings, from: &Mailbox) -> Result<Self, String> {
        let domain = settings.domain_for(from);
        let config = DkimConfig::new(
            settings.selector.clone(),
            domain.clone(),
            settings.key.signing_key()?,
            SIGNED_HEADERS
                .iter()
                .map(|name| HeaderName::new_from_ascii_str(name))
                .collect(),
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        Ok(Self {
            config,
            domain,
            algorithm: settings.key.algorithm,
        })
    }

    /// The `d=` domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Adds a `DKIM-Signature` header to `message`.
    ///
    /// lettre's signer unwraps the RSA signature's result; a key that passed the checks at
    /// start cannot fail there, but should it, this one message fails with a reason
    /// instead of taking its sender task down.
    pub fn sign(&self, message: &mut Message) -> Result<(), String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            message.sign(&self.config);
        }))
        .map_err(|_| {
            format!(
                "cannot sign the message with DKIM ({} key, d={})",
                self.algorithm, self.domain
            )
        })
    }
}
