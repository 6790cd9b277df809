//! What one logged request holds, and the feedback a client attaches to it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How prompts are kept in the log (`log.prompts` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptLogging {
    /// The prompt text and its SHA-256 (needed to export training data).
    #[default]
    Full,
    /// Only the SHA-256 of the prompt: traffic and feedback stats still work, export has no text to write.
    Hash,
}

/// One model's estimate at decision time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The model.
    pub model: String,
    /// Predicted probability of success.
    pub p: f64,
    /// Expected cost of the call, USD.
    pub cost_usd: f64,
}

/// One upstream call of a gateway request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The model called.
    pub model: String,
    /// The deployment of the model that was called (absent in rows written before deployments existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The HTTP status it answered with (`None`: no answer, e.g. a refused connection or a timeout).
    pub status: Option<u16>,
    /// How long the call took, milliseconds.
    pub latency_ms: f64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// One request as the decision log keeps it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The id returned to the client (`x-switchyard-request-id`); feedback refers to it.
    pub request_id: String,
    /// When the request arrived, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// `route` (a decision only), or `chat` or `messages` (the gateway, by OpenAI's or Anthropic's API).
    pub endpoint: String,
    /// The prompt the router read (absent when prompts are logged as hashes only).
    pub prompt: Option<String>,
    /// SHA-256 of the prompt, hex.
    pub prompt_sha256: String,
    /// Number of chat messages in the request (1 for a bare prompt).
    pub messages_count: u32,
    /// The user or session id the request carried, if any.
    pub user: Option<String>,
    /// The name of the client key the request came with (the name from `[[keys]]`, never the key itself).
    #[serde(default)]
    pub api_key: Option<String>,
    /// The experiment this request took part in, if any.
    pub experiment: Option<String>,
    /// The experiment arm it was assigned to.
    pub arm: Option<String>,
    /// The rule that fired, if any.
    pub rule: Option<String>,
    /// The conversation's session pin, when one applied: `{"id", "turn", "model", "action"}`.
    #[serde(default)]
    pub session: Option<serde_json::Value>,
    /// The policy applied, as JSON.
    pub policy: Option<serde_json::Value>,
    /// Per-model estimates at decision time (empty when the request named a model itself).
    pub estimates: Vec<Estimate>,
    /// The decision's first choice.
    pub decided_model: Option<String>,
    /// The model that answered (for `route`, the decided model).
    pub chosen_model: Option<String>,
    /// Every upstream call, in order: the first choice, then the fallbacks.
    pub attempts: Vec<Attempt>,
    /// The HTTP status returned to the client.
    pub status: u16,
    /// Input tokens the upstream reported.
    pub input_tokens: Option<u64>,
    /// Output tokens the upstream reported.
    pub output_tokens: Option<u64>,
    /// Cost of the call at catalog prices, from the reported tokens.
    pub cost_usd: Option<f64>,
    /// The decision's expected cost for the chosen model.
    pub expected_cost_usd: Option<f64>,
    /// Time to decide (encode and policy), milliseconds.
    pub decision_ms: Option<f64>,
    /// Time from the request's arrival to the end of the response, milliseconds.
    pub latency_ms: f64,
    /// Whether the response was streamed.
    pub stream: bool,
    /// The probability that the router chose the decided model for this request (1 without exploration;
    /// absent when the request named its model).
    #[serde(default)]
    pub propensity: Option<f64>,
    /// Whether the decided model was an exploration (`learning.explore`) rather than the policy's choice.
    #[serde(default)]
    pub explored: bool,
    /// Whether the tokens and cost are an estimate (the upstream reported no usage).
    #[serde(default)]
    pub usage_estimated: bool,
    /// Whether the answer came from the response cache (no upstream call: `cost_usd` is 0).
    #[serde(default)]
    pub cache_hit: bool,
    /// On a cache hit, what the cached answer cost when it was made: the spend the hit saved.
    #[serde(default)]
    pub cache_saved_usd: Option<f64>,
    /// The answer's text as `log.responses` keeps it (whole, or cut at `log.max_response_chars`).
    #[serde(default)]
    pub response: Option<String>,
    /// SHA-256 of the answer's whole text, hex.
    #[serde(default)]
    pub response_sha256: Option<String>,
    /// Whether `response` was cut.
    #[serde(default)]
    pub response_truncated: bool,
    /// The answer's finish reason (`stop`, `length`, `tool_calls`, ...).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// The answer's tool calls, as the OpenAI API gives them.
    #[serde(default)]
    pub tool_calls: Option<serde_json::Value>,
    /// The request's messages in OpenAI's shape, when it had more than the prompt (an earlier turn, a system
    /// prompt) and prompts are logged in full: each text cut at `log.max_response_chars`, images and audio
    /// replaced by a note of their kind (see [`DecisionRecord::set_messages`]).
    #[serde(default)]
    pub messages: Option<serde_json::Value>,
    /// The router's most likely domain for the prompt at decision time (absent when the request named its
    /// model, or the router has no domains).
    #[serde(default)]
    pub domain: Option<String>,
    /// The router's complexity score for the prompt at decision time, in [0, 1].
    #[serde(default)]
    pub complexity: Option<f64>,
}

impl DecisionRecord {
    /// Sets the prompt as `logging` says: the text and its hash, or the hash only.
    pub fn set_prompt(&mut self, prompt: &str, logging: PromptLogging) {
        self.prompt_sha256 = prompt_hash(prompt);
        self.prompt = (logging == PromptLogging::Full).then(|| prompt.to_string());
    }

    /// Whether this request needed a fallback (more than one upstream call).
    pub fn fell_back(&self) -> bool {
        self.attempts.len() > 1
    }
}

/// SHA-256 of a prompt, lowercase hex.
pub fn prompt_hash(prompt: &str) -> String {
    Sha256::digest(prompt.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Feedback a client sends for one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The request it is about.
    pub request_id: String,
    /// The name of the client key the feedback came with (`None`: no key). Feedback finds only a request made
    /// with the same key (or, without one, a request made without one): another key's request is as unknown
    /// as an id never issued.
    #[serde(default)]
    pub api_key: Option<String>,
    /// The outcome, in [0, 1] (1 = fully successful).
    pub score: f64,
    /// Free text.
    pub comment: Option<String>,
    /// When it arrived, milliseconds since the Unix epoch.
    pub ts_ms: i64,
}

/// What storing feedback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FeedbackOutcome {
    /// The first feedback for this request.
    Recorded,
    /// Feedback existed; the new score replaced it (the latest feedback wins). Holds how many times feedback
    /// was sent for this request so far.
    Replaced(u32),
}

/// What storing feedback did, and what the scored request was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackReceipt {
    /// Recorded or replaced.
    pub outcome: FeedbackOutcome,
    /// The scored request's endpoint: `chat` or `messages` (the gateway, by OpenAI's or Anthropic's API) or
    /// `route` (a decision only).
    pub endpoint: String,
    /// The model that answered it (for `route`, the decided model).
    pub chosen_model: Option<String>,
    /// The experiment the scored request took part in, and its arm, if any.
    pub arm: Option<(String, String)>,
}

impl FeedbackReceipt {
    /// Whether an upstream answered the scored request (a gateway request with a model that answered), so
    /// that its score speaks of an answer the server saw. A `/v1/route` decision's score speaks of a call the
    /// client made itself, if any.
    pub fn answered_upstream(&self) -> bool {
        matches!(self.endpoint.as_str(), "chat" | "messages") && self.chosen_model.is_some()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_only_logging_keeps_no_text() {
        let mut r = DecisionRecord::default();
        r.set_prompt("secret plans", PromptLogging::Hash);
        assert_eq!(r.prompt, None);
        assert_eq!(r.prompt_sha256, prompt_hash("secret plans"));
        assert_eq!(r.prompt_sha256.len(), 64);
        r.set_prompt("secret plans", PromptLogging::Full);
        assert_eq!(r.prompt.as_deref(), Some("secret plans"));
    }
}
