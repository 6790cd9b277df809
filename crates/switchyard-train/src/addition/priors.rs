//! The new model's per-domain priors and evidence, and its output-length row (see [`super::fit_profile`]).

use switchyard_core::{sigmoid, Dense, ModelCost, Router};

use super::fit::{mean_row, ProfileFit};
use super::ProfileRequest;
use crate::TrainError;

/// Pseudo-observations pulling a domain's prior toward the model's overall rate (as training's priors are).
const PRIOR_STRENGTH: f64 = 10.0;

/// The new model's prior P(success) and evidence per familiarity column. From eval rows: per domain, the
/// logit θ_d that best explains the model's outcomes there once each prompt's difficulty (the router's shared
/// difficulty slope times its complexity above the domain's typical one) is taken into account, pulled toward
/// the model's overall rate by [`PRIOR_STRENGTH`] pseudo-observations; evidence is the rows per domain
/// (weighted by domain membership). Published priors replace the fitted ones for the domains they name
/// ("all": every domain); a prior-only model's other domains get the mean of the given figures.
pub(super) fn priors_and_evidence(
    router: &Router,
    request: &ProfileRequest<'_>,
    fit: &ProfileFit,
) -> Result<(Vec<f32>, Vec<f32>), TrainError> {
    let Some(f) = &router.familiarity else {
        return Ok((Vec::new(), Vec::new()));
    };
    if request.eval.is_none() && f.evidence.is_empty() {
        return Err(TrainError::Profile(
            "this router records no per-domain evidence, so a prior-only model's estimates could not lean on its \
             prior; add the model from eval rows, or retrain the router with this version"
                .into(),
        ));
    }
    let width = f.domains;
    let domains = &router.manifest.domains;
    let mut priors = vec![f32::NAN; width];
    let mut evidence = vec![0f32; width];
    if request.eval.is_some() {
        // Domain membership: the label when the router knows it, else the domain head's probabilities.
        let membership: Vec<Vec<f32>> = fit
            .embeddings
            .iter()
            .zip(&fit.labels)
            .map(|(e, label)| {
                if width == 1 || domains.len() != width {
                    return vec![1.0; width];
                }
                match label.as_ref().and_then(|l| domains.iter().position(|d| d == l)) {
                    Some(d) => (0..width).map(|c| f32::from(u8::from(c == d))).collect(),
                    None => router.heads.domain_probs(e),
                }
            })
            .collect();
        let shift: Vec<f32> = fit
            .embeddings
            .iter()
            .zip(&membership)
            .map(|(e, m)| {
                let complexity = f.place(e, router.heads.complexity(e)).complexity;
                f.difficulty_slope * (complexity - f.typical_complexity(m))
            })
            .collect();
        let all: Vec<f64> = vec![1.0; fit.targets.len()];
        let overall = bernoulli_logit(&fit.targets, &all, &shift, None);
        for d in 0..width {
            let weights: Vec<f64> = membership.iter().map(|m| f64::from(m[d])).collect();
            evidence[d] = weights.iter().zip(&fit.targets).map(|(w, t)| *w as f32 * t.1).sum();
            priors[d] =
                sigmoid(bernoulli_logit(&fit.targets, &weights, &shift, Some(overall)) as f32).clamp(0.02, 0.98);
        }
    }
    let given = |d: usize| -> Option<f64> {
        let name = domains.get(d).map_or("all", String::as_str);
        let exact = request.priors.iter().find(|(n, _)| n == name);
        exact.or_else(|| request.priors.iter().find(|(n, _)| n == "all")).map(|(_, p)| *p)
    };
    let mean_given = request.priors.iter().map(|(_, p)| *p).sum::<f64>() / request.priors.len().max(1) as f64;
    for (d, prior) in priors.iter_mut().enumerate() {
        if let Some(p) = given(d) {
            *prior = p as f32;
        } else if prior.is_nan() {
            *prior = mean_given as f32;
        }
    }
    Ok((priors, evidence))
}

/// The logit θ maximising Σ_i w_i·c_i·[y_i(θ + s_i) − softplus(θ + s_i)] (c_i: rows, s_i: the prompt's
/// difficulty shift), plus, with `toward`, [`PRIOR_STRENGTH`] pseudo-rows at σ(toward); by Newton's method.
fn bernoulli_logit(targets: &[(f32, f32)], weights: &[f64], shift: &[f32], toward: Option<f64>) -> f64 {
    let mut theta = toward.unwrap_or(0.0);
    for _ in 0..50 {
        let (mut grad, mut hess) = (0f64, 1e-9);
        for ((&(y, c), &w), &s) in targets.iter().zip(weights).zip(shift) {
            let p = 1.0 / (1.0 + (-(theta + f64::from(s))).exp());
            let n = w * f64::from(c);
            grad += n * (f64::from(y) - p);
            hess += n * p * (1.0 - p);
        }
        if let Some(t) = toward {
            let p = 1.0 / (1.0 + (-theta).exp());
            grad += PRIOR_STRENGTH * (1.0 / (1.0 + (-t).exp()) - p);
            hess += PRIOR_STRENGTH * p * (1.0 - p);
        }
        let step = (grad / hess).clamp(-2.0, 2.0);
        theta = (theta + step).clamp(-8.0, 8.0);
        if step.abs() < 1e-7 {
            break;
        }
    }
    theta
}

/// The new model's output-length row: the existing rows' mean, shifted so that its mean over the eval
/// prompts matches their mean ln(1 + output tokens) (or the model's mean output length without counts).
pub(super) fn length_row(layer: &Dense, fit: &ProfileFit, cost: &ModelCost) -> (Vec<f32>, f32) {
    let (weight, bias) = mean_row(layer);
    let predicted = |i: usize| switchyard_core::dot(&weight, &fit.features[i]) + bias;
    if !fit.log_tokens.is_empty() {
        let n = fit.log_tokens.len() as f32;
        let shift = fit.log_tokens.iter().map(|&(i, t)| t - predicted(i)).sum::<f32>() / n;
        return (weight, bias + shift);
    }
    let target = (cost.mean_output_tokens.max(0.0) as f32).ln_1p();
    if fit.features.is_empty() {
        return (vec![0.0; layer.inputs], target);
    }
    let n = fit.features.len() as f32;
    let shift = (0..fit.features.len()).map(|i| target - predicted(i)).sum::<f32>() / n;
    (weight, bias + shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::logit;

    #[test]
    fn a_domain_logit_accounts_for_difficulty_and_leans_on_the_overall_rate() {
        // 10 prompts, 8 successes; all with shift +1 (easier than typical): θ = logit(0.8) − 1.
        let targets = vec![(1.0, 1.0); 8].into_iter().chain(vec![(0.0, 1.0); 2]).collect::<Vec<_>>();
        let ones = vec![1.0; 10];
        let theta = bernoulli_logit(&targets, &ones, &[1.0; 10], None);
        assert!((theta - (f64::from(logit(0.8)) - 1.0)).abs() < 1e-4, "{theta}");
        // With PRIOR_STRENGTH pseudo-rows at σ(0) = 0.5 and no shift: between 0.5 and 0.8.
        let pulled = bernoulli_logit(&targets, &ones, &[0.0; 10], Some(0.0));
        let p = 1.0 / (1.0 + (-pulled).exp());
        assert!((p - 0.65).abs() < 0.01, "{p}");
        // A domain with no weight keeps the overall rate.
        assert!((bernoulli_logit(&targets, &[0.0; 10], &[0.0; 10], Some(0.3)) - 0.3).abs() < 1e-6);
    }
}
