//! Knob calibration (RouteLLM-style): find the knob value that, on a given set of prompts, sends a target
//! share of calls to a named model or spends a target amount per 1,000 requests.
//!
//! The router's predictions for the prompts are computed once; the policy is then replayed for every
//! candidate knob value. Decisions only change where the knob crosses a predicted probability (min-quality)
//! or a cost/quality break-even point (willingness to pay), so the candidates are the empirical quantiles of
//! those values; the one whose outcome is closest to the target wins (ties: the lower knob).

use switchyard_core::{Knob, ModelEstimate, Policy};

use crate::TrainError;

/// Candidate knob values examined (at most).
const CANDIDATES: usize = 2000;

/// What the calibrated knob should achieve on the calibration prompts.
#[derive(Debug, Clone, PartialEq)]
pub enum CalibrationTarget {
    /// This share (0 to 1) of the prompts routed to this model.
    ModelShare {
        /// The model's name.
        model: String,
        /// The target share of calls.
        share: f64,
    },
    /// This expected spend in USD per 1,000 requests.
    SpendPer1000(f64),
}

/// Which knob to calibrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobKind {
    /// The min-quality bar q.
    MinQuality,
    /// The willingness to pay λ.
    WillingnessToPay,
}

/// The calibrated knob and what it achieves on the calibration prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// The knob value found.
    pub knob: Knob,
    /// The achieved share of the named model, or spend per 1,000 requests.
    pub achieved: f64,
    /// The target asked for.
    pub target: f64,
    /// Prompts calibrated on.
    pub prompts: usize,
}

/// Finds the knob value closest to `target`. `estimates` holds, per prompt, every model's P and expected cost
/// (as the router predicts them); `base` supplies the allowed/denied lists kept during calibration.
pub fn calibrate(
    estimates: &[Vec<ModelEstimate>],
    kind: KnobKind,
    target: &CalibrationTarget,
    base: &Policy,
) -> Result<Calibration, TrainError> {
    if estimates.is_empty() {
        return Err(TrainError::Fit("no prompts to calibrate on".into()));
    }
    let goal = match target {
        CalibrationTarget::ModelShare { model, share } => {
            if !(0.0..=1.0).contains(share) {
                return Err(TrainError::Fit(format!("the target share must be in [0, 1], got {share}")));
            }
            if !estimates[0].iter().any(|e| &e.model == model) {
                let known: Vec<&str> = estimates[0].iter().map(|e| e.model.as_str()).collect();
                return Err(TrainError::Fit(format!(
                    "unknown model {model:?}; the router's models: {}",
                    known.join(", ")
                )));
            }
            *share
        }
        CalibrationTarget::SpendPer1000(usd) => {
            if !usd.is_finite() || *usd < 0.0 {
                return Err(TrainError::Fit(format!("the target spend must be a number >= 0, got {usd}")));
            }
            *usd
        }
    };
    let mut best: Option<(f64, f64, Knob)> = None;
    for value in candidates(estimates, kind) {
        let knob = match kind {
            KnobKind::MinQuality => Knob::MinQuality(value),
            KnobKind::WillingnessToPay => Knob::WillingnessToPay(value),
        };
        let policy = Policy { knob, ..base.clone() };
        let achieved = outcome(estimates, &policy, target)?;
        let gap = (achieved - goal).abs();
        if best.as_ref().is_none_or(|(g, _, _)| gap < *g - 1e-12) {
            best = Some((gap, achieved, knob));
        }
    }
    let (_, achieved, knob) = best.ok_or_else(|| TrainError::Fit("no candidate knob values".into()))?;
    Ok(Calibration { knob, achieved, target: goal, prompts: estimates.len() })
}

/// The share of the named model, or the spend per 1,000 requests, under `policy`.
pub fn outcome(
    estimates: &[Vec<ModelEstimate>],
    policy: &Policy,
    target: &CalibrationTarget,
) -> Result<f64, TrainError> {
    let mut hits = 0usize;
    let mut spend = 0.0;
    for prompt in estimates {
        let decision = policy.decide(prompt).map_err(|e| TrainError::Fit(e.to_string()))?;
        if let CalibrationTarget::ModelShare { model, .. } = target {
            hits += usize::from(&decision.model == model);
        }
        spend += prompt.iter().find(|e| e.model == decision.model).map_or(0.0, |e| e.expected_cost_usd);
    }
    let n = estimates.len() as f64;
    Ok(match target {
        CalibrationTarget::ModelShare { .. } => hits as f64 / n,
        CalibrationTarget::SpendPer1000(_) => spend / n * 1000.0,
    })
}

/// Knob values at which some decision can change, thinned to at most [`CANDIDATES`] quantiles.
fn candidates(estimates: &[Vec<ModelEstimate>], kind: KnobKind) -> Vec<f64> {
    let mut values: Vec<f64> = match kind {
        KnobKind::MinQuality => estimates.iter().flatten().map(|e| e.p_success).collect(),
        KnobKind::WillingnessToPay => estimates
            .iter()
            .flat_map(|prompt| {
                prompt.iter().flat_map(move |a| {
                    prompt.iter().filter_map(move |b| {
                        let (dp, dc) = (a.p_success - b.p_success, a.expected_cost_usd - b.expected_cost_usd);
                        (dp > 1e-12 && dc > 0.0).then(|| dc / dp)
                    })
                })
            })
            .collect(),
    };
    values.push(0.0);
    if kind == KnobKind::MinQuality {
        values.push(1.0);
    }
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    values.dedup();
    if values.len() > CANDIDATES {
        let step = values.len() as f64 / CANDIDATES as f64;
        let mut thinned: Vec<f64> = (0..CANDIDATES).map(|i| values[(i as f64 * step) as usize]).collect();
        thinned.extend(values.last());
        values = thinned;
    }
    // Just past each break-even point, where the decision has flipped (a quality bar stays within [0, 1]).
    let ceiling = if kind == KnobKind::MinQuality { 1.0 } else { f64::INFINITY };
    values.iter().map(|v| (v * (1.0 + 1e-9) + 1e-12).min(ceiling)).chain([0.0]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimates() -> Vec<Vec<ModelEstimate>> {
        // 100 prompts; the strong model's P rises with the prompt index, the weak model's falls.
        (0..100)
            .map(|i| {
                let x = f64::from(i) / 100.0;
                vec![
                    ModelEstimate {
                        model: "weak".into(),
                        p_success: 0.9 - 0.6 * x,
                        expected_cost_usd: 0.0001,
                        input_tokens: 100.0,
                        output_tokens: 100.0,
                        prior_weight: 0.0,
                        prior_only: false,
                    },
                    ModelEstimate {
                        model: "strong".into(),
                        p_success: 0.95,
                        expected_cost_usd: 0.01,
                        input_tokens: 100.0,
                        output_tokens: 100.0,
                        prior_weight: 0.0,
                        prior_only: false,
                    },
                ]
            })
            .collect()
    }

    #[test]
    fn hits_a_model_share() {
        let base = Policy::new(Knob::MinQuality(0.5));
        for share in [0.0, 0.25, 0.5, 0.8, 1.0] {
            let target = CalibrationTarget::ModelShare { model: "strong".into(), share };
            let c = calibrate(&estimates(), KnobKind::MinQuality, &target, &base).unwrap();
            assert!((c.achieved - share).abs() <= 0.011, "share {share}: {c:?}");
            // Replaying the knob gives the reported share.
            let replay = outcome(&estimates(), &Policy::new(c.knob), &target).unwrap();
            assert_eq!(replay, c.achieved);
        }
    }

    #[test]
    fn hits_a_spend_with_willingness_to_pay() {
        let base = Policy::new(Knob::WillingnessToPay(0.0));
        // All weak: $0.1 per 1000; all strong: $10 per 1000.
        let target = CalibrationTarget::SpendPer1000(5.0);
        let c = calibrate(&estimates(), KnobKind::WillingnessToPay, &target, &base).unwrap();
        assert!((c.achieved - 5.0).abs() < 0.2, "{c:?}");
        assert!(matches!(c.knob, Knob::WillingnessToPay(l) if l > 0.0));
    }

    #[test]
    fn bad_targets_are_refused() {
        let base = Policy::new(Knob::MinQuality(0.5));
        let unknown = CalibrationTarget::ModelShare { model: "gpt-9".into(), share: 0.5 };
        let err = calibrate(&estimates(), KnobKind::MinQuality, &unknown, &base).unwrap_err().to_string();
        assert!(err.contains("gpt-9") && err.contains("weak, strong"), "{err}");
        let bad = CalibrationTarget::ModelShare { model: "weak".into(), share: 1.5 };
        assert!(calibrate(&estimates(), KnobKind::MinQuality, &bad, &base).is_err());
        assert!(calibrate(&[], KnobKind::MinQuality, &CalibrationTarget::SpendPer1000(1.0), &base).is_err());
    }
}
