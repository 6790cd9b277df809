//! The dashboard's page: `GET /ui` (the page, or the sign-in form), its scripts and stylesheet, `POST /ui/login` and
//! `POST /ui/logout`. The page ([`crate::ui`]) is served under a Content-Security-Policy that allows nothing
//! but its own scripts and stylesheet and calls back to this server; everything it shows comes from
//! `GET /admin/stats` ([`super::stats`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use crate::dashboard::session;
use crate::http::auth::{admin_digest, admin_off, has_session};
use crate::state::AppState;
use crate::ui::{APP_CSS, APP_JS, CHARTS_JS, INDEX_HTML, LOGIN_HTML};

/// Only the page's own scripts, stylesheet and calls back to this server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page with the headers every dashboard page carries.
fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The sign-in form, with `message` (escaped) above it.
fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let note = message.map(|m| format!("<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>", escape(m)));
    page(status, LOGIN_HTML.replace("<!--MESSAGE-->", note.as_deref().unwrap_or("")))
}

/// `s` safe as HTML text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /ui`: the dashboard for a signed-in admin, else the sign-in form (401); 403 when no admin key is set.
pub(super) async fn index(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let server = &state.config.server;
    if let Some(off) = admin_off(server) {
        return login_page(StatusCode::FORBIDDEN, Some(&off.to_string()));
    }
    if has_session(&state, &headers) {
        page(StatusCode::OK, INDEX_HTML.to_string())
    } else {
        login_page(StatusCode::UNAUTHORIZED, None)
    }
}

/// An embedded asset.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// `GET /ui/app.js`.
pub(super) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /ui/charts.js`.
pub(super) async fn charts_js() -> Response {
    asset("text/javascript; charset=utf-8", CHARTS_JS)
}

/// `GET /ui/app.css`.
pub(super) async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct Login {
    key: String,
}

/// Whether the request reached this server over HTTPS (at a proxy that says so), so the cookie is `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// `POST /ui/login`: an admin key becomes a session cookie (HttpOnly, SameSite=Strict), then back to `/ui`.
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(login): Form<Login>,
) -> Response {
    let server = &state.config.server;
    if let Some(off) = admin_off(server) {
        return login_page(StatusCode::FORBIDDEN, Some(&off.to_string()));
    }
    let Some(digest) = admin_digest(server, &login.key) else {
        tracing::warn!("dashboard sign-in with a key that is not an admin key");
        return login_page(StatusCode::UNAUTHORIZED, Some("That key is not one of server.admin_keys."));
    };
    let token = session::mint(&state.session_secret, &digest, switchyard_store::now_ms());
    let secure = if over_https(&headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session::COOKIE,
        session::LIFETIME_MS / 1000
    );
    redirect_with_cookie(&cookie)
}

/// `POST /ui/logout`: the cookie cleared, back to the sign-in form.
pub(super) async fn logout() -> Response {
    redirect_with_cookie(&format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", session::COOKIE))
}

fn redirect_with_cookie(cookie: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(LOCATION, HeaderValue::from_static("/ui"));
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
