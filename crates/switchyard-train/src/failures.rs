//! Where each model fails (`switchyard logs failures`): scored requests grouped by the router's domain, by
//! domain and complexity band, and by clusters over their embeddings; for each (model, group), the model's
//! observed success (the feedback) against what the router predicted for it, with an interval, the quality
//! signals (cut, empty and refused answers) and example request ids. Groups are ranked by the upper end of
//! the gap's interval: the ones most surely below their prediction first.
//!
//! Two biases the caller should say out loud: a routed request's logged P is the one that won the policy's
//! choice, so it leans high where estimates are noisy (the winner's curse); and people score failures more
//! often than successes. The report counts the routed requests of every group for that reason.
//!
//! This module owns the grouping and the arithmetic. It never opens the decision log or runs the encoder:
//! the caller hands it each request's outcome and embedding.

use std::collections::BTreeMap;

use ndarray::Array2;
use serde::Serialize;
use switchyard_core::Router;

use crate::TrainError;

use switchyard_core::COMPLEXITY_BAND_EDGES as BAND_EDGES;
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
    /// Its feedback score in [0, 1].
    pub score: f64,
    /// The router's P(success) for the model at decision time, when the log has it (a routed request).
    pub predicted: Option<f64>,
    /// Input tokens (for a prediction made now).
    pub input_tokens: f64,
    /// Whether the answer was cut at the token limit (`finish_reason` "length"); `None` when the log has no
    /// finish reason.
    pub cut: Option<bool>,
    /// Whether the answer was empty; `None` when the log does not keep answers.
    pub empty: Option<bool>,
    /// Whether the answer starts like a refusal; `None` when the log does not keep answers.
    pub refused: Option<bool>,
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
    /// Its scored requests answered by the model.
    pub scored: usize,
    /// Of them, routed ones (the prediction is the one the policy chose on, which leans high).
    pub routed: usize,
    /// Mean feedback.
    pub observed: f64,
    /// Mean predicted P(success) on the scored requests.
    pub predicted: f64,
    /// observed − predicted: negative where the model does worse than the router expects.
    pub gap: f64,
    /// The gap's 95% interval (normal, over the per-request differences, their variance at least that of a
    /// Bernoulli outcome at the group's smoothed rate).
    pub gap_ci: Interval,
    /// Share of the answers with a logged finish reason that were cut at the token limit.
    pub cut_rate: Option<f64>,
    /// Share of the answers logged with their text that were empty.
    pub empty_rate: Option<f64>,
    /// Share of the answers logged with their text that start like a refusal.
    pub refusal_rate: Option<f64>,
    /// Request ids of its worst-scored requests (lowest feedback, latest first).
    pub examples: Vec<String>,
}

/// Options of [`failure_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct FailureOptions {
    /// Only groups with at least this many scored requests (at least 2).
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
    /// Scored requests analysed.
    pub scored: usize,
    /// Of them, routed (their prediction is the one logged at decision time).
    pub routed: usize,
    /// Of them, those whose prediction was made now, from the router, because the log has none for the model
    /// (a request that named its model).
    pub predicted_now: usize,
    /// Requests left out: answered by a model the router does not know, with no logged prediction.
    pub unknown_model: usize,
    /// Clusters of the embeddings.
    pub clusters: usize,
    /// The `min_requests` the groups were filtered by.
    pub min_requests: usize,
    /// Groups measured (with at least `min_requests`): about 1 in 40 of them has an interval wholly below 0
    /// by chance alone.
    pub groups_tested: usize,
    /// Groups by domain, most surely below their prediction first.
    pub by_domain: Vec<FailureGroup>,
    /// Groups by domain and complexity band, the same way.
    pub by_band: Vec<FailureGroup>,
    /// Groups by cluster, the same way.
    pub by_cluster: Vec<FailureGroup>,
}

/// Running sums of one (model, group).
#[derive(Default)]
struct Tally {
    /// Answers with a logged finish reason, and how many were cut.
    judged: usize,
    cut: usize,
    /// Answers logged with their text, and how many were empty or refusals.
    with_text: usize,
    empty: usize,
    refused: usize,
    routed: usize,
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
    let k = options.clusters.unwrap_or_else(|| ((outcomes.len() as f64 / 2.0).sqrt() as usize).clamp(2, 16));
    let (assign, labels) = clusters(embeddings, outcomes, k, options.seed)?;
    let mut report = FailureReport {
        scored: 0,
        routed: 0,
        predicted_now: 0,
        unknown_model: 0,
        clusters: labels.len(),
        min_requests: options.min_requests.max(2),
        groups_tested: 0,
        by_domain: Vec::new(),
        by_band: Vec::new(),
        by_cluster: Vec::new(),
    };
    let mut tallies: BTreeMap<(String, GroupKey), Tally> = BTreeMap::new();
    for (i, (outcome, x)) in outcomes.iter().zip(embeddings.rows()).enumerate() {
        if options.model.as_ref().is_some_and(|m| *m != outcome.model) {
            continue;
        }
        let x = x.to_vec();
        let prediction = router.predict(&x, outcome.input_tokens);
        let now = prediction.models.iter().find(|m| m.model == outcome.model).map(|m| m.p_success);
        let Some(predicted) = outcome.predicted.or(now) else {
            report.unknown_model += 1;
            continue;
        };
        report.scored += 1;
        report.routed += usize::from(outcome.predicted.is_some());
        report.predicted_now += usize::from(outcome.predicted.is_none());
        let domain = prediction.domains.first().map_or_else(|| "all".to_string(), |d| d.domain.clone());
        let cluster = assign.get(i).copied().unwrap_or(0);
        let keys = [
            GroupKey::Domain { domain: domain.clone(), band: None },
            GroupKey::Domain { domain, band: Some(Band::of(prediction.complexity)) },
            GroupKey::Cluster { cluster, label: labels.get(cluster).cloned().unwrap_or_default() },
        ];
        for key in keys {
            tallies.entry((outcome.model.clone(), key)).or_default().add(outcome, predicted, i);
        }
    }
    for ((model, key), tally) in tallies {
        if tally.scored.len() < report.min_requests {
            continue;
        }
        report.groups_tested += 1;
        let group = measure(model, key, &tally, outcomes);
        match group.key {
            GroupKey::Domain { band: None, .. } => report.by_domain.push(group),
            GroupKey::Domain { .. } => report.by_band.push(group),
            GroupKey::Cluster { .. } => report.by_cluster.push(group),
        }
    }
    for groups in [&mut report.by_domain, &mut report.by_band, &mut report.by_cluster] {
        groups.sort_by(|a, b| a.gap_ci.hi.total_cmp(&b.gap_ci.hi).then(a.gap.total_cmp(&b.gap)));
    }
    Ok(report)
}

impl Tally {
    fn add(&mut self, outcome: &LoggedOutcome, predicted: f64, index: usize) {
        if let Some(cut) = outcome.cut {
            self.judged += 1;
            self.cut += usize::from(cut);
        }
        if let (Some(empty), Some(refused)) = (outcome.empty, outcome.refused) {
            self.with_text += 1;
            self.empty += usize::from(empty);
            self.refused += usize::from(refused);
        }
        self.routed += usize::from(outcome.predicted.is_some());
        self.scored.push((outcome.score.clamp(0.0, 1.0), predicted, index));
    }
}

/// One (model, group)'s figures from its tally (at least two scored requests).
fn measure(model: String, key: GroupKey, tally: &Tally, outcomes: &[LoggedOutcome]) -> FailureGroup {
    let n = tally.scored.len() as f64;
    let observed = tally.scored.iter().map(|s| s.0).sum::<f64>() / n;
    let predicted = tally.scored.iter().map(|s| s.1).sum::<f64>() / n;
    let gap = observed - predicted;
    let sample = tally.scored.iter().map(|s| (s.0 - s.1 - gap).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    // A group whose outcomes are all 0 (or all 1) has almost no sample variance; an outcome is still a draw,
    // so the variance is at least a Bernoulli's at the group's smoothed rate (Agresti–Coull).
    let smoothed = (observed * n + 2.0) / (n + 4.0);
    let variance = sample.max(smoothed * (1.0 - smoothed));
    let half = 1.96 * (variance / n).sqrt();
    let mut worst: Vec<(f64, usize)> = tally.scored.iter().map(|s| (s.0, s.2)).collect();
    worst.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let rate = |k: usize, of: usize| (of > 0).then(|| k as f64 / of as f64);
    FailureGroup {
        model,
        key,
        scored: tally.scored.len(),
        routed: tally.routed,
        observed,
        predicted,
        gap,
        gap_ci: Interval { lo: gap - half, hi: gap + half },
        cut_rate: rate(tally.cut, tally.judged),
        empty_rate: rate(tally.empty, tally.with_text),
        refusal_rate: rate(tally.refused, tally.with_text),
        examples: worst.iter().take(EXAMPLES).map(|&(_, i)| outcomes[i].request_id.clone()).collect(),
    }
}

/// Each request's cluster (spherical k-means with `k` centres over the distinct prompts, so that a prompt
/// sent many times does not seed several centres), numbered from 0 with no empty cluster, and each cluster's
/// label: the prompt nearest its centre, on one line and cut to [`LABEL_CHARS`] characters.
fn clusters(
    embeddings: &Array2<f32>,
    outcomes: &[LoggedOutcome],
    k: usize,
    seed: u64,
) -> Result<(Vec<usize>, Vec<String>), TrainError> {
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<usize> = (0..outcomes.len()).filter(|&i| seen.insert(outcomes[i].prompt.as_str())).collect();
    if distinct.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let unique = embeddings.select(ndarray::Axis(0), &distinct);
    let centres = crate::familiarity::centroids(&unique, k.clamp(1, distinct.len()), seed)?;
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
    // Renumber the clusters that have members.
    let mut number = vec![usize::MAX; centres.nrows()];
    let mut labels = Vec::new();
    for (c, n) in nearest.iter().enumerate() {
        if let Some((_, i)) = n {
            number[c] = labels.len();
            labels.push(label(&outcomes[*i].prompt));
        }
    }
    Ok((assign.into_iter().map(|c| number[c]).collect(), labels))
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
        // 40 scored requests, a quarter successes, predicted 0.8; half have a finish reason, half of those cut.
        let outcomes: Vec<LoggedOutcome> = (0..40)
            .map(|i| LoggedOutcome {
                request_id: format!("r{i}"),
                score: f64::from(u8::from(i % 4 == 0)),
                predicted: (i < 10).then_some(0.8),
                cut: (i % 2 == 0).then_some(i % 4 == 0),
                ..Default::default()
            })
            .collect();
        let mut tally = Tally::default();
        for (i, o) in outcomes.iter().enumerate() {
            tally.add(o, 0.8, i);
        }
        let key = GroupKey::Domain { domain: "math".into(), band: None };
        let g = measure("m".into(), key, &tally, &outcomes);
        assert!((g.observed - 0.25).abs() < 1e-12 && (g.gap + 0.55).abs() < 1e-12, "{g:?}");
        // The sample variance, 0.25·0.75·40/39 = 0.192, is below the floor at the smoothed rate 12/44.
        let smoothed = 12.0 / 44.0;
        let half = 1.96 * (smoothed * (1.0 - smoothed) / 40.0f64).sqrt();
        assert!((g.gap_ci.lo - (g.gap - half)).abs() < 1e-9 && (g.gap_ci.hi - (g.gap + half)).abs() < 1e-9);
        assert_eq!((g.cut_rate, g.empty_rate, g.scored, g.routed), (Some(0.5), None, 40, 10));
        // The failures, latest first.
        assert_eq!(g.examples, ["r39", "r38", "r37"]);
    }

    #[test]
    fn a_group_that_always_fails_still_has_an_interval_of_some_width() {
        let outcomes: Vec<LoggedOutcome> = (0..5).map(|_| LoggedOutcome::default()).collect();
        let mut tally = Tally::default();
        for (i, o) in outcomes.iter().enumerate() {
            tally.add(o, 0.7, i);
        }
        let g = measure("m".into(), GroupKey::Domain { domain: "d".into(), band: None }, &tally, &outcomes);
        assert!((g.gap + 0.7).abs() < 1e-12);
        // The floor: a Bernoulli at (0 + 2) / (5 + 4).
        let half = 1.96 * ((2.0 / 9.0) * (7.0 / 9.0) / 5.0f64).sqrt();
        assert!((g.gap_ci.hi - (-0.7 + half)).abs() < 1e-9, "{g:?}");
    }
}
