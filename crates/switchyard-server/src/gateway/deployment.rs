//! One deployment of a catalog model: where it is called, with which key and model name, and its share of
//! first tries. The gateway's other modules name deployments by this type.

/// One deployment of a catalog model.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// The deployment's name: in logs, the `deployment` metrics label and `x-switchyard-deployment`.
    pub name: String,
    /// The catalog model it serves.
    pub model: String,
    /// Base URL, without a trailing slash.
    pub base_url: String,
    /// The API it speaks: OpenAI's (`base_url` + `/chat/completions`) or Anthropic's (`base_url` +
    /// `/v1/messages`, the request and answer translated by [`crate::anthropic`]).
    pub api: switchyard_core::UpstreamApi,
    /// Environment variable holding its API key.
    pub api_key_env: Option<String>,
    /// The model name sent upstream.
    pub upstream_model: String,
    /// Relative share of first tries.
    pub weight: u32,
}
