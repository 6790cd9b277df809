//! Where each model fails (`switchyard logs failures`): logged requests grouped by the router's domain and
//! complexity band, and by clusters over their embeddings; for each (model, group), the model's observed
//! success (the feedback) against what the router predicted for it, furthest below first, with an interval,
//! the quality signals (cut and empty answers) and example request ids.
//!
//! This module owns the grouping and the arithmetic. It never opens the decision log or runs the encoder:
//! the caller hands it each request's outcome and embedding.

use std::collections::BTreeMap;

use ndarray::Array2;
use serde::Serialize;
use switchyard_core::Router;

use crate::TrainError;

/// The upper edges of the low and middle complexity bands.
const BAND_EDGES: [f64; 2] = [1.0 / 3.0, 2.0 / 3.0];
/// Request ids listed per group.
const EXAMPLES: usize = 3;
/// Characters of a cluster's central prompt shown as its label.
const LABEL_CHARS: usize = 80;

/// One logged request, as the report reads it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoggedOutcome {
    /// The request id.
    pub request_id: String,
    /// The model that answered.
    pub model: String,
    /// The prompt the router read.
    pub prompt: String,
    /// Its feedback score in [0, 1], if any.
    pub score: Option<f64>,
    /// The router's P(success) for the model at decision time, when the log has it (a routed request).
    pub predicted: Option<f64>,
    /// Input tokens (for a prediction made now).
    pub input_tokens: f64,
    /// Whether the answer was cut at the token limit (`finish_reason` "length").
    pub cut: bool,
    /// Whether the answer was empty (known only when the log keeps answers).
    pub empty: bool,
    /// Whether the answer starts like a refusal (known only when the log keeps answers).
    pub refused: bool,
}

/// A band of the router's complexity score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// Below 1/3.
    Low,
    /// From 1/3 to 2/3.
    Mid,
    /// From 2/3.
    High,
}

impl Band {
    /// The band of a complexity score.
    pub fn of(complexity: f64) -> Self {
        if complexity < BAND_EDGES[0] {
            Self::Low
        } else if complexity < BAND_EDGES[1] {
            Self::Mid
        } else {
            Self::High
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Mid => "mid",
            Self::High => "high",
        }
    }
}

/// What a group gathers: a domain (in one complexity band, or all), or a cluster of the embeddings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum GroupKey {
    /// The router's most likely domain, and a complexity band (`None`: every band).
    Domain {
        /// The domain's name.
        domain: String,
        /// The band, or every band.
        band: Option<Band>,
    },
    /// A cluster of the analysed prompts' embeddings (spherical k-means).
    Cluster {
        /// The cluster's number.
        cluster: usize,
        /// The prompt nearest its centre, cut to a line.
        label: String,
    },
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Domain { domain, band: None } => write!(f, "{domain}"),
            Self::Domain { domain, band: Some(band) } => write!(f, "{domain}, {} complexity", band.name()),
            Self::Cluster { cluster, label } => write!(f, "cluster {cluster}: {label:?}"),
        }
    }
}

/// A 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// One model in one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureGroup {
    /// The model that answered.
    pub model: String,
    /// The group.
    #[serde(flatten)]
    pub key: GroupKey,
    /// Its requests answered by the model.
    pub requests: usize,
    /// Of them, those with feedback.
    pub scored: usize,
    /// Mean feedback.
    pub observed: f64,
    /// Mean predicted P(success) on the scored requests.
    pub predicted: f64,
    /// observed − predicted: negative where the model does worse than the router expects.
    pub gap: f64,
    /// The gap's 95% interval (normal, over the per-request differences).
    pub gap_ci: Interval,
    /// Share of the requests whose answer was cut at the token limit.
    pub cut_rate: f64,
    /// Share of the requests whose answer was empty.
    pub empty_rate: f64,
    /// Share of the requests whose answer starts like a refusal.
    pub refusal_rate: f64,
    /// Request ids of its worst-scored requests (lowest feedback, latest first).
    pub examples: Vec<String>,
}

/// Options of [`failure_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct FailureOptions {
    /// Only groups with at least this many scored requests.
    pub min_requests: usize,
    /// Clusters of the embeddings (`None`: √(requests / 2), between 2 and 16).
    pub clusters: Option<usize>,
    /// Only this model's groups.
    pub model: Option<String>,
    /// Seed of k-means.
    pub seed: u64,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureReport {
    /// Requests analysed.
    pub requests: usize,
    /// Of them, with feedback.
    pub scored: usize,
    /// Scored requests whose prediction was made now, from the router, because the log has none for the
    /// model (a request that named its model).
    pub predicted_now: usize,
    /// Requests left out: answered by a model the router does not know, with no logged prediction.
    pub unknown_model: usize,
    /// Clusters of the embeddings.
    pub clusters: usize,
    /// The `min_requests` the groups were filtered by.
    pub min_requests: usize,
    /// Groups by domain (all bands, then each band), furthest below the prediction first.
    pub by_domain: Vec<FailureGroup>,
    /// Groups by cluster, furthest below first.
    pub by_cluster: Vec<FailureGroup>,
}

/// Running sums of one (model, group).
#[derive(Default)]
struct Tally {
    requests: usize,
    cut: usize,
    empty: usize,
    refused: usize,
    /// (score, predicted, index) of the scored requests.
    scored: Vec<(f64, f64, usize)>,
}

/// Groups `outcomes` (with `embeddings`, one unit-length row each, in order) and measures each (model, group).
pub fn failure_report(
    router: &Router,
    outcomes: &[LoggedOutcome],
    embeddings: &Array2<f32>,
    options: &FailureOptions,
) -> Result<FailureReport, TrainError> {
    if embeddings.nrows() != outcomes.len() {
        return Err(TrainError::Fit(format!("{} embeddings for {} requests", embeddings.nrows(), outcomes.len())));
    }
    let rows: Vec<Vec<f32>> = embeddings.rows().into_iter().map(|r| r.to_vec()).collect();
    let k = options.clusters.unwrap_or_else(|| ((outcomes.len() as f64 / 2.0).sqrt() as usize).clamp(2, 16));
    let k = k.clamp(1, outcomes.len().max(1));
    let (assign, labels) = clusters(embeddings, outcomes, k, options.seed)?;
    let mut tallies: BTreeMap<(String, GroupKey), Tally> = BTreeMap::new();
    let mut report = FailureReport {
        requests: 0,
        scored: 0,
        predicted_now: 0,
        unknown_model: 0,
        clusters: labels.len(),
        min_requests: options.min_requests,
        by_domain: Vec::new(),
        by_cluster: Vec::new(),
    };
    for (i, (outcome, x)) in outcomes.iter().zip(&rows).enumerate() {
        if options.model.as_ref().is_some_and(|m| *m != outcome.model) {
            continue;
        }
        let prediction = router.predict(x, outcome.input_tokens);
        let now = prediction.models.iter().find(|m| m.model == outcome.model).map(|m| m.p_success);
        let Some(predicted) = outcome.predicted.or(now) else {
            report.unknown_model += 1;
            continue;
        };
        report.requests += 1;
        if outcome.score.is_some() {
            report.scored += 1;
            report.predicted_now += usize::from(outcome.predicted.is_none());
        }
        let domain = prediction.domains.first().map_or_else(|| "all".to_string(), |d| d.domain.clone());
        let band = Band::of(prediction.complexity);
        let cluster = assign.get(i).copied().unwrap_or(0);
        let keys = [
            GroupKey::Domain { domain: domain.clone(), band: None },
            GroupKey::Domain { domain, band: Some(band) },
            GroupKey::Cluster { cluster, label: labels.get(cluster).cloned().unwrap_or_default() },
        ];
        for key in keys {
            let tally = tallies.entry((outcome.model.clone(), key)).or_default();
            tally.requests += 1;
            tally.cut += usize::from(outcome.cut);
            tally.empty += usize::from(outcome.empty);
            tally.refused += usize::from(outcome.refused);
            if let Some(score) = outcome.score {
                tally.scored.push((score.clamp(0.0, 1.0), predicted, i));
            }
        }
    }
    for ((model, key), tally) in tallies {
        if tally.scored.len() < options.min_requests.max(1) {
            continue;
        }
        let group = measure(model, key, &tally, outcomes);
        match group.key {
            GroupKey::Domain { .. } => report.by_domain.push(group),
            GroupKey::Cluster { .. } => report.by_cluster.push(group),
        }
    }
    for groups in [&mut report.by_domain, &mut report.by_cluster] {
        groups.sort_by(|a, b| a.gap.total_cmp(&b.gap).then_with(|| b.scored.cmp(&a.scored)));
    }
    Ok(report)
}

/// One (model, group)'s figures from its tally.
fn measure(model: String, key: GroupKey, tally: &Tally, outcomes: &[LoggedOutcome]) -> FailureGroup {
    let n = tally.scored.len() as f64;
    let observed = tally.scored.iter().map(|s| s.0).sum::<f64>() / n;
    let predicted = tally.scored.iter().map(|s| s.1).sum::<f64>() / n;
    let gap = observed - predicted;
    let variance =
        if n > 1.0 { tally.scored.iter().map(|s| (s.0 - s.1 - gap).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.25 };
    let half = 1.96 * (variance / n).sqrt();
    let mut worst: Vec<(f64, usize)> = tally.scored.iter().map(|s| (s.0, s.2)).collect();
    worst.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let requests = tally.requests.max(1) as f64;
    FailureGroup {
        model,
        key,
        requests: tally.requests,
        scored: tally.scored.len(),
        observed,
        predicted,
        gap,
        gap_ci: Interval { lo: gap - half, hi: gap + half },
        cut_rate: tally.cut as f64 / requests,
        empty_rate: tally.empty as f64 / requests,
        refusal_rate: tally.refused as f64 / requests,
        examples: worst.iter().take(EXAMPLES).map(|&(_, i)| outcomes[i].request_id.clone()).collect(),
    }
}

/// Each request's cluster (spherical k-means, `k` centres), and each cluster's label: the prompt nearest its
/// centre, on one line and cut to [`LABEL_CHARS`] characters.
fn clusters(
    embeddings: &Array2<f32>,
    outcomes: &[LoggedOutcome],
    k: usize,
    seed: u64,
) -> Result<(Vec<usize>, Vec<String>), TrainError> {
    if outcomes.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let centres = crate::familiarity::centroids(embeddings, k, seed)?;
    let mut assign = Vec::with_capacity(outcomes.len());
    let mut nearest: Vec<Option<(f32, usize)>> = vec![None; centres.nrows()];
    for (i, row) in embeddings.rows().into_iter().enumerate() {
        let (c, sim) = centres
            .rows()
            .into_iter()
            .map(|c| c.dot(&row))
            .enumerate()
            .fold((0, f32::MIN), |best, (c, s)| if s > best.1 { (c, s) } else { best });
        assign.push(c);
        if nearest[c].is_none_or(|(best, _)| sim > best) {
            nearest[c] = Some((sim, i));
        }
    }
    let labels = nearest.iter().map(|n| n.map_or_else(String::new, |(_, i)| label(&outcomes[i].prompt))).collect();
    Ok((assign, labels))
}

/// A prompt on one line, cut to [`LABEL_CHARS`] characters.
fn label(prompt: &str) -> String {
    let line: String = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= LABEL_CHARS {
        return line;
    }
    let cut: String = line.chars().take(LABEL_CHARS - 1).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_split_complexity_in_thirds() {
        assert_eq!(
            [0.0, 0.3, 0.34, 0.66, 0.7, 1.0].map(Band::of),
            [Band::Low, Band::Low, Band::Mid, Band::Mid, Band::High, Band::High]
        );
    }

    #[test]
    fn a_label_is_one_line_and_cut() {
        assert_eq!(label("two\n  lines"), "two lines");
        let long = "word ".repeat(40);
        let cut = label(&long);
        assert_eq!(cut.chars().count(), LABEL_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_group_measures_its_gap_with_an_interval_and_lists_its_worst_requests() {
        let outcomes: Vec<LoggedOutcome> = (0..40)
            .map(|i| LoggedOutcome {
                request_id: format!("r{i}"),
                score: Some(f64::from(u8::from(i % 4 == 0))),
                ..Default::default()
            })
            .collect();
        let tally = Tally {
            requests: 42,
            cut: 21,
            empty: 0,
            refused: 0,
            scored: (0..40).map(|i| (outcomes[i].score.unwrap_or(0.0), 0.8, i)).collect(),
        };
        let key = GroupKey::Domain { domain: "math".into(), band: None };
        let g = measure("m".into(), key, &tally, &outcomes);
        assert!((g.observed - 0.25).abs() < 1e-12 && (g.gap + 0.55).abs() < 1e-12, "{g:?}");
        // sd of the differences is that of a 0/1 with p = 0.25 (n − 1 denominator): √(0.25·0.75·40/39).
        let half = 1.96 * (0.25 * 0.75 * 40.0 / 39.0 / 40.0f64).sqrt();
        assert!((g.gap_ci.lo - (g.gap - half)).abs() < 1e-9 && (g.gap_ci.hi - (g.gap + half)).abs() < 1e-9);
        assert_eq!((g.cut_rate, g.requests, g.scored), (0.5, 42, 40));
        // The failures, latest first.
        assert_eq!(g.examples, ["r39", "r38", "r37"]);
    }
}
