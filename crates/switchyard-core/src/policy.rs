//! The policy: turning per-model success probabilities and expected costs into one [`Decision`].
//!
//! Two knobs: a quality bar (`min_quality`: the cheapest model whose P(success) reaches it) and a
//! willingness to pay (`λ`: the model maximising λ·P − cost). Allowed and denied lists narrow the choice per
//! request. The decision ranks every eligible model, so a gateway can fall back down the list.

use serde::{Deserialize, Serialize};

/// When no model reaches the quality bar, models whose P(success) is within this of the highest count as
/// tied with it, and the cheapest of them is chosen: a difference this small is well inside any estimate's
/// error, while the price difference is real.
pub const TIE_EPSILON: f64 = 0.01;

/// The knob a policy turns, with its value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Knob {
    /// Choose the cheapest model with P(success) >= q, q in [0, 1].
    MinQuality(f64),
    /// Choose the model maximising λ·P(success) − expected cost; λ is USD per successful answer (>= 0).
    WillingnessToPay(f64),
}

impl Knob {
    /// Checks the knob's value range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match *self {
            Knob::MinQuality(q) if !(0.0..=1.0).contains(&q) => {
                Err(PolicyError::BadKnob(format!("min_quality must be in [0, 1], got {q}")))
            }
            Knob::WillingnessToPay(l) if !l.is_finite() || l < 0.0 => {
                Err(PolicyError::BadKnob(format!("willingness_to_pay must be a number >= 0 (USD), got {l}")))
            }
            _ => Ok(()),
        }
    }

    /// The knob set by a pair of optional settings (`min_quality` first when both are given; callers that
    /// must refuse both check that themselves).
    pub fn from_options(min_quality: Option<f64>, willingness_to_pay: Option<f64>) -> Option<Knob> {
        min_quality.map(Knob::MinQuality).or(willingness_to_pay.map(Knob::WillingnessToPay))
    }

    /// The knob's numeric value.
    pub fn value(&self) -> f64 {
        match *self {
            Knob::MinQuality(v) | Knob::WillingnessToPay(v) => v,
        }
    }
}

/// One model's estimate for one prompt, the policy's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEstimate {
    /// The model's catalog name.
    pub model: String,
    /// Predicted probability of a successful answer.
    pub p_success: f64,
    /// Expected cost of the call in USD.
    pub expected_cost_usd: f64,
    /// Input tokens the cost assumes.
    #[serde(default)]
    pub input_tokens: f64,
    /// Output tokens the cost assumes: predicted for this prompt when the router learned output lengths,
    /// else the model's mean in the training logs.
    #[serde(default)]
    pub output_tokens: f64,
    /// How much of `p_success` rests on the model's prior rather than on what the router learned from
    /// outcomes (0: none; see [`crate::Familiarity`]): high far from the training data, or where the logs
    /// hold little evidence of this model in the prompt's domain.
    #[serde(default)]
    pub prior_weight: f64,
    /// The model was added from published per-domain accuracies alone (`switchyard profile add --prior`): its
    /// P(success) is its prior, with no outcome of its own behind it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prior_only: bool,
}

/// The knob and the per-request model lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The knob and its value.
    pub knob: Knob,
    /// If given, only these models may be chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// These models are never chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<String>,
}

/// The policy's choice for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The chosen model.
    pub model: String,
    /// Why it was chosen, in words.
    pub reason: String,
    /// Whether the chosen model meets the quality bar (always true under willingness to pay).
    pub meets_bar: bool,
    /// Every eligible model, best first: the order a gateway falls back in.
    pub ranking: Vec<String>,
}

/// Why a policy cannot decide.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// A knob value out of range.
    #[error("{0}")]
    BadKnob(String),
    /// An allowed or denied list names a model the router does not know.
    #[error("unknown model {model:?} in the {list} list; known models: {known}")]
    UnknownModel {
        /// The name given.
        model: String,
        /// "allowed" or "denied".
        list: &'static str,
        /// The router's models, comma-separated.
        known: String,
    },
    /// The lists leave no model to choose.
    #[error("no model left to choose: the allowed/denied lists exclude all of {known}")]
    NothingEligible {
        /// The router's models, comma-separated.
        known: String,
    },
}

impl Policy {
    /// A policy with a knob and no model lists.
    pub fn new(knob: Knob) -> Self {
        Self { knob, allowed: None, denied: Vec::new() }
    }

    /// Chooses a model among `estimates`.
    pub fn decide(&self, estimates: &[ModelEstimate]) -> Result<Decision, PolicyError> {
        self.knob.validate()?;
        let known = || estimates.iter().map(|e| e.model.as_str()).collect::<Vec<_>>().join(", ");
        for (list, names) in [("allowed", self.allowed.as_deref().unwrap_or_default()), ("denied", &self.denied[..])] {
            if let Some(model) = names.iter().find(|n| !estimates.iter().any(|e| &e.model == *n)) {
                return Err(PolicyError::UnknownModel { model: model.clone(), list, known: known() });
            }
        }
        let mut eligible: Vec<&ModelEstimate> = estimates
            .iter()
            .filter(|e| self.allowed.as_ref().is_none_or(|a| a.contains(&e.model)) && !self.denied.contains(&e.model))
            .collect();
        if eligible.is_empty() {
            return Err(PolicyError::NothingEligible { known: known() });
        }
        let by_p_then_cost = |a: &&ModelEstimate, b: &&ModelEstimate| {
            b.p_success.total_cmp(&a.p_success).then(a.expected_cost_usd.total_cmp(&b.expected_cost_usd))
        };
        let (meets_bar, reason) = match self.knob {
            Knob::MinQuality(q) => {
                // Models over the bar, cheapest first; then the rest, most likely first.
                eligible.sort_by(|a, b| {
                    let (a_ok, b_ok) = (a.p_success >= q, b.p_success >= q);
                    b_ok.cmp(&a_ok).then_with(|| {
                        if a_ok {
                            a.expected_cost_usd
                                .total_cmp(&b.expected_cost_usd)
                                .then(b.p_success.total_cmp(&a.p_success))
                        } else {
                            by_p_then_cost(a, b)
                        }
                    })
                });
                let top = eligible[0];
                if top.p_success >= q {
                    (true, format!("cheapest model with P(success) >= {q} (P = {:.3})", top.p_success))
                } else {
                    (false, break_near_tie(&mut eligible, q))
                }
            }
            Knob::WillingnessToPay(l) => {
                let utility = |e: &ModelEstimate| l * e.p_success - e.expected_cost_usd;
                eligible.sort_by(|a, b| utility(b).total_cmp(&utility(a)).then_with(|| by_p_then_cost(a, b)));
                let top = eligible[0];
                (
                    true,
                    format!(
                        "highest value at ${l} per success: {l}·{:.3} − ${:.6} = {:.6}",
                        top.p_success,
                        top.expected_cost_usd,
                        utility(top)
                    ),
                )
            }
        };
        Ok(Decision {
            model: eligible[0].model.clone(),
            reason,
            meets_bar,
            ranking: eligible.iter().map(|e| e.model.clone()).collect(),
        })
    }
}

/// With no model over the bar `q` and `eligible` sorted by P (highest first): moves the cheapest model within
/// [`TIE_EPSILON`] of the highest P to the front, and says what was chosen and why.
fn break_near_tie(eligible: &mut Vec<&ModelEstimate>, q: f64) -> String {
    let best = eligible[0];
    let cheapest = (0..eligible.len())
        .filter(|&i| eligible[i].p_success >= best.p_success - TIE_EPSILON)
        .min_by(|&a, &b| eligible[a].expected_cost_usd.total_cmp(&eligible[b].expected_cost_usd).then(a.cmp(&b)))
        .unwrap_or(0);
    if cheapest == 0 {
        return format!("no model reaches P(success) >= {q}; chose the highest P ({:.3})", best.p_success);
    }
    let chosen = eligible.remove(cheapest);
    eligible.insert(0, chosen);
    format!(
        "no model reaches P(success) >= {q}; the highest P is {}'s ({:.3}), and {} is within {TIE_EPSILON} of it \
         (P = {:.3}) and cheaper (${:.6} against ${:.6}), so it was chosen",
        best.model, best.p_success, chosen.model, chosen.p_success, chosen.expected_cost_usd, best.expected_cost_usd
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimates() -> Vec<ModelEstimate> {
        [("small", 0.55, 0.0001), ("medium", 0.75, 0.001), ("large", 0.9, 0.01)]
            .into_iter()
            .map(|(m, p, c)| ModelEstimate {
                model: m.to_string(),
                p_success: p,
                expected_cost_usd: c,
                input_tokens: 100.0,
                output_tokens: 100.0,
                prior_weight: 0.0,
                prior_only: false,
            })
            .collect()
    }

    fn decide(policy: Policy) -> Decision {
        policy.decide(&estimates()).unwrap()
    }

    #[test]
    fn min_quality_picks_the_cheapest_over_the_bar() {
        assert_eq!(decide(Policy::new(Knob::MinQuality(0.5))).model, "small");
        let d = decide(Policy::new(Knob::MinQuality(0.7)));
        assert_eq!((d.model.as_str(), d.meets_bar), ("medium", true));
        assert_eq!(d.ranking, ["medium", "large", "small"]);
        let d = decide(Policy::new(Knob::MinQuality(0.95)));
        assert_eq!((d.model.as_str(), d.meets_bar), ("large", false));
        assert!(d.reason.contains("no model reaches"), "{}", d.reason);
    }

    #[test]
    fn below_the_bar_a_near_tie_goes_to_the_cheaper_model() {
        let estimate = |model: &str, p: f64, cost: f64| ModelEstimate {
            model: model.into(),
            p_success: p,
            expected_cost_usd: cost,
            input_tokens: 100.0,
            output_tokens: 100.0,
            prior_weight: 0.0,
            prior_only: false,
        };
        // "dear" has the highest P; "mid" is within ε of it and cheaper; "cheap" is cheaper still but not
        // within ε. No model reaches 0.9.
        let near = [
            estimate("cheap", 0.60 - 2.0 * TIE_EPSILON, 0.0001),
            estimate("dear", 0.60, 0.01),
            estimate("mid", 0.60 - TIE_EPSILON / 2.0, 0.002),
        ];
        let d = Policy::new(Knob::MinQuality(0.9)).decide(&near).unwrap();
        assert_eq!((d.model.as_str(), d.meets_bar), ("mid", false));
        assert_eq!(d.ranking, ["mid", "dear", "cheap"]);
        assert!(
            d.reason.contains("dear") && d.reason.contains("within 0.01") && d.reason.contains("cheaper"),
            "{}",
            d.reason
        );
        // Just outside ε: the highest P wins, and the reason says nothing of a tie.
        let apart = [estimate("dear", 0.60, 0.01), estimate("mid", 0.60 - 1.5 * TIE_EPSILON, 0.002)];
        let d = Policy::new(Knob::MinQuality(0.9)).decide(&apart).unwrap();
        assert_eq!(d.model, "dear");
        assert!(d.reason.contains("chose the highest P") && !d.reason.contains("within"), "{}", d.reason);
        // Over the bar nothing changes: the cheapest model over it.
        assert_eq!(Policy::new(Knob::MinQuality(0.5)).decide(&near).unwrap().model, "cheap");
    }

    #[test]
    fn willingness_to_pay_trades_quality_for_cost() {
        // λ = 0: only cost matters; λ large: only P matters.
        assert_eq!(decide(Policy::new(Knob::WillingnessToPay(0.0))).model, "small");
        assert_eq!(decide(Policy::new(Knob::WillingnessToPay(100.0))).model, "large");
        // λ = 0.01: small 0.0054, medium 0.0065, large -0.001.
        assert_eq!(decide(Policy::new(Knob::WillingnessToPay(0.01))).model, "medium");
    }

    #[test]
    fn allowed_and_denied_lists() {
        let mut p = Policy::new(Knob::MinQuality(0.5));
        p.denied = vec!["small".into()];
        assert_eq!(decide(p.clone()).model, "medium");
        p.allowed = Some(vec!["small".into(), "large".into()]);
        assert_eq!(decide(p.clone()).model, "large");
        p.allowed = Some(vec!["small".into()]);
        assert!(matches!(p.decide(&estimates()), Err(PolicyError::NothingEligible { .. })));
        p.allowed = Some(vec!["gpt-9".into()]);
        let err = p.decide(&estimates()).unwrap_err().to_string();
        assert!(err.contains("gpt-9") && err.contains("allowed") && err.contains("small, medium, large"), "{err}");
    }

    #[test]
    fn knobs_are_validated() {
        for knob in [
            Knob::MinQuality(1.5),
            Knob::MinQuality(-0.1),
            Knob::WillingnessToPay(-1.0),
            Knob::WillingnessToPay(f64::NAN),
        ] {
            assert!(matches!(Policy::new(knob).decide(&estimates()), Err(PolicyError::BadKnob(_))), "{knob:?}");
        }
    }
}
