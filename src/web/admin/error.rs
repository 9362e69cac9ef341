//! What can go wrong in the console, and the answer each gets.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::console::hashing::Busy;
use crate::console::password::HashingError;
use crate::db::StorageError;
use crate::subscriptions::ServiceError;

/// `Retry-After` when every password check is taken: a burst passes within seconds.
const BUSY_RETRY_AFTER_SECONDS: &str = "5";

/// A console request that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: the browser is sent to the login page.
    #[error("login required")]
    LoginRequired,
    /// The form's CSRF token is missing or wrong.
    #[error("the form's security token is missing or out of date")]
    Csrf,
    /// Nothing at this address (an unknown id).
    #[error("{0}")]
    NotFound(String),
    /// The input cannot be used; the message says why.
    #[error("{0}")]
    BadInput(String),
    /// The form or upload is larger than the console takes; the message says the limit.
    #[error("{0}")]
    TooLarge(String),
    /// The request conflicts with the current state (e.g. resuming a finished send).
    #[error("{0}")]
    Conflict(String),
    /// Every turn to hash a password is taken (a burst of logins): come back shortly.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The database is unreachable or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Anything else on our side.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<HashingError> for ConsoleError {
    fn from(error: HashingError) -> Self {
        match error {
            HashingError::Busy(busy) => Self::Busy(busy),
            HashingError::Stopped(stopped) => Self::Internal(stopped.into()),
        }
    }
}

impl From<ServiceError> for ConsoleError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Storage(e) => ConsoleError::Storage(e),
            ServiceError::Render(e) => ConsoleError::Internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<diesel::result::Error> for ConsoleError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Storage(StorageError::from(error))
    }
}

#[derive(Template)]
#[template(path = "admin/error.html")]
struct ErrorPage<'a> {
    status: u16,
    heading: &'a str,
    message: &'a str,
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginRequired => StatusCode::SEE_OTHER,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadInput(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (heading, message) = match self {
            Self::LoginRequired => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/admin/login"))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .finish();
            }
            Self::Csrf => (
                "Form expired",
                "This form's security token is missing or out of date, so nothing was changed. Go back, reload the page and try again.".to_owned(),
            ),
            Self::NotFound(what) => ("Not found", what.clone()),
            Self::BadInput(why) => ("That did not work", why.clone()),
            Self::TooLarge(why) => ("Too large", why.clone()),
            Self::Conflict(why) => ("That cannot be done now", why.clone()),
            Self::Busy(_) => (
                "Too busy",
                "Too many passwords are being checked at this moment. Nothing was changed; try again in a few seconds.".to_owned(),
            ),
            Self::Storage(e) if e.is_unavailable() => {
                tracing::error!(error = %e, "console: storage unavailable");
                (
                    "Database unavailable",
                    "The database cannot be reached right now. Nothing was changed; try again in a minute.".to_owned(),
                )
            }
            Self::Storage(e) => {
                tracing::error!(error = %e, "console: storage failed");
                ("Something went wrong", "Something went wrong on our side; it has been logged.".to_owned())
            }
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "console: request failed");
                ("Something went wrong", "Something went wrong on our side; it has been logged.".to_owned())
            }
        };
        let page = ErrorPage {
            status: status.as_u16(),
            heading,
            message: &message,
        };
        let body = page.render().unwrap_or_else(|_| message.clone());
        let mut response = HttpResponse::build(status);
        response
            .content_type(header::ContentType::html())
            .insert_header((header::CACHE_CONTROL, "no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let seconds = match self {
                Self::Busy(_) => BUSY_RETRY_AFTER_SECONDS,
                _ => crate::web::responses::RETRY_AFTER_SECONDS,
            };
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        response.body(body)
    }
}
