//! How closely a router's decisions on one embedding of the held-out prompts follow its decisions on
//! another: the same prompts embedded at another encoder precision, say. A router trained on f32 embeddings
//! that makes the same decisions on int8 ones needs no separate training for int8.

use serde::{Deserialize, Serialize};
use switchyard_core::{ModelEstimate, Policy, Router};

use super::bootstrap::{bootstrap_intervals, counts, BootstrapOptions, Interval};
use super::curve::aiq;
use super::run::{answered_estimates, set_estimates};
use super::set::BenchSet;
use super::sweep::{knob_grid, single_points, Choices};

/// A router's decisions on the held-out prompts' `other` embeddings against those on the `reference` ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// What the other embeddings are (e.g. `int8`).
    pub label: String,
    /// Held-out prompts compared.
    pub prompts: usize,
    /// Share of prompts sent to the same model at the router's default policy.
    pub default_policy: f64,
    /// Its 95% (bootstrap) interval.
    pub default_policy_ci: Option<Interval>,
    /// Share of (knob, prompt) pairs with the same model over the whole knob sweep behind AIQ.
    pub sweep: f64,
    /// The router's AIQ on the reference embeddings.
    pub aiq_reference: f64,
    /// Its AIQ on the other embeddings.
    pub aiq_other: f64,
    /// `aiq_other − aiq_reference`.
    pub aiq_difference: f64,
    /// Its paired 95% bootstrap interval (both on the same resamples).
    pub aiq_difference_ci: Option<Interval>,
    /// The smallest cosine between a prompt's two embeddings.
    pub min_cosine: f64,
    /// Their mean cosine.
    pub mean_cosine: f64,
}

/// Compares `router`'s decisions on the set's prompts embedded as `reference` and as `other` (one embedding
/// per prompt each, in the set's order).
pub fn agreement(
    set: &BenchSet,
    router: &Router,
    reference: &[Vec<f32>],
    other: &[Vec<f32>],
    label: &str,
    bootstrap: &BootstrapOptions,
) -> Agreement {
    let n = set.prompts.len().min(reference.len()).min(other.len());
    let estimates = |e: &[Vec<f32>]| answered_estimates(set, set_estimates(set, e, router));
    let (a, b) = (estimates(reference), estimates(other));
    let default = &router.manifest.default_policy;
    let same_default: Vec<f64> =
        (0..n).map(|i| f64::from(u8::from(decision(default, &a[i]) == decision(default, &b[i])))).collect();
    let knobs = knob_grid();
    let same_sweep = knobs
        .iter()
        .map(|&knob| {
            let policy = Policy::new(knob);
            (0..n).filter(|&i| decision(&policy, &a[i]) == decision(&policy, &b[i])).count()
        })
        .sum::<usize>();
    let (choices_a, choices_b) = (Choices::of_router(set, &a), Choices::of_router(set, &b));
    let aiq_on = |choices: &Choices, w: &[f64]| {
        let c_max = single_points(set, w).iter().flatten().map(|p| p.cost).fold(0.0, f64::max);
        aiq(&choices.points(w), c_max)
    };
    let ones = vec![1.0; set.prompts.len()];
    let (aiq_reference, aiq_other) = (aiq_on(&choices_a, &ones), aiq_on(&choices_b, &ones));
    let mean = |v: &[f64], w: &[f64]| v.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() / w.iter().sum::<f64>().max(1.0);
    let ci = bootstrap_intervals(set.prompts.len(), bootstrap, |indices| {
        let w = counts(indices, set.prompts.len());
        vec![mean(&same_default, &w), aiq_on(&choices_b, &w) - aiq_on(&choices_a, &w)]
    });
    let cosines: Vec<f64> = reference.iter().zip(other).take(n).map(|(x, y)| cosine(x, y)).collect();
    Agreement {
        label: label.to_string(),
        prompts: n,
        default_policy: mean(&same_default, &ones),
        default_policy_ci: ci.first().copied().flatten(),
        sweep: same_sweep as f64 / (knobs.len() * n).max(1) as f64,
        aiq_reference,
        aiq_other,
        aiq_difference: aiq_other - aiq_reference,
        aiq_difference_ci: ci.get(1).copied().flatten(),
        min_cosine: cosines.iter().copied().reduce(f64::min).unwrap_or(0.0),
        mean_cosine: cosines.iter().sum::<f64>() / cosines.len().max(1) as f64,
    }
}

/// The model a policy picks from the estimates (`None` when it picks none).
fn decision(policy: &Policy, estimates: &[ModelEstimate]) -> Option<String> {
    policy.decide(estimates).ok().map(|d| d.model)
}

/// The cosine of two vectors (0 when either is zero).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let d = norm(a) * norm(b);
    if d > 0.0 {
        dot / d
    } else {
        0.0
    }
}
