//! The body of `POST /subscriptions`, form or JSON, decoded and checked: the part of the
//! signup that reads untrusted bytes. Public so the fuzz targets run exactly the code the
//! handler runs; it touches neither the database nor the network.

use serde_json::Value;

use crate::db::newsletters::Newsletter;
use crate::domain::{NewsletterSlug, SubscriberEmail, SubscriberName};
use crate::subscriptions::SignupRequest;
use crate::web::form;
use crate::web::pages::FormErrors;

/// Most newsletters one signup may name.
pub const MAX_NEWSLETTERS: usize = 50;
/// The hidden field only bots fill in.
const HONEYPOT: &str = "website";

/// The signup as sent, before validation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SignupInput {
    /// The address as typed (empty when absent).
    pub email: String,
    /// The name as typed (empty when absent).
    pub name: String,
    /// The newsletters named; `None` when the field is absent.
    pub newsletters: Option<Vec<String>>,
    /// The honeypot field carries something.
    pub honeypot_filled: bool,
}

/// How the body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`.
    Json,
}

impl BodyKind {
    /// The kind for a `Content-Type` value; `None` for anything we do not read.
    pub fn of_content_type(content_type: &str) -> Option<BodyKind> {
        let mime = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/x-www-form-urlencoded" => Some(BodyKind::Form),
            "application/json" => Some(BodyKind::Json),
            _ => None,
        }
    }
}

/// Why a body was refused before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The body itself is unreadable.
    Malformed(String),
    /// The body is readable but fields have the wrong type.
    Fields(FormErrors),
}

/// Decodes a body of the given kind.
pub fn decode(kind: BodyKind, body: &[u8]) -> Result<SignupInput, Rejection> {
    match kind {
        BodyKind::Form => parse_form(body),
        BodyKind::Json => parse_json(body),
    }
}

/// Decodes a urlencoded body; a repeated single-valued field or a broken escape is refused.
pub fn parse_form(body: &[u8]) -> Result<SignupInput, Rejection> {
    let malformed =
        |e: form::FormError| Rejection::Malformed(format!("{}.", capitalise(&e.to_string())));
    let pairs = form::parse_pairs(body).map_err(malformed)?;
    Ok(SignupInput {
        email: form::single(&pairs, "email")
            .map_err(malformed)?
            .unwrap_or_default(),
        name: form::single(&pairs, "name")
            .map_err(malformed)?
            .unwrap_or_default(),
        newsletters: form::multiple(&pairs, "newsletters"),
        honeypot_filled: form::multiple(&pairs, HONEYPOT)
            .is_some_and(|values| values.iter().any(|v| !v.trim().is_empty())),
    })
}

/// Decodes a JSON object body; fields of the wrong type are field errors.
pub fn parse_json(body: &[u8]) -> Result<SignupInput, Rejection> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Rejection::Malformed(format!("The body is not valid JSON: {e}.")))?;
    let Value::Object(object) = value else {
        return Err(Rejection::Malformed(
            "The body must be a JSON object with an \"email\" field.".into(),
        ));
    };
    let mut errors = FormErrors::default();
    let mut input = SignupInput::default();
    match object.get("email") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => input.email = s.clone(),
        Some(_) => errors.email.push("The email must be a string.".into()),
    }
    match object.get("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => input.name = s.clone(),
        Some(_) => errors.name.push("The name must be a string.".into()),
    }
    match object.get("newsletters") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => input.newsletters = Some(vec![s.clone()]),
        Some(Value::Array(items)) => {
            let slugs: Option<Vec<String>> = items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect();
            match slugs {
                Some(slugs) => input.newsletters = Some(slugs),
                None => errors
                    .newsletters
                    .push("Newsletters must be a list of newsletter names.".into()),
            }
        }
        Some(_) => errors
            .newsletters
            .push("Newsletters must be a list of newsletter names.".into()),
    }
    input.honeypot_filled = match object.get(HONEYPOT) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    };
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(Rejection::Fields(errors))
    }
}

/// Checks a decoded signup against the newsletters that exist.
pub fn validate(
    input: &SignupInput,
    all: &[Newsletter],
    ip: Option<String>,
) -> Result<SignupRequest, FormErrors> {
    let mut errors = FormErrors::default();
    let email = SubscriberEmail::parse(&input.email)
        .map_err(|e| errors.email.push(e.to_string()))
        .ok();
    let name = SubscriberName::parse(&input.name)
        .map_err(|e| errors.name.push(e.to_string()))
        .ok()
        .flatten();
    let mut chosen: Vec<Newsletter> = Vec::new();
    match &input.newsletters {
        None => match all
            .iter()
            .find(|n| n.slug == NewsletterSlug::DEFAULT)
            .or(all.first())
        {
            Some(default) => chosen.push(default.clone()),
            None => errors
                .general
                .push("There is no newsletter to subscribe to yet.".into()),
        },
        Some(slugs) if slugs.is_empty() || slugs.iter().all(|s| s.is_empty()) => {
            errors
                .newsletters
                .push("Choose at least one newsletter.".into());
        }
        Some(slugs) if slugs.len() > MAX_NEWSLETTERS => {
            errors
                .newsletters
                .push("That is more newsletters than we have.".into());
        }
        Some(slugs) => {
            for slug in slugs {
                match all.iter().find(|n| &n.slug == slug) {
                    Some(newsletter) if !chosen.iter().any(|c| c.id == newsletter.id) => {
                        chosen.push(newsletter.clone());
                    }
                    Some(_) => {}
                    None => errors.newsletters.push(format!(
                        "There is no newsletter called \"{}\".",
                        slug.chars().take(60).collect::<String>()
                    )),
                }
            }
        }
    }
    match email {
        Some(email) if errors.is_empty() => Ok(SignupRequest {
            email,
            name,
            newsletters: chosen,
            ip,
        }),
        _ => Err(errors),
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
#[path = "signup_input_tests.rs"]
mod tests;
