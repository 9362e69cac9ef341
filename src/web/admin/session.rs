//! The console's request guards: [`Console`] (a live session) and [`CsrfForm`] (a live
//! session plus a form whose CSRF token matches it).

use std::future::Future;
use std::pin::Pin;

use actix_multipart::Multipart;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::{ConsoleError, Layout};
use crate::console::sessions::{self, Lifetime};
use crate::db::operators::{Operator, Session};
use crate::web::{AppState, cookie_header};

/// Name of the session cookie over plain HTTP. Over HTTPS it carries the `__Host-`
/// prefix, which browsers accept only with `Secure`, `Path=/` and no `Domain`.
pub const COOKIE_NAME: &str = "spacedigest_session";

/// Largest urlencoded console form.
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// Largest upload (a feed file or a CSV of subscribers).
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The session cookie's name for this deployment.
pub fn cookie_name(state: &AppState) -> &'static str {
    if secure_cookies(state) {
        "__Host-spacedigest_session"
    } else {
        COOKIE_NAME
    }
}

/// Cookies are `Secure` when the public URL is https.
pub fn secure_cookies(state: &AppState) -> bool {
    state.settings.server.base_url.scheme() == "https"
}

fn lifetime(state: &AppState) -> Lifetime {
    Lifetime {
        idle: state.settings.console.session_idle,
        max: state.settings.console.session_max,
    }
}

/// A request from a signed-in operator.
pub struct Console {
    /// The operator.
    pub operator: Operator,
    /// Their session.
    pub session: Session,
    /// The session's CSRF token, derived from the cookie.
    pub csrf_token: String,
    /// The application state.
    pub state: web::Data<AppState>,
}

impl Console {
    /// The layout of a page in `section`.
    pub fn layout(&self, section: &'static str) -> Layout {
        Layout {
            operator_email: self.operator.email.clone(),
            csrf_token: self.csrf_token.clone(),
            section,
            notice: None,
        }
    }

    /// Like [`Console::layout`], with a notice from the `done` query parameter.
    pub fn layout_with_notice(&self, section: &'static str, notice: Option<String>) -> Layout {
        Layout {
            notice,
            ..self.layout(section)
        }
    }

    /// Refuses the request unless `offered` is this session's CSRF token.
    pub fn check_csrf(&self, offered: &str) -> Result<(), ConsoleError> {
        if sessions::tokens_match(&self.csrf_token, offered) {
            Ok(())
        } else {
            tracing::warn!(
                operator_id = self.operator.id,
                "console: CSRF token refused"
            );
            Err(ConsoleError::Csrf)
        }
    }

    /// The database pool.
    pub fn pool(&self) -> &crate::db::Pool {
        &self.state.pool
    }

    /// Reads a `multipart/form-data` upload whole (up to [`MAX_UPLOAD_BYTES`]) and checks
    /// its `csrf_token` field before returning anything.
    pub async fn read_multipart(&self, mut multipart: Multipart) -> Result<Upload, ConsoleError> {
        let mut upload = Upload::default();
        let mut total = 0usize;
        // A body that cannot be read as multipart carries no token we can trust: until
        // the token has been read, any malformation is answered as a forgery (403).
        let malformed = |upload: &Upload, e: &dyn std::fmt::Display| {
            if upload.text("csrf_token").is_some() {
                ConsoleError::BadInput(format!("the upload is malformed: {e}"))
            } else {
                ConsoleError::Csrf
            }
        };
        while let Some(field) = multipart.next().await {
            let mut field = field.map_err(|e| malformed(&upload, &e))?;
            let name = field.name().unwrap_or_default().to_owned();
            let filename = field
                .content_disposition()
                .and_then(|cd| cd.get_filename())
                .map(str::to_owned);
            let mut data = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|e| malformed(&upload, &e))?;
                total += chunk.len();
                if total > MAX_UPLOAD_BYTES {
                    return Err(ConsoleError::TooLarge(format!(
                        "An upload may be at most {} MiB.",
                        MAX_UPLOAD_BYTES / (1024 * 1024)
                    )));
                }
                data.extend_from_slice(&chunk);
            }
            upload.fields.push(UploadField {
                name,
                filename,
                data,
            });
        }
        let csrf = upload.text("csrf_token").unwrap_or_default();
        self.check_csrf(&csrf)?;
        Ok(upload)
    }
}

/// One part of an upload.
#[derive(Debug, Clone)]
pub struct UploadField {
    /// The form field's name.
    pub name: String,
    /// The file's name, for file fields.
    pub filename: Option<String>,
    /// The bytes.
    pub data: Vec<u8>,
}

/// A whole `multipart/form-data` body whose CSRF token was checked.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// The parts, in order.
    pub fields: Vec<UploadField>,
}

impl Upload {
    /// A text field's value (the first, if repeated).
    pub fn text(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| String::from_utf8(f.data.clone()).ok())
    }

    /// A file field with content, if one was chosen.
    pub fn file(&self, name: &str) -> Option<&UploadField> {
        self.fields
            .iter()
            .find(|f| f.name == name && f.filename.is_some() && !f.data.is_empty())
    }
}

impl FromRequest for Console {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let cookie = state
            .as_ref()
            .and_then(|s| cookie_header::value(req, cookie_name(s)));
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ConsoleError::Internal(anyhow::anyhow!("the console has no application state"))
            })?;
            let cookie = cookie.ok_or(ConsoleError::LoginRequired)?;
            let csrf_token = sessions::csrf_token(&cookie);
            let lifetime = lifetime(&state);
            let found = crate::db::run(&state.pool, move |conn| {
                sessions::resume(conn, &cookie, lifetime)
            })
            .await?;
            let (session, operator) = found.ok_or(ConsoleError::LoginRequired)?;
            Ok(Console {
                operator,
                session,
                csrf_token,
                state,
            })
        })
    }
}

/// A urlencoded form from a signed-in operator, whose `csrf_token` field matched the
/// session: the check happens before any other field is looked at, so a forged request
/// gets 403 whatever else it carries.
pub struct CsrfForm {
    /// The session.
    pub console: Console,
    /// Every field, in order (the CSRF token included).
    pub pairs: Vec<(String, String)>,
    body: Bytes,
}

impl CsrfForm {
    /// The form as a typed struct; a missing or malformed field is a 400 that names it.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConsoleError> {
        serde_urlencoded::from_bytes(&self.body)
            .map_err(|e| ConsoleError::BadInput(format!("the form is incomplete: {e}")))
    }

    /// A single field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequest for CsrfForm {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let console = Console::from_request(req, &mut Payload::None);
        let body = Bytes::from_request(req, payload);
        let is_form = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        Box::pin(async move {
            // The body is read even without a session: answering before reading it makes
            // the server close the connection, which a client reusing it sees as an error.
            let (console, body) = futures_util::join!(console, body);
            let console = console?;
            let body = body.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => ConsoleError::TooLarge(format!(
                    "A console form may be at most {} KiB.",
                    MAX_FORM_BYTES / 1024
                )),
                _ => ConsoleError::BadInput(format!("the form could not be read: {e}")),
            })?;
            // A body we cannot read has no token we can trust: refuse it as forged.
            let pairs = if is_form {
                crate::web::form::parse_pairs(&body).map_err(|_| ConsoleError::Csrf)?
            } else {
                Vec::new()
            };
            let offered = pairs
                .iter()
                .find(|(n, _)| n == "csrf_token")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            console.check_csrf(offered)?;
            Ok(CsrfForm {
                console,
                pairs,
                body,
            })
        })
    }
}
