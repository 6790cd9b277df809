//! Expected cost of one call to a model: list prices times expected tokens, or the mean observed cost.

use serde::{Deserialize, Serialize};

/// Characters per token assumed when a prompt's LLM token count is not known (the usual English rule).
pub const CHARS_PER_TOKEN: f64 = 4.0;

/// A rough LLM input-token count for a prompt: characters / [`CHARS_PER_TOKEN`], at least 1.
pub fn estimate_input_tokens(prompt: &str) -> f64 {
    (prompt.chars().count() as f64 / CHARS_PER_TOKEN).ceil().max(1.0)
}

/// How a model's expected cost is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// Catalog prices × (the prompt's input tokens, the model's mean output tokens in the logs).
    Prices,
    /// The mean `cost_usd` observed in the logs, the same for every prompt.
    Observed,
}

/// What a router knows about one model's cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCost {
    /// The model's name.
    pub model: String,
    /// USD per million input tokens.
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
    /// Mean output tokens per call in the training logs (0 when the logs have none).
    pub mean_output_tokens: f64,
    /// Mean observed cost per call in USD, when the logs carry `cost_usd`.
    pub mean_cost_usd: Option<f64>,
    /// Which of the two is used.
    pub source: CostSource,
}

impl ModelCost {
    /// Expected USD cost of a call whose prompt has `input_tokens` tokens and the model's mean output length.
    pub fn expected_cost_usd(&self, input_tokens: f64) -> f64 {
        self.cost_for(input_tokens, self.mean_output_tokens)
    }

    /// Expected USD cost of a call with these input and output token counts (with observed costs: their
    /// mean, whatever the tokens).
    pub fn cost_for(&self, input_tokens: f64, output_tokens: f64) -> f64 {
        match self.source {
            CostSource::Prices => {
                (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6
            }
            CostSource::Observed => self.mean_cost_usd.unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_scale_with_the_prompt_and_observed_costs_do_not() {
        let mut cost = ModelCost {
            model: "m".into(),
            input_usd_per_mtok: 1.0,
            output_usd_per_mtok: 4.0,
            mean_output_tokens: 250.0,
            mean_cost_usd: Some(0.5),
            source: CostSource::Prices,
        };
        assert!((cost.expected_cost_usd(1000.0) - 0.002).abs() < 1e-12);
        assert!((cost.cost_for(1000.0, 500.0) - 0.003).abs() < 1e-12);
        cost.source = CostSource::Observed;
        assert_eq!(cost.expected_cost_usd(1000.0), 0.5);
        assert_eq!(estimate_input_tokens("abcdefghi"), 3.0);
        assert_eq!(estimate_input_tokens(""), 1.0);
    }
}
