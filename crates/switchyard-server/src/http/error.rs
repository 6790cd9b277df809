//! Every failure a client can see, as one enum, and the one place that maps each to its HTTP status and
//! to the OpenAI error shape `{"error": {"message", "type", "code"}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answered to an HTTP client. `code` is machine-readable (e.g. `invalid_json`); `message` says
/// what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{message}")]
    Invalid {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// 401: no client key, or one the server does not know.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the key may not do this.
    #[error("{message}")]
    Forbidden {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// 404: no such endpoint, model or request.
    #[error("{message}")]
    NotFound {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// 408: the client did not send its request in time.
    #[error("{0}")]
    Timeout(String),
    /// 413: the body or prompt is too large.
    #[error("{0}")]
    TooLarge(String),
    /// 422: understood, but it cannot be done (a reload that fails).
    #[error("{message}")]
    Unprocessable {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// 429: too many requests, a spent budget or a full queue; retry after `retry_after_s` when given.
    #[error("{message}")]
    RateLimited {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what to do.
        message: String,
        /// Seconds until a retry can succeed (the `retry-after` header).
        retry_after_s: Option<u64>,
    },
    /// 500: the server's own failure.
    #[error("{0}")]
    Internal(String),
    /// 502: every upstream failed.
    #[error("{message}")]
    BadGateway {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// 503: nothing can serve the request now.
    #[error("{message}")]
    Unavailable {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

impl ApiError {
    /// A 400 invalid-request error.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }

    /// A 401 authentication error.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(message.into())
    }

    /// A 413 request-too-large error.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::TooLarge(message.into())
    }

    /// A 500 error of the server's own.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The OpenAI error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid { .. }
            | Self::NotFound { .. }
            | Self::Timeout(_)
            | Self::TooLarge(_)
            | Self::Unprocessable { .. } => "invalid_request_error",
            Self::Unauthorized(_) => "authentication_error",
            Self::Forbidden { .. } => "permission_error",
            Self::RateLimited { .. } => "rate_limit_error",
            Self::Internal(_) | Self::BadGateway { .. } | Self::Unavailable { .. } => "server_error",
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "invalid_api_key",
            Self::TooLarge(_) => "request_too_large",
            Self::Timeout(_) => "request_timeout",
            Self::Internal(_) => "internal_error",
            Self::Invalid { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::RateLimited { code, .. }
            | Self::BadGateway { code, .. }
            | Self::Unavailable { code, .. } => code,
        }
    }
}

impl From<crate::routing::RouteError> for ApiError {
    fn from(e: crate::routing::RouteError) -> Self {
        use crate::routing::RouteError as R;
        let code = e.code();
        match e {
            R::ModelNotAllowed(message) => Self::Forbidden { code, message },
            R::EncoderBusy(message) => Self::RateLimited { code, message, retry_after_s: Some(1) },
            R::EncoderFailed(message) => Self::Internal(message),
            R::InvalidKnob(message)
            | R::ConflictingKnobs(message)
            | R::InvalidPolicy(message)
            | R::Unsupported(message)
            | R::IdentifierTooLong(message)
            | R::InvalidIdentifier(message) => Self::Invalid { code, message },
        }
    }
}

impl From<crate::gateway::GatewayError> for ApiError {
    fn from(e: crate::gateway::GatewayError) -> Self {
        use crate::gateway::GatewayError as G;
        match e {
            G::Unsupported(message) => Self::invalid("unsupported_request", message),
            G::NoUpstream(message) => Self::Unavailable { code: "no_upstream", message },
            failed @ G::UpstreamsFailed(_) => {
                Self::BadGateway { code: "upstreams_failed", message: failed.to_string() }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.to_string(), "type": self.kind(), "code": self.code()}});
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::RateLimited { retry_after_s: Some(s), .. } = &self {
            response.headers_mut().insert("retry-after", HeaderValue::from(*s));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_type_and_code() {
        let limited =
            ApiError::RateLimited { code: "rate_limit_exceeded", message: "x".into(), retry_after_s: Some(7) };
        let response = limited.clone().into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
        assert_eq!((limited.kind(), limited.code()), ("rate_limit_error", "rate_limit_exceeded"));
        let bad = ApiError::invalid("invalid_json", "not JSON");
        assert_eq!(
            (bad.status(), bad.kind(), bad.code(), bad.to_string().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_json", "not JSON")
        );
        assert_eq!(ApiError::unauthorized("k").code(), "invalid_api_key");
    }
}
