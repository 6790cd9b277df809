//! Why the gateway could not get an answer. Plain values: the HTTP edge maps each to a status
//! ([`crate::http::error::ApiError`]'s `From<GatewayError>`).

/// Why no upstream answered a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    /// The request needs a capability (tools, images, a JSON schema) none of its candidate models declares.
    #[error("{0}")]
    Unsupported(String),
    /// No candidate model has a deployment and a context window large enough.
    #[error("{0}")]
    NoUpstream(String),
    /// Every attempt failed; each entry is `deployment: why`.
    #[error("every upstream failed: {}", .0.join("; "))]
    UpstreamsFailed(Vec<String>),
}
