//! The last steps of training: Platt scaling of the chosen predictor's probabilities, per model or (for the
//! IRT predictor, whose models share one scale) one map for all; and, for the IRT predictor, priors read off
//! the predictor itself so that estimates far from the data stay on that scale.

use ndarray::Array2;
use switchyard_core::{sigmoid, Familiarity, ItemResponse, Platt};

use crate::metrics::{ece, fit_platt_weighted};
use crate::targets::Targets;

/// Per-model Platt scaling fitted on the chosen candidate's out-of-fold predictions, and the ECE of
/// calibrated predictions measured honestly by two-fold cross-fitting (fit on one half of the prompts,
/// measure on the other).
/// When scaling does not lower that ECE below the raw ECE, the identity is kept (and the raw ECE reported).
pub(crate) fn calibrate(targets: &Targets, predicted: &Array2<f32>, pooled: bool) -> (Vec<Platt>, f64) {
    let raw = ece(&targets.pairs(predicted));
    let (platt, cross) = if pooled { pooled_platt(targets, predicted) } else { platt_scaling(targets, predicted) };
    if cross < raw {
        (platt, cross)
    } else {
        (vec![Platt::default(); targets.value.ncols()], raw)
    }
}

fn platt_scaling(targets: &Targets, predicted: &Array2<f32>) -> (Vec<Platt>, f64) {
    let models = targets.value.ncols();
    // Each pair counts by its observation weight (rows, or inverse propensities of logged-bandit rows).
    let calibration = (0..models).map(|m| fit_platt_weighted(&targets.model_weighted_pairs(predicted, m))).collect();
    let mut cross = Vec::new();
    for m in 0..models {
        let pairs = targets.model_weighted_pairs(predicted, m);
        let (even, odd): (Vec<_>, Vec<_>) = pairs.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let even: Vec<(f32, f32, f32)> = even.into_iter().map(|(_, p)| *p).collect();
        let odd: Vec<(f32, f32, f32)> = odd.into_iter().map(|(_, p)| *p).collect();
        for (fit_on, apply_to) in [(&even, &odd), (&odd, &even)] {
            let platt = fit_platt_weighted(fit_on);
            cross.extend(apply_to.iter().map(|&(p, s, _)| (platt.apply(p), s)));
        }
    }
    (calibration, ece(&cross))
}

/// One Platt scaling fitted on every model's out-of-fold pairs at once (the same map for every model), and its
/// ECE by two-fold cross-fitting.
fn pooled_platt(targets: &Targets, predicted: &Array2<f32>) -> (Vec<Platt>, f64) {
    let models = targets.value.ncols();
    let pairs: Vec<(f32, f32, f32)> = (0..models).flat_map(|m| targets.model_weighted_pairs(predicted, m)).collect();
    let (even, odd): (Vec<_>, Vec<_>) = pairs.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let even: Vec<(f32, f32, f32)> = even.into_iter().map(|(_, p)| *p).collect();
    let odd: Vec<(f32, f32, f32)> = odd.into_iter().map(|(_, p)| *p).collect();
    let mut cross = Vec::with_capacity(pairs.len());
    for (fit_on, apply_to) in [(&even, &odd), (&odd, &even)] {
        let platt = fit_platt_weighted(fit_on);
        cross.extend(apply_to.iter().map(|&(p, s, _)| (platt.apply(p), s)));
    }
    (vec![fit_platt_weighted(&pairs); models], ece(&cross))
}

/// Makes the familiarity of an IRT router agree with its predictor: each model's prior in a domain is the
/// predictor's mean P (after the shared Platt scaling `platt`) over the training prompts of that domain (by
/// `membership`), so that far from the data the estimates fall back on the same scale; and no per-model
/// length slopes (they could reorder the models). The evidence counts stay, for `profile list` and for models
/// added later; a trained model's P does not lean on its prior by them (see `switchyard_core::Router`).
pub(crate) fn coherent_priors(
    familiarity: &mut Familiarity,
    irt: &ItemResponse,
    platt: Platt,
    features: &Array2<f32>,
    membership: &Array2<f32>,
) {
    let domains = familiarity.domains.max(1);
    let models = irt.models.outputs;
    let mut sum = vec![0f64; models * domains];
    let mut weight = vec![0f64; domains];
    for (r, row) in features.rows().into_iter().enumerate() {
        let p: Vec<f32> = irt.logits(&row.to_vec()).into_iter().map(|z| platt.apply(sigmoid(z))).collect();
        for d in 0..domains {
            let w = if membership.ncols() == domains { f64::from(membership[[r, d]]) } else { 1.0 };
            weight[d] += w;
            for m in 0..models {
                sum[m * domains + d] += w * f64::from(p[m]);
            }
        }
    }
    for m in 0..models {
        for d in 0..domains {
            if weight[d] > 0.0 {
                familiarity.priors[m * domains + d] = ((sum[m * domains + d] / weight[d]) as f32).clamp(0.02, 0.98);
            }
        }
    }
    familiarity.length_slopes = vec![0.0; models];
}
