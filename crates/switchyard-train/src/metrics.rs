//! Probability-quality metrics on (predicted P, observed score) pairs, and Platt scaling.
//!
//! Scores may be fractional (judge scores rescaled to [0, 1]); log loss and Brier use them as soft labels,
//! AUC and nothing else thresholds them at 0.5.

use switchyard_core::{logit, Platt};

/// Bins of the expected calibration error.
pub const ECE_BINS: usize = 10;

/// Mean binary cross-entropy with soft labels; P is clamped to [1e-6, 1 − 1e-6].
pub fn log_loss(pairs: &[(f32, f32)]) -> f64 {
    mean(pairs.iter().map(|&(p, s)| {
        let p = f64::from(p.clamp(1e-6, 1.0 - 1e-6));
        let s = f64::from(s);
        -(s * p.ln() + (1.0 - s) * (1.0 - p).ln())
    }))
}

/// Mean squared error between P and the score.
pub fn brier(pairs: &[(f32, f32)]) -> f64 {
    mean(pairs.iter().map(|&(p, s)| f64::from(p - s).powi(2)))
}

/// Expected calibration error: over [`ECE_BINS`] equal-width bins of P, the count-weighted mean of
/// |mean P − mean score|.
pub fn ece(pairs: &[(f32, f32)]) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    let mut bins = [(0f64, 0f64, 0usize); ECE_BINS];
    for &(p, s) in pairs {
        let b = ((p * ECE_BINS as f32) as usize).min(ECE_BINS - 1);
        bins[b].0 += f64::from(p);
        bins[b].1 += f64::from(s);
        bins[b].2 += 1;
    }
    bins.iter().filter(|b| b.2 > 0).map(|&(p, s, _)| (p - s).abs()).sum::<f64>() / pairs.len() as f64
}

/// Area under the ROC curve of P for successes (score >= 0.5) against failures; ties count half.
/// 0.5 when either class is absent.
pub fn auc(pairs: &[(f32, f32)]) -> f64 {
    let mut sorted: Vec<(f32, bool)> = pairs.iter().map(|&(p, s)| (p, s >= 0.5)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|x| x.1).count() as f64;
    let negatives = sorted.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    // Mann–Whitney U with mid-ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let mid_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += mid_rank * sorted[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Fits Platt scaling P' = σ(a·logit(P) + b) by damped Newton steps on the soft log loss, with a weak pull
/// towards the identity (a = 1, b = 0). Fewer than 20 pairs: the identity.
pub fn fit_platt(pairs: &[(f32, f32)]) -> Platt {
    let weighted: Vec<(f32, f32, f32)> = pairs.iter().map(|&(p, s)| (p, s, 1.0)).collect();
    fit_platt_weighted(&weighted)
}

/// [`fit_platt`] on (predicted, target, weight) triples: each pair counts by its weight (observation counts,
/// inverse propensities), normalised to their number.
pub fn fit_platt_weighted(pairs: &[(f32, f32, f32)]) -> Platt {
    if pairs.len() < 20 {
        return Platt::default();
    }
    let total: f64 = pairs.iter().map(|p| f64::from(p.2.max(0.0))).sum::<f64>().max(1e-12);
    let scale = pairs.len() as f64 / total;
    let data: Vec<(f64, f64, f64)> =
        pairs.iter().map(|&(p, s, w)| (f64::from(logit(p)), f64::from(s), f64::from(w.max(0.0)) * scale)).collect();
    let reg = 1e-2 * data.len() as f64;
    let loss = |a: f64, b: f64| -> f64 {
        let fit: f64 = data
            .iter()
            .map(|&(z, s, w)| {
                let u = a * z + b;
                // log(1 + e^u) − s·u, stable.
                w * (u.max(0.0) + (-u.abs()).exp().ln_1p() - s * u)
            })
            .sum();
        fit + 0.5 * reg * ((a - 1.0).powi(2) + b * b)
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (reg * (a - 1.0), reg * b, reg, 0.0, reg);
        for &(z, s, weight) in &data {
            let q = 1.0 / (1.0 + (-(a * z + b)).exp());
            let w = weight * q * (1.0 - q);
            ga += weight * (q - s) * z;
            gb += weight * (q - s);
            haa += w * z * z;
            hab += w * z;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        // Backtrack until the loss goes down.
        let mut t = 1.0;
        while t > 1e-6 && loss(a - t * da, b - t * db) > current {
            t /= 2.0;
        }
        if t <= 1e-6 {
            break;
        }
        (a, b) = (a - t * da, b - t * db);
        let next = loss(a, b);
        let done = current - next < 1e-10 * current.abs().max(1.0);
        current = next;
        if done {
            break;
        }
    }
    if a.is_finite() && b.is_finite() {
        Platt { a: a as f32, b: b as f32 }
    } else {
        Platt::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        let pairs = [(0.9, 1.0), (0.2, 0.0), (0.6, 0.0), (0.7, 1.0)];
        // AUC: positives {0.9, 0.7} vs negatives {0.2, 0.6}: all 4 pairs ordered correctly.
        assert_eq!(auc(&pairs), 1.0);
        assert_eq!(auc(&[(0.5, 1.0), (0.5, 0.0)]), 0.5);
        assert_eq!(auc(&[(0.1, 1.0), (0.9, 0.0)]), 0.0);
        let expected_brier = (0.01 + 0.04 + 0.36 + 0.09) / 4.0;
        assert!((brier(&pairs) - expected_brier).abs() < 1e-6);
        let expected_ll = -((0.9f64).ln() + (0.8f64).ln() + (0.4f64).ln() + (0.7f64).ln()) / 4.0;
        assert!((log_loss(&pairs) - expected_ll).abs() < 1e-6);
        // ECE: bins 9 (0.9 vs 1), 2 (0.2 vs 0), 6 (0.6 vs 0), 7 (0.7 vs 1) → (0.1 + 0.2 + 0.6 + 0.3) / 4.
        assert!((ece(&pairs) - 0.3).abs() < 1e-6);
    }

    #[test]
    fn platt_fixes_an_overconfident_predictor() {
        // True rate 0.7 whenever the predictor says 0.95.
        let pairs: Vec<(f32, f32)> = (0..100).map(|i| (0.95, if i % 10 < 7 { 1.0 } else { 0.0 })).collect();
        let platt = fit_platt(&pairs);
        let calibrated: Vec<(f32, f32)> = pairs.iter().map(|&(p, s)| (platt.apply(p), s)).collect();
        assert!(ece(&calibrated) < 0.02, "{platt:?} → {}", ece(&calibrated));
        assert!(ece(&pairs) > 0.2);
    }
}
