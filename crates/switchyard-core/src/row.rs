//! One line of a labelled log: a prompt and the evidence about how models did on it.
//!
//! Two forms, per the labelled-log contract: outcome rows (one model, a score in [0, 1]) and pairwise
//! preference rows (two models, a winner). Parsing checks every rule of the contract and says which one broke.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A split fixed by the data's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Rows to learn from.
    Train,
    /// Held-out rows `bench` evaluates on.
    Test,
}

/// One model's observed result on the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The model that answered.
    pub model: String,
    /// 1 = fully successful, 0 = failure.
    pub score: f64,
    /// The observed cost of this call, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Input tokens of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Observed latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// For logged-bandit rows (a router's own decisions, exported with their feedback): the probability that
    /// the router chose this model, in (0, 1]. Training weights such rows by its inverse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
}

/// Who won an arena-style comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Winner {
    /// `model_a` won.
    A,
    /// `model_b` won.
    B,
    /// A tie (including "tie (bothbad)").
    Tie,
}

/// An arena-style comparison of two models on the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preference {
    /// The first model.
    pub model_a: String,
    /// The second model.
    pub model_b: String,
    /// Which one won.
    pub winner: Winner,
}

/// What a row says about the models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Evidence {
    /// One model's score.
    Outcome(Outcome),
    /// A pairwise preference.
    Pairwise(Preference),
}

/// One validated labelled-log row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledRow {
    /// The text the router reads: `prompt`, or the last user turn of `messages`.
    pub prompt: String,
    /// Groups observations of the same prompt.
    pub id: Option<String>,
    /// A domain or task label.
    pub domain: Option<String>,
    /// The data set or grader the row comes from (training fits one offset per source, which absorbs
    /// different grading of the same prompts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The owner's split, if any.
    pub split: Option<Split>,
    /// The outcome or preference.
    pub evidence: Evidence,
}

impl LabelledRow {
    /// The models this row mentions.
    pub fn models(&self) -> Vec<&str> {
        match &self.evidence {
            Evidence::Outcome(o) => vec![o.model.as_str()],
            Evidence::Pairwise(p) => vec![p.model_a.as_str(), p.model_b.as_str()],
        }
    }

    /// A key grouping rows of the same prompt: the `id` when given, else the prompt text.
    pub fn group_key(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.prompt)
    }

    /// The prompt's normalised text ([`normalize_prompt`]): what splits and leakage checks compare.
    pub fn normalized_prompt(&self) -> String {
        normalize_prompt(&self.prompt)
    }

    /// Parses and validates one JSON line. The error is a sentence saying which rule the row breaks.
    pub fn parse(line: &str) -> Result<Self, String> {
        let raw: RawRow = serde_json::from_str(line).map_err(|e| format!("not a valid row: {e}"))?;
        raw.validate()
    }
}

#[derive(Deserialize)]
struct RawRow {
    prompt: Option<String>,
    messages: Option<Vec<RawMessage>>,
    model: Option<String>,
    score: Option<f64>,
    id: Option<Value>,
    cost_usd: Option<f64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    latency_ms: Option<f64>,
    domain: Option<String>,
    source: Option<String>,
    split: Option<String>,
    model_a: Option<String>,
    model_b: Option<String>,
    winner: Option<String>,
    propensity: Option<f64>,
    explored: Option<bool>,
}

#[derive(Deserialize)]
struct RawMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

impl RawRow {
    fn validate(mut self) -> Result<LabelledRow, String> {
        let prompt = match (self.prompt.take(), &self.messages) {
            (Some(prompt), _) => prompt,
            (None, Some(messages)) => {
                last_user_text(messages).ok_or("\"messages\" has no user message with text content")?
            }
            (None, None) => return Err("missing \"prompt\" (or \"messages\")".to_string()),
        };
        if prompt.trim().is_empty() {
            return Err("the prompt is empty".to_string());
        }
        let id = match self.id.take() {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => return Err(format!("\"id\" must be a string, got {other}")),
        };
        let split = match self.split.as_deref() {
            None => None,
            Some("train") => Some(Split::Train),
            Some("test") => Some(Split::Test),
            Some(other) => return Err(format!("\"split\" must be \"train\" or \"test\", got {other:?}")),
        };
        let pairwise = self.model_a.is_some() || self.model_b.is_some() || self.winner.is_some();
        let evidence = if pairwise { self.preference()? } else { self.outcome()? };
        Ok(LabelledRow {
            prompt,
            id,
            domain: self.domain.filter(|d| !d.is_empty()),
            source: self.source.filter(|s| !s.is_empty()),
            split,
            evidence,
        })
    }

    /// A pairwise row's evidence, a preference between two models, taken out of the row.
    fn preference(&mut self) -> Result<Evidence, String> {
        let need = |v: Option<String>, key: &str| {
            v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                format!("pairwise row needs \"model_a\", \"model_b\" and \"winner\"; \"{key}\" is missing")
            })
        };
        let model_a = need(self.model_a.take(), "model_a")?;
        let model_b = need(self.model_b.take(), "model_b")?;
        let winner = match need(self.winner.take(), "winner")?.as_str() {
            "model_a" => Winner::A,
            "model_b" => Winner::B,
            "tie" | "tie (bothbad)" => Winner::Tie,
            other => {
                return Err(format!(
                    "\"winner\" must be \"model_a\", \"model_b\", \"tie\" or \"tie (bothbad)\", got {other:?}"
                ))
            }
        };
        if model_a == model_b {
            return Err(format!("\"model_a\" and \"model_b\" are the same model ({model_a:?})"));
        }
        Ok(Evidence::Pairwise(Preference { model_a, model_b, winner }))
    }

    /// A single model's outcome, taken out of the row.
    fn outcome(&mut self) -> Result<Evidence, String> {
        let model = self.model.take().filter(|m| !m.trim().is_empty()).ok_or("missing \"model\"")?;
        let score = self.score.ok_or("missing \"score\" (a number in [0, 1])")?;
        if !(0.0..=1.0).contains(&score) {
            return Err(format!("\"score\" must be in [0, 1], got {score}; rescale judge scores into [0, 1]"));
        }
        non_negative("cost_usd", self.cost_usd)?;
        non_negative("latency_ms", self.latency_ms)?;
        match self.propensity {
            Some(p) if !(p > 0.0 && p <= 1.0) => {
                return Err(format!(
                    "\"propensity\" must be in (0, 1] (the probability the router chose this model), got {p}"
                ))
            }
            None if self.explored == Some(true) => {
                return Err("an explored row (\"explored\": true) needs its \"propensity\", the probability the \
                            router chose this model, or its outcome would bias training; export it again with \
                            `switchyard logs export`, or drop the row"
                    .to_string())
            }
            _ => {}
        }
        Ok(Evidence::Outcome(Outcome {
            model,
            score,
            cost_usd: self.cost_usd,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            latency_ms: self.latency_ms,
            propensity: self.propensity,
        }))
    }
}

fn non_negative(key: &str, value: Option<f64>) -> Result<(), String> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(format!("\"{key}\" must be a number >= 0, got {v}")),
        _ => Ok(()),
    }
}

/// A prompt's text as splits and leakage checks compare it: runs of whitespace collapsed to one space, ends
/// trimmed, and lower-cased. Two prompts that differ only in spacing or case are the same prompt, so they
/// must never sit on both sides of a train/test split. (`scripts/import_data.py` applies the same rule:
/// `" ".join(text.split()).lower()`.) For chat rows, the text is the last user turn.
pub fn normalize_prompt(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The text of the last user message: a string content, or the text parts of an array content.
fn last_user_text(messages: &[RawMessage]) -> Option<String> {
    routed_turn(messages.iter().map(|m| (m.role.as_str(), &m.content)))
}

/// The turn a router reads in a chat, given its messages as (role, content): the last user message whose text
/// ([`message_text`]) is not blank. Training and serving both route on this turn, so a conversation whose last
/// user message is empty (an image alone, say) routes on the user's last words. `None` when no user message
/// has text.
pub fn routed_turn<'a>(messages: impl DoubleEndedIterator<Item = (&'a str, &'a Value)>) -> Option<String> {
    messages.rev().filter(|(role, _)| *role == "user").find_map(|(_, content)| {
        let text = message_text(content);
        (!text.trim().is_empty()).then_some(text)
    })
}

/// The text of an OpenAI chat message's `content`: the string itself, or the `text` of its parts joined by
/// newlines (images and other parts are skipped); empty for anything else.
pub fn message_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_row_with_every_field() {
        let row = LabelledRow::parse(
            r#"{"prompt": "2+2?", "model": "m", "score": 1, "id": 7, "cost_usd": 0.001, "input_tokens": 5,
                "output_tokens": 3, "latency_ms": 120.5, "domain": "math", "split": "test", "extra": true}"#,
        )
        .unwrap();
        assert_eq!(row.prompt, "2+2?");
        assert_eq!(row.id.as_deref(), Some("7"));
        assert_eq!(row.split, Some(Split::Test));
        assert_eq!(row.domain.as_deref(), Some("math"));
        let Evidence::Outcome(o) = row.evidence else { panic!("not an outcome") };
        assert_eq!((o.model.as_str(), o.score, o.output_tokens), ("m", 1.0, Some(3)));
    }

    #[test]
    fn the_routed_turn_is_the_last_user_message_with_text() {
        let (system, first, empty, image) = (
            serde_json::json!("be brief"),
            serde_json::json!("first question"),
            serde_json::json!("  "),
            serde_json::json!([{"type": "image_url", "image_url": {"url": "data:,"}}]),
        );
        let chat = [("system", &system), ("user", &first), ("assistant", &system), ("user", &empty), ("user", &image)];
        assert_eq!(routed_turn(chat.iter().copied()).as_deref(), Some("first question"));
        assert_eq!(routed_turn([("system", &system), ("user", &empty)].into_iter()), None);
    }

    #[test]
    fn messages_give_the_last_user_turn() {
        let row = LabelledRow::parse(
            r#"{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]}],
                "model": "m", "score": 0.5}"#,
        )
        .unwrap();
        assert_eq!(row.prompt, "second");
    }

    #[test]
    fn normalised_text_ignores_spacing_and_case() {
        assert_eq!(normalize_prompt("  What is\n\tthe  Capital of ITALY? "), "what is the capital of italy?");
        assert_ne!(normalize_prompt("a b"), normalize_prompt("ab"));
    }

    #[test]
    fn pairwise_rows_and_ties() {
        let row = LabelledRow::parse(r#"{"prompt": "p", "model_a": "x", "model_b": "y", "winner": "tie (bothbad)"}"#)
            .unwrap();
        assert_eq!(
            row.evidence,
            Evidence::Pairwise(Preference { model_a: "x".into(), model_b: "y".into(), winner: Winner::Tie })
        );
        assert_eq!(row.models(), ["x", "y"]);
    }

    #[test]
    fn each_broken_rule_is_named() {
        let cases = [
            (r#"{"model": "m", "score": 1}"#, "missing \"prompt\""),
            (r#"{"prompt": "  ", "model": "m", "score": 1}"#, "prompt is empty"),
            (r#"{"prompt": "p", "score": 1}"#, "missing \"model\""),
            (r#"{"prompt": "p", "model": "m"}"#, "missing \"score\""),
            (r#"{"prompt": "p", "model": "m", "score": 1.5}"#, "must be in [0, 1], got 1.5"),
            (r#"{"prompt": "p", "model": "m", "score": "high"}"#, "invalid type"),
            (r#"{"prompt": "p", "model": "m", "score": 1, "cost_usd": -0.1}"#, "\"cost_usd\" must be a number >= 0"),
            (r#"{"prompt": "p", "model": "m", "score": 1, "split": "dev"}"#, "\"split\" must be"),
            (r#"{"prompt": "p", "model": "m", "score": 1, "propensity": 0}"#, "\"propensity\" must be in (0, 1]"),
            (r#"{"prompt": "p", "model": "m", "score": 1, "explored": true}"#, "needs its \"propensity\""),
            (r#"{"prompt": "p", "model_a": "x", "winner": "model_a"}"#, "\"model_b\" is missing"),
            (r#"{"prompt": "p", "model_a": "x", "model_b": "y", "winner": "x"}"#, "\"winner\" must be"),
            (r#"{"prompt": "p", "model_a": "x", "model_b": "x", "winner": "tie"}"#, "same model"),
            (r#"{"messages": [{"role": "assistant", "content": "hi"}], "model": "m", "score": 1}"#, "no user message"),
            (r#"{"prompt": "p", "model": "m", "score": 1"#, "not a valid row"),
            (r#"[1, 2]"#, "not a valid row"),
        ];
        for (line, needle) in cases {
            let err = LabelledRow::parse(line).unwrap_err();
            assert!(err.contains(needle), "{line} gave {err}");
        }
    }
}
