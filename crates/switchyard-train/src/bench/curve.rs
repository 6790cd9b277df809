//! Cost–quality curve metrics, defined exactly as the field does.
//!
//! - **AIQ** (RouterBench): take a router's (cost, quality) points; build their non-decreasing concave upper
//!   hull R̃; R̃(c) = 0 left of the cheapest point and is flat right of the dearest point up to `c_max` (the
//!   highest mean cost among the single models). AIQ = (1 / c_max) ∫₀^c_max R̃(c) dc.
//! - **APGR** (RouteLLM, two models): with q(s) the quality when the share s of prompts ranked most
//!   strong-needing goes to the strong model, APGR = (∫₀¹ q(s) ds − q_weak) / (q_strong − q_weak), trapezoid
//!   rule over s ∈ {0, 0.1, …, 1}.
//! - **CPT(x)**: the share s at which q(s) first reaches q_weak + x·(q_strong − q_weak), by linear
//!   interpolation between grid points.

use serde::{Deserialize, Serialize};

/// One operating point: mean cost per prompt (USD) and mean score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Mean cost per prompt in USD.
    pub cost: f64,
    /// Mean score in [0, 1].
    pub quality: f64,
}

/// The non-decreasing concave upper hull of `points`, cheapest first: every point kept is on the hull and
/// has strictly higher quality than the cheaper ones.
pub fn upper_hull(points: &[Point]) -> Vec<Point> {
    let mut sorted: Vec<Point> =
        points.iter().copied().filter(|p| p.cost.is_finite() && p.quality.is_finite()).collect();
    // Cheapest first; at equal cost the best quality first (the others are dominated).
    sorted.sort_by(|a, b| a.cost.total_cmp(&b.cost).then(b.quality.total_cmp(&a.quality)));
    let mut hull: Vec<Point> = Vec::new();
    for p in sorted {
        if hull.last().is_some_and(|last| p.quality <= last.quality) {
            continue; // no better than something cheaper: not on a non-decreasing hull
        }
        while hull.len() >= 2 {
            let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
            // Drop b when it lies on or below the segment a → p.
            let cross = (b.cost - a.cost) * (p.quality - a.quality) - (b.quality - a.quality) * (p.cost - a.cost);
            if cross >= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }
    hull
}

/// The hull's quality at cost `c`: 0 left of the cheapest point, linear between hull points, flat right of
/// the dearest.
pub fn hull_quality(hull: &[Point], c: f64) -> f64 {
    match hull {
        [] => 0.0,
        [first, ..] if c < first.cost => 0.0,
        _ => {
            for w in hull.windows(2) {
                if c <= w[1].cost {
                    let t = if w[1].cost > w[0].cost { (c - w[0].cost) / (w[1].cost - w[0].cost) } else { 1.0 };
                    return w[0].quality + t * (w[1].quality - w[0].quality);
                }
            }
            hull[hull.len() - 1].quality
        }
    }
}

/// The lowest cost at which the hull reaches quality `q` (interpolating between hull points); `None` if
/// it never does.
pub fn cost_to_reach(hull: &[Point], q: f64) -> Option<f64> {
    let first = hull.first()?;
    if first.quality >= q {
        return Some(first.cost);
    }
    hull.windows(2).find_map(|w| {
        (w[0].quality < q && w[1].quality >= q)
            .then(|| w[0].cost + (q - w[0].quality) / (w[1].quality - w[0].quality) * (w[1].cost - w[0].cost))
    })
}

/// AIQ of `points` up to `c_max` (see the module docs). 0 when `c_max` <= 0.
pub fn aiq(points: &[Point], c_max: f64) -> f64 {
    if c_max <= 0.0 || !c_max.is_finite() {
        return 0.0;
    }
    let hull = upper_hull(points);
    let Some(first) = hull.first() else {
        return 0.0;
    };
    // Exact integral of the piecewise-linear hull, clipped to [0, c_max].
    let mut area = 0.0;
    let mut knots: Vec<f64> = hull.iter().map(|p| p.cost).filter(|&c| c < c_max).collect();
    knots.push(c_max);
    let mut prev = first.cost.min(c_max);
    for &c in &knots {
        if c > prev {
            area += (c - prev) * (hull_quality(&hull, prev) + hull_quality(&hull, c)) / 2.0;
            prev = c;
        }
    }
    area / c_max
}

/// Quality q(s) for s = 0, 0.1, …, 1 when the top share s of prompts by `preference` (higher = more in need
/// of the strong model) go to the strong model. `strong` and `weak` are each prompt's scores. Ties in
/// preference are broken by prompt order, which is stable.
pub fn share_curve(preference: &[f64], strong: &[f64], weak: &[f64]) -> Vec<f64> {
    let n = preference.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| preference[b].total_cmp(&preference[a]));
    let weak_total: f64 = weak.iter().sum();
    (0..=10)
        .map(|step| {
            let k = ((step as f64 / 10.0) * n as f64).round() as usize;
            let gain: f64 = order[..k].iter().map(|&i| strong[i] - weak[i]).sum();
            if n == 0 {
                0.0
            } else {
                (weak_total + gain) / n as f64
            }
        })
        .collect()
}

/// APGR of a share curve (see the module docs); `None` when the two models have equal quality.
pub fn apgr(curve: &[f64]) -> Option<f64> {
    let (first, last) = (*curve.first()?, *curve.last()?);
    if (last - first).abs() < 1e-12 {
        return None;
    }
    let h = 1.0 / (curve.len() - 1) as f64;
    let integral: f64 = curve.windows(2).map(|w| h * (w[0] + w[1]) / 2.0).sum();
    Some((integral - first) / (last - first))
}

/// CPT(x): the share of calls to the strong model at which quality first reaches
/// q_weak + x·(q_strong − q_weak), linearly interpolated; `None` if the two models have equal quality.
pub fn cpt(curve: &[f64], x: f64) -> Option<f64> {
    let (first, last) = (*curve.first()?, *curve.last()?);
    if (last - first).abs() < 1e-12 {
        return None;
    }
    let goal = first + x * (last - first);
    let h = 1.0 / (curve.len() - 1) as f64;
    if curve[0] >= goal {
        return Some(0.0);
    }
    for (i, w) in curve.windows(2).enumerate() {
        if w[1] >= goal {
            let t = if w[1] > w[0] { (goal - w[0]) / (w[1] - w[0]) } else { 0.0 };
            return Some(h * (i as f64 + t));
        }
    }
    Some(1.0)
}

/// One point of the router's sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// "willingness_to_pay" or "min_quality".
    pub knob_name: String,
    /// The knob's value.
    pub knob: f64,
    /// Mean realised cost per prompt (USD).
    pub cost: f64,
    /// Mean score.
    pub quality: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(cost: f64, quality: f64) -> Point {
        Point { cost, quality }
    }

    #[test]
    fn hull_of_three_points_and_aiq_by_hand() {
        // (1, 0.5), (2, 0.6), (3, 0.9): (2, 0.6) lies below the segment (1,0.5)→(3,0.9) (0.7 at c=2).
        let pts = [p(2.0, 0.6), p(1.0, 0.5), p(3.0, 0.9)];
        let hull = upper_hull(&pts);
        assert_eq!(hull, vec![p(1.0, 0.5), p(3.0, 0.9)]);
        // c_max = 4: 0 on [0,1), trapezoid (0.5+0.9)/2·2 = 1.4 on [1,3], flat 0.9 on [3,4] → (1.4 + 0.9) / 4.
        assert!((aiq(&pts, 4.0) - 2.3 / 4.0).abs() < 1e-12);
        // Hull queries.
        assert_eq!(hull_quality(&hull, 0.5), 0.0);
        assert!((hull_quality(&hull, 2.0) - 0.7).abs() < 1e-12);
        assert_eq!(hull_quality(&hull, 10.0), 0.9);
        assert_eq!(cost_to_reach(&hull, 0.4), Some(1.0));
        assert!((cost_to_reach(&hull, 0.7).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(cost_to_reach(&hull, 0.95), None);
    }

    #[test]
    fn hull_edge_cases() {
        // One point; dominated and tied points; all-zero scores.
        assert_eq!(upper_hull(&[p(1.0, 0.3)]), vec![p(1.0, 0.3)]);
        assert!((aiq(&[p(1.0, 0.3)], 2.0) - 0.15).abs() < 1e-12);
        let hull = upper_hull(&[p(1.0, 0.5), p(1.0, 0.7), p(2.0, 0.6), p(3.0, 0.7)]);
        assert_eq!(hull, vec![p(1.0, 0.7)]);
        assert_eq!(aiq(&[p(1.0, 0.0), p(2.0, 0.0)], 2.0), 0.0);
        assert_eq!(aiq(&[], 2.0), 0.0);
        assert_eq!(aiq(&[p(1.0, 0.5)], 0.0), 0.0);
        // A point dearer than c_max only counts up to c_max.
        assert!((aiq(&[p(0.0, 1.0), p(5.0, 1.0)], 1.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn two_model_metrics_for_random_and_oracle_orderings() {
        // 10 prompts: the strong model succeeds everywhere, the weak one on the first 5.
        let strong = vec![1.0; 10];
        let weak: Vec<f64> = (0..10).map(|i| if i < 5 { 1.0 } else { 0.0 }).collect();
        // Oracle ordering: prompts the weak model fails come first.
        let oracle: Vec<f64> = weak.iter().map(|w| 1.0 - w).collect();
        let curve = share_curve(&oracle, &strong, &weak);
        assert_eq!(curve[0], 0.5);
        assert_eq!(curve[5], 1.0);
        // q rises linearly to 1 at s = 0.5 then stays: ∫ = 0.5·0.75 + 0.5·1 = 0.875 → APGR = 0.375 / 0.5.
        assert!((apgr(&curve).unwrap() - 0.75).abs() < 1e-12);
        assert!((cpt(&curve, 0.5).unwrap() - 0.25).abs() < 1e-12);
        assert!((cpt(&curve, 0.8).unwrap() - 0.4).abs() < 1e-12);
        // A random router's expected curve is the straight line: APGR 0.5, CPT(x) = x.
        let line: Vec<f64> = (0..=10).map(|i| 0.5 + 0.05 * f64::from(i)).collect();
        assert!((apgr(&line).unwrap() - 0.5).abs() < 1e-12);
        assert!((cpt(&line, 0.8).unwrap() - 0.8).abs() < 1e-9);
        // Equal models: undefined.
        assert_eq!(apgr(&[0.7; 11]), None);
        assert_eq!(cpt(&[0.7; 11], 0.5), None);
    }
}
