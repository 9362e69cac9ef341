//! A DKIM verifier for the tests, written from RFC 6376 (relaxed/relaxed, `rsa-sha256`,
//! and RFC 8463's `ed25519-sha256`), independent of lettre's signer: it parses the raw
//! bytes the SMTP server received and checks them against the public key, which a real
//! verifier would fetch from `SELECTOR._domainkey.DOMAIN`.

use base64::Engine;
use rsa::pkcs1v15::Pkcs1v15Sign;
use sha2::{Digest, Sha256};

/// The public half of a test key.
pub enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// The public key of the test key pair in `file` (beside this file).
pub fn public_key(file: &str) -> PublicKey {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let pem = std::fs::read_to_string(key_path(file)).unwrap();
    if pem.contains("BEGIN RSA PRIVATE KEY") {
        PublicKey::Rsa(
            rsa::RsaPrivateKey::from_pkcs1_pem(&pem)
                .unwrap()
                .to_public_key(),
        )
    } else if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(&pem) {
        PublicKey::Rsa(key.to_public_key())
    } else {
        PublicKey::Ed25519(
            ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
                .unwrap()
                .verifying_key(),
        )
    }
}

/// The path of a test key file.
pub fn key_path(file: &str) -> String {
    format!(
        "{}/tests/api/deliverability/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// What a passing signature said.
#[derive(Debug)]
pub struct Verified {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// `h=`, lower-cased.
    pub signed_headers: Vec<String>,
}

/// Checks the one `DKIM-Signature` of `raw`; `Err` says why it fails.
pub fn verify(raw: &[u8], key: &PublicKey) -> Result<Verified, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("no blank line after the header")?;
    let fields = header_fields(head);
    let signatures: Vec<&String> = fields
        .iter()
        .filter(|field| field_name(field).eq_ignore_ascii_case("DKIM-Signature"))
        .collect();
    let [signature] = signatures.as_slice() else {
        return Err(format!("{} DKIM-Signature headers", signatures.len()));
    };
    let tags = tags(field_value(signature));
    let tag = |name: &str| {
        tags.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or(format!("no {name}= tag"))
    };
    if tag("v")? != "1" {
        return Err("v= is not 1".into());
    }
    if tag("c")? != "relaxed/relaxed" {
        return Err(format!("c={} is not relaxed/relaxed", tag("c")?));
    }
    let algorithm = tag("a")?;
    let b64 = base64::engine::general_purpose::STANDARD;

    let body_hash = Sha256::digest(relaxed_body(body.as_bytes()));
    if b64.encode(body_hash) != tag("bh")? {
        return Err("the body hash (bh=) does not match the body".into());
    }

    let signed_headers: Vec<String> = tag("h")?
        .split(':')
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    // RFC 6376 5.4.2: each name takes the last not yet used instance of that field.
    let mut used = vec![false; fields.len()];
    let mut hashed = String::new();
    for name in &signed_headers {
        let found = (0..fields.len()).rev().find(|&i| {
            !used[i]
                && !std::ptr::eq(&fields[i], *signature)
                && field_name(&fields[i]).eq_ignore_ascii_case(name)
        });
        if let Some(i) = found {
            used[i] = true;
            hashed.push_str(&relaxed_header(&fields[i]));
            hashed.push_str("\r\n");
        }
    }
    hashed.push_str(&without_b_value(&relaxed_header(signature)));
    let digest = Sha256::digest(hashed.as_bytes());
    let signature_bytes = b64
        .decode(tag("b")?)
        .map_err(|e| format!("b= is not base64: {e}"))?;
    match (algorithm.as_str(), key) {
        ("rsa-sha256", PublicKey::Rsa(key)) => key
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature_bytes)
            .map_err(|e| format!("the RSA signature does not verify: {e}"))?,
        ("ed25519-sha256", PublicKey::Ed25519(key)) => {
            let signature = ed25519_dalek::Signature::from_slice(&signature_bytes)
                .map_err(|e| format!("not an Ed25519 signature: {e}"))?;
            key.verify_strict(&digest, &signature)
                .map_err(|e| format!("the Ed25519 signature does not verify: {e}"))?
        }
        (other, _) => return Err(format!("a={other} does not fit the key")),
    }
    Ok(Verified {
        domain: tag("d")?,
        selector: tag("s")?,
        signed_headers,
    })
}

/// The header block split into fields, each with its continuation lines.
fn header_fields(head: &str) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match (line.starts_with([' ', '\t']), fields.last_mut()) {
            (true, Some(last)) => {
                last.push_str("\r\n");
                last.push_str(line);
            }
            _ => fields.push(line.to_owned()),
        }
    }
    fields
}

fn field_name(field: &str) -> &str {
    field.split_once(':').map_or(field, |(name, _)| name).trim()
}

fn field_value(field: &str) -> &str {
    field.split_once(':').map_or("", |(_, value)| value)
}

/// `tag=value` pairs, values with all whitespace removed (folding included).
fn tags(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| {
            (
                name.trim().to_owned(),
                value.chars().filter(|c| !c.is_whitespace()).collect(),
            )
        })
        .collect()
}

/// RFC 6376 3.4.2: lower-case name, unfolded value, whitespace runs as one space, none
/// around the colon or at the end.
fn relaxed_header(field: &str) -> String {
    let name = field_name(field).to_ascii_lowercase();
    let unfolded = field_value(field).replace("\r\n", "");
    let value = collapse_whitespace(&unfolded);
    format!("{name}:{}", value.trim_matches(' '))
}

fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if c == ' ' || c == '\t' {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// The canonical signature header with the value of its `b=` tag taken out.
fn without_b_value(canonical: &str) -> String {
    let (name, value) = canonical.split_once(':').unwrap();
    let tags: Vec<String> = value
        .split(';')
        .map(|tag| match tag.split_once('=') {
            Some((tag_name, _)) if tag_name.trim() == "b" => format!("{tag_name}="),
            _ => tag.to_owned(),
        })
        .collect();
    format!("{name}:{}", tags.join(";"))
}

/// RFC 6376 3.4.4: whitespace at line ends removed, runs as one space, empty lines at
/// the end removed, and the body ending in CRLF.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut lines: Vec<String> = text
        .split("\r\n")
        .map(|line| collapse_whitespace(line).trim_end_matches(' ').to_owned())
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out.into_bytes()
}
