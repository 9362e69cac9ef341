//! Login, logout and the operator's own account (password change).

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::session::{cookie_name, secure_cookies};
use super::{Console, ConsoleError, CsrfForm, Layout, render, render_with, see_other};
use crate::console::login_limit;
use crate::console::password::HashingError;
use crate::console::{OperatorPassword, password, sessions};
use crate::db::{self, operators};
use crate::web::client_ip::{client_ip, rate_limit_key};
use crate::web::{AppState, cookie_header};

/// The login form's own CSRF token lives in a cookie (double submit): there is no
/// session yet to keep it in.
const LOGIN_COOKIE: &str = "spacedigest_login";
const LOGIN_COOKIE_SECURE: &str = "__Host-spacedigest_login";

/// Longest address the login form looks up.
const MAX_EMAIL_BYTES: usize = 254;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/login")
            .route(web::get().to(login_page))
            .route(web::post().to(login)),
    )
    .route("/logout", web::post().to(logout))
    .route("/account", web::get().to(account_page))
    .route("/account/password", web::post().to(change_password));
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage {
    csrf_token: String,
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
    no_operator: bool,
}

fn login_cookie_name(state: &AppState) -> &'static str {
    if secure_cookies(state) {
        LOGIN_COOKIE_SECURE
    } else {
        LOGIN_COOKIE
    }
}

fn cookie<'a>(state: &AppState, name: &'a str, value: String) -> Cookie<'a> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure_cookies(state))
        .finish()
}

fn removal<'a>(state: &AppState, name: &'a str) -> Cookie<'a> {
    let mut gone = cookie(state, name, String::new());
    gone.set_max_age(CookieDuration::ZERO);
    gone
}

#[derive(Deserialize)]
struct LoginQuery {
    done: Option<String>,
}

async fn login_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let token = cookie_header::value(&req, login_cookie_name(&state))
        .filter(|v| v.len() == 43)
        .unwrap_or_else(sessions::new_token);
    let no_operator = db::run(&state.pool, operators::count).await? == 0;
    let notice = match query.done.as_deref() {
        Some("logged-out") => Some("You have logged out."),
        Some("expired") => Some("Your session has ended. Please log in again."),
        _ => None,
    };
    let page = LoginPage {
        csrf_token: token.clone(),
        email: String::new(),
        error: None,
        notice,
        no_operator,
    };
    let mut response = render(&page)?;
    response
        .add_cookie(&cookie(&state, login_cookie_name(&state), token))
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ConsoleError::BadInput("the login form could not be read".into()))?;
    let expected = cookie_header::value(&req, login_cookie_name(&state)).unwrap_or_default();
    if !sessions::tokens_match(&expected, &form.csrf_token) {
        return Err(ConsoleError::Csrf);
    }
    let email = form.email.trim().to_owned();
    let email_key = email.to_lowercase();
    let ip = client_ip(&req, &state.trusted_proxies)
        .map(|ip| rate_limit_key(ip).to_string())
        .unwrap_or_else(|| "unknown".into());

    let now = db::now();
    // The attempt is counted before its password is checked, and the account looked up
    // in the same round trip; an over-long address names nobody.
    let (key, from) = (email_key.clone(), ip.clone());
    let known = email.len() <= MAX_EMAIL_BYTES;
    let url = &state.settings.database.url;
    let (reserved, operator) = db::run_writing(&state.pool, url, move |conn| {
        let reserved = login_limit::reserve(conn, &key, &from, now)?;
        let operator = if known && reserved.is_ok() {
            operators::find_by_email(conn, &key)?
        } else {
            None
        };
        Ok::<_, ConsoleError>((reserved, operator))
    })
    .await?;
    let attempt = match reserved {
        Ok(attempt) => attempt,
        Err(wait) => {
            tracing::warn!(%ip, "console: login refused by the rate limit");
            return too_many_attempts(form.csrf_token, email, wait);
        }
    };

    let stored = operator.as_ref().map(|o| o.password_hash.clone());
    // Unknown addresses are checked against a dummy hash: same work, same time.
    let operator = match (password::verify(form.password, stored).await, operator) {
        (Ok(true), Some(operator)) => operator,
        (Ok(_), _) => {
            attempt.failed();
            tracing::info!(%ip, "console: failed login");
            let page = LoginPage {
                csrf_token: form.csrf_token,
                email,
                error: Some("The email address or password is not right.".into()),
                notice: None,
                no_operator: false,
            };
            return render_with(StatusCode::UNAUTHORIZED, &page);
        }
        (Err(HashingError::Busy(busy)), _) => {
            db::run(&state.pool, move |conn| attempt.not_made(conn)).await?;
            tracing::warn!(%ip, "console: login turned away, every password check is taken");
            return Err(busy.into());
        }
        // A check that broke off counts as a failure, like one cut off by a crash.
        (Err(stopped), _) => return Err(stopped.into()),
    };

    // A fresh session id at every login: one fixed before login is never promoted.
    let previous =
        cookie_header::value(&req, cookie_name(&state)).map(|v| crate::tokens::hash_token(&v));
    let (from, operator_id) = (ip.clone(), operator.id);
    let (idle, max) = (
        state.settings.console.session_idle,
        state.settings.console.session_max,
    );
    let cookie_value = db::run(&state.pool, move |conn| {
        attempt.succeeded(conn)?;
        // Sessions nobody can use any more are swept here: logins are rare and cheap.
        let now = db::now();
        operators::delete_stale_sessions(
            conn,
            sessions::cutoff(now, idle),
            sessions::cutoff(now, max),
        )?;
        if let Some(previous) = previous {
            operators::delete_session(conn, &previous)?;
        }
        sessions::start(conn, operator_id, Some(from))
    })
    .await?;
    tracing::info!(operator_id, %ip, "console: operator logged in");
    let mut response = see_other("/admin");
    response
        .add_cookie(&cookie(&state, cookie_name(&state), cookie_value))
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    response
        .add_cookie(&removal(&state, login_cookie_name(&state)))
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    Ok(response)
}

/// The login page again, with how long to wait: a limit refused the attempt unchecked.
fn too_many_attempts(
    csrf_token: String,
    email: String,
    wait: std::time::Duration,
) -> Result<HttpResponse, ConsoleError> {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let page = LoginPage {
        csrf_token,
        email,
        error: Some(format!(
            "Too many failed attempts. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        )),
        notice: None,
        no_operator: false,
    };
    let mut response = render_with(StatusCode::TOO_MANY_REQUESTS, &page)?;
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(wait.as_secs().max(1)),
    );
    Ok(response)
}

async fn logout(form: CsrfForm) -> Result<HttpResponse, ConsoleError> {
    let console = form.console;
    let id_hash = console.session.id_hash.clone();
    db::run(console.pool(), move |conn| {
        operators::delete_session(conn, &id_hash)
    })
    .await?;
    tracing::info!(
        operator_id = console.operator.id,
        "console: operator logged out"
    );
    let mut response = see_other("/admin/login?done=logged-out");
    response
        .add_cookie(&removal(&console.state, cookie_name(&console.state)))
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    Ok(response)
}

#[derive(Template)]
#[template(path = "admin/account.html")]
struct AccountPage {
    layout: Layout,
    error: Option<String>,
    other_sessions: i64,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn account_page(
    console: Console,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let notice = (query.done.as_deref() == Some("password-changed"))
        .then(|| "Your password was changed. Every other session has ended.".to_owned());
    let other_sessions = other_sessions(&console).await?;
    render(&AccountPage {
        layout: console.layout_with_notice("account", notice),
        error: None,
        other_sessions,
    })
}

async fn other_sessions(console: &Console) -> Result<i64, ConsoleError> {
    use crate::db::schema::operator_sessions;
    use diesel::prelude::*;
    let (operator_id, id_hash) = (console.operator.id, console.session.id_hash.clone());
    Ok(db::run(console.pool(), move |conn| {
        operator_sessions::table
            .filter(operator_sessions::operator_id.eq(operator_id))
            .filter(operator_sessions::id_hash.ne(id_hash))
            .count()
            .get_result(conn)
    })
    .await?)
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

async fn change_password(form: CsrfForm) -> Result<HttpResponse, ConsoleError> {
    let input: PasswordForm = form.parse()?;
    let console = form.console;
    let stored = console.operator.password_hash.clone();
    let ok = password::verify(input.current_password, Some(stored)).await?;
    let checked = if !ok {
        Err("Your current password is not right.".to_owned())
    } else if input.new_password != input.confirm_password {
        Err("The two new passwords are not the same.".to_owned())
    } else {
        OperatorPassword::parse(&input.new_password, &console.operator.email)
            .map_err(|e| format!("Choose another password: {e}."))
    };
    let new = match checked {
        Ok(new) => new,
        Err(message) => {
            let other_sessions = other_sessions(&console).await?;
            return render_with(
                StatusCode::BAD_REQUEST,
                &AccountPage {
                    layout: console.layout("account"),
                    error: Some(message),
                    other_sessions,
                },
            );
        }
    };
    let hash = new.hash().await?;
    let (operator_id, keep) = (console.operator.id, console.session.id_hash.clone());
    db::run(console.pool(), move |conn| {
        operators::set_password(conn, operator_id, &hash, Some(&keep), db::now())
    })
    .await?;
    tracing::info!(
        operator_id,
        "console: password changed; other sessions ended"
    );
    Ok(see_other("/admin/account?done=password-changed"))
}
