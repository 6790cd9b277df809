//! Why the routing core refuses a request. Plain values, no HTTP: the HTTP edge maps each to a status and an
//! error code ([`crate::http::error::ApiError`]'s `From<RouteError>`), and the CLI prints it.

/// Why a request cannot be routed. Every variant says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    /// A knob's value is not valid (not a number, out of range).
    #[error("{0}")]
    InvalidKnob(String),
    /// The request sets both `min_quality` and `willingness_to_pay`.
    #[error("{0}")]
    ConflictingKnobs(String),
    /// The policy the request's knobs make cannot decide (no model left, for instance).
    #[error("{0}")]
    InvalidPolicy(String),
    /// None of the models the request allows is allowed for its key.
    #[error("{0}")]
    ModelNotAllowed(String),
    /// The request needs a capability (tools, images, a JSON schema) no model it may use declares.
    #[error("{0}")]
    Unsupported(String),
    /// A client-chosen identifier is longer than `server.max_id_bytes`.
    #[error("{0}")]
    IdentifierTooLong(String),
    /// A client-chosen identifier holds a control character.
    #[error("{0}")]
    InvalidIdentifier(String),
    /// The encoder's queue is full: retry in a second.
    #[error("{0}")]
    EncoderBusy(String),
    /// The encoder failed on this prompt.
    #[error("{0}")]
    EncoderFailed(String),
}

impl RouteError {
    /// The error code clients see (`error.code` in OpenAI's shape).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidKnob(_) => "invalid_knob",
            Self::ConflictingKnobs(_) => "conflicting_knobs",
            Self::InvalidPolicy(_) => "invalid_policy",
            Self::ModelNotAllowed(_) => "model_not_allowed",
            Self::Unsupported(_) => "unsupported_request",
            Self::IdentifierTooLong(_) => "identifier_too_long",
            Self::InvalidIdentifier(_) => "invalid_identifier",
            Self::EncoderBusy(_) => "encoder_busy",
            Self::EncoderFailed(_) => "internal_error",
        }
    }
}
