//! `logs stats`: traffic, spend, fallbacks and feedback by model and by experiment arm, with 95% confidence
//! intervals so arms can be compared honestly.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::database::LogRows;
use crate::db::LoggedRequest;
use crate::interval::{Moments, Z95};
use crate::StoreError;

pub use crate::interval::{wilson, Interval};

/// Scored requests each arm needs before `logs stats` says whether their difference is significant.
const MIN_VERDICT: u64 = 10;

/// Traffic of one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStats {
    /// The model that answered (`-` for requests no model answered).
    pub model: String,
    /// Requests it answered.
    pub calls: u64,
    /// Requests that needed a fallback before it answered.
    pub fallbacks: u64,
    /// Observed spend, USD (from reported tokens at catalog prices).
    pub spend_usd: f64,
    /// Spend the decisions expected, USD.
    pub expected_usd: f64,
    /// Mean latency, milliseconds.
    pub mean_latency_ms: f64,
    /// Feedback scores.
    pub feedback: Option<Interval>,
}

/// One experiment arm, with intervals.
#[derive(Debug, Clone, Serialize)]
pub struct ArmStats {
    /// The experiment.
    pub experiment: String,
    /// The arm.
    pub arm: String,
    /// Requests assigned to it.
    pub calls: u64,
    /// Total spend, USD (observed where known, else expected).
    pub spend_usd: f64,
    /// Spend per request (observed where known, else expected), USD.
    pub spend_per_call: Option<Interval>,
    /// Feedback scores.
    pub feedback: Option<Interval>,
    /// Share of requests that fell back.
    pub fallback_rate: Option<Interval>,
    /// Share of requests that failed (status ≥ 400).
    pub error_rate: Option<Interval>,
    /// Mean feedback minus the first arm's, with a Welch-style 95% interval (absent for the first arm).
    pub feedback_vs_first: Option<Interval>,
    /// Whether that interval leaves out 0.
    pub significant: Option<bool>,
    /// Not yet significant: about how many more scored requests per arm would make a difference this large
    /// significant (at the variances seen so far).
    pub more_needed: Option<u64>,
    /// Share of answered requests cut at the length limit (`finish_reason` = `length`), from the logged answers.
    pub cut_rate: Option<Interval>,
    /// Share of answered requests whose answer was empty (no text, no tool call), of those logged with their text
    /// (none under `log.responses = "hash"`).
    pub empty_rate: Option<Interval>,
    /// Share of those answers that start like a refusal (`learning.refusal_patterns`).
    pub refusal_rate: Option<Interval>,
    /// Latency, milliseconds.
    pub latency_ms: Option<Interval>,
}

/// Traffic, tokens and spend of one client key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStats {
    /// The key's name (`-` for requests without a key).
    pub key: String,
    /// Requests.
    pub requests: u64,
    /// Requests that failed (status ≥ 400), refusals for limits included.
    pub errors: u64,
    /// Requests refused with 429 (a rate limit, a budget, a full server).
    pub limited: u64,
    /// Prompt tokens upstreams reported.
    pub input_tokens: u64,
    /// Completion tokens upstreams reported.
    pub output_tokens: u64,
    /// Observed spend, USD.
    pub spend_usd: f64,
}

/// The summary `logs stats` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Requests.
    pub requests: u64,
    /// Requests with feedback.
    pub with_feedback: u64,
    /// Requests that fell back.
    pub fallbacks: u64,
    /// Requests that failed (status ≥ 400).
    pub errors: u64,
    /// Observed spend, USD.
    pub spend_usd: f64,
    /// By the model that answered, most calls first.
    pub by_model: Vec<ModelStats>,
    /// By experiment arm.
    pub by_arm: Vec<ArmStats>,
    /// By client key, most requests first.
    pub by_key: Vec<KeyStats>,
}

#[derive(Default)]
struct ModelAcc {
    calls: u64,
    fallbacks: u64,
    spend: f64,
    expected: f64,
    latency: f64,
    feedback: Moments,
}

#[derive(Default)]
struct ArmAcc {
    calls: u64,
    spend: Moments,
    feedback: Moments,
    fallbacks: u64,
    errors: u64,
    latency: Moments,
    /// Answers logged with a finish reason, and how many of them were cut; answers logged with their text, and
    /// how many of them were empty.
    judged: u64,
    cut: u64,
    with_text: u64,
    empty: u64,
    refused: u64,
}

/// How [`stats_with`] reads the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsOptions {
    /// Answers starting with one of these (lowercase) count as refusals (`learning.refusal_patterns`).
    pub refusal_patterns: Vec<String>,
    /// Each experiment's control arm, which the other arms are compared with (`"*"`: every experiment with an
    /// arm of that name; an experiment named nowhere compares with its first arm by name).
    pub control: BTreeMap<String, String>,
}

impl Default for StatsOptions {
    fn default() -> Self {
        Self {
            refusal_patterns: crate::REFUSAL_PATTERNS.iter().map(|p| (*p).to_string()).collect(),
            control: BTreeMap::new(),
        }
    }
}

/// Summarises requests logged at or after `since_ms`, with the default [`StatsOptions`].
pub fn stats(store: impl LogRows, since_ms: i64) -> Result<Stats, StoreError> {
    stats_with(store, since_ms, &StatsOptions::default())
}

/// [`stats`], reading the log as `options` say.
pub fn stats_with(store: impl LogRows, since_ms: i64, options: &StatsOptions) -> Result<Stats, StoreError> {
    let refusal_patterns = &options.refusal_patterns;
    let mut s = Stats {
        requests: 0,
        with_feedback: 0,
        fallbacks: 0,
        errors: 0,
        spend_usd: 0.0,
        by_model: Vec::new(),
        by_arm: Vec::new(),
        by_key: Vec::new(),
    };
    let mut keys: BTreeMap<String, KeyStats> = BTreeMap::new();
    let mut models: BTreeMap<String, ModelAcc> = BTreeMap::new();
    let mut arms: BTreeMap<(String, String), ArmAcc> = BTreeMap::new();
    store.each_logged(since_ms, &mut |LoggedRequest { record: r, feedback }| {
        s.requests += 1;
        s.with_feedback += u64::from(feedback.is_some());
        s.fallbacks += u64::from(r.fell_back());
        s.errors += u64::from(r.status >= 400);
        s.spend_usd += r.cost_usd.unwrap_or(0.0);
        let name = r.api_key.clone().unwrap_or_else(|| "-".into());
        let k = keys.entry(name.clone()).or_insert_with(|| KeyStats {
            key: name,
            requests: 0,
            errors: 0,
            limited: 0,
            input_tokens: 0,
            output_tokens: 0,
            spend_usd: 0.0,
        });
        k.requests += 1;
        k.errors += u64::from(r.status >= 400);
        k.limited += u64::from(r.status == 429);
        k.input_tokens += r.input_tokens.unwrap_or(0);
        k.output_tokens += r.output_tokens.unwrap_or(0);
        k.spend_usd += r.cost_usd.unwrap_or(0.0);
        let m = models.entry(r.chosen_model.clone().unwrap_or_else(|| "-".into())).or_default();
        m.calls += 1;
        m.fallbacks += u64::from(r.fell_back());
        m.spend += r.cost_usd.unwrap_or(0.0);
        m.expected += r.expected_cost_usd.unwrap_or(0.0);
        m.latency += r.latency_ms;
        if let Some(f) = feedback {
            m.feedback.add(f);
        }
        if let (Some(e), Some(a)) = (&r.experiment, &r.arm) {
            let acc = arms.entry((e.clone(), a.clone())).or_default();
            acc.calls += 1;
            acc.spend.add(r.cost_usd.or(r.expected_cost_usd).unwrap_or(0.0));
            acc.fallbacks += u64::from(r.fell_back());
            acc.errors += u64::from(r.status >= 400);
            acc.latency.add(r.latency_ms);
            if r.finish_reason.is_some() {
                acc.judged += 1;
                acc.cut += u64::from(r.finish_reason.as_deref() == Some("length"));
            }
            if let Some(text) = &r.response {
                acc.with_text += 1;
                acc.empty += u64::from(text.is_empty() && r.tool_calls.is_none());
                acc.refused += u64::from(crate::starts_like_refusal(text, refusal_patterns));
            }
            if let Some(f) = feedback {
                acc.feedback.add(f);
            }
        }
    })?;
    s.by_model = model_stats(models);
    s.by_key = keys.into_values().collect();
    s.by_key.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.key.cmp(&b.key)));
    s.by_arm = arm_stats(arms, &options.control);
    Ok(s)
}

/// Each model's calls, fallbacks, spend, latency and feedback, most called first.
fn model_stats(models: BTreeMap<String, ModelAcc>) -> Vec<ModelStats> {
    let mut by_model: Vec<ModelStats> = models
        .into_iter()
        .map(|(model, a)| ModelStats {
            model,
            calls: a.calls,
            fallbacks: a.fallbacks,
            spend_usd: a.spend,
            expected_usd: a.expected,
            mean_latency_ms: a.latency / a.calls.max(1) as f64,
            feedback: a.feedback.interval(),
        })
        .collect();
    by_model.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.model.cmp(&b.model)));
    by_model
}

/// Each experiment arm's figures, the control first (see [`StatsOptions::control`]), with each other arm's
/// feedback against the control's.
fn arm_stats(arms: BTreeMap<(String, String), ArmAcc>, control: &BTreeMap<String, String>) -> Vec<ArmStats> {
    let mut ordered: Vec<((String, String), ArmAcc)> = arms.into_iter().collect();
    // Stable: within an experiment the control comes first, the rest keep their order by name.
    ordered.sort_by_key(|((e, a), _)| (e.clone(), control.get(e).or_else(|| control.get("*")) != Some(a)));
    let mut by_arm: Vec<ArmStats> = Vec::new();
    let mut first: BTreeMap<String, Moments> = BTreeMap::new();
    for ((experiment, arm), a) in ordered {
        let baseline = first.entry(experiment.clone()).or_insert(a.feedback);
        let is_first = by_arm.last().is_none_or(|prev: &ArmStats| prev.experiment != experiment);
        let feedback_vs_first = (!is_first && a.feedback.n > 0 && baseline.n > 0).then(|| {
            let diff = a.feedback.mean - baseline.mean;
            let se = (a.feedback.variance() / a.feedback.n as f64 + baseline.variance() / baseline.n as f64).sqrt();
            Interval { n: a.feedback.n, mean: diff, low: diff - Z95 * se, high: diff + Z95 * se }
        });
        // A verdict needs enough scores on both sides to estimate their spread.
        let enough = a.feedback.n >= MIN_VERDICT && baseline.n >= MIN_VERDICT;
        let significant = feedback_vs_first.filter(|d| enough && d.high > d.low).map(|d| d.low > 0.0 || d.high < 0.0);
        let more_needed = feedback_vs_first
            .filter(|_| significant == Some(false))
            .and_then(|d| more_needed(d.mean, &a.feedback, baseline));
        by_arm.push(ArmStats {
            experiment,
            arm,
            calls: a.calls,
            spend_usd: a.spend.mean * a.spend.n as f64,
            spend_per_call: a.spend.interval(),
            feedback: a.feedback.interval(),
            fallback_rate: wilson(a.fallbacks, a.calls),
            error_rate: wilson(a.errors, a.calls),
            feedback_vs_first,
            significant,
            more_needed,
            cut_rate: wilson(a.cut, a.judged),
            empty_rate: wilson(a.empty, a.with_text),
            refusal_rate: wilson(a.refused, a.with_text),
            latency_ms: a.latency.interval(),
        });
    }
    by_arm
}

/// More scored requests per arm (beyond the smaller arm's) that would make a difference of `diff` significant at
/// the variances seen: n with z·√((v₁ + v₂)/n) < |diff|. `None` when there is no difference to detect.
fn more_needed(diff: f64, a: &Moments, b: &Moments) -> Option<u64> {
    let spread = a.variance() + b.variance();
    if diff.abs() < 1e-9 || spread <= 0.0 {
        return None;
    }
    let n = (Z95 * Z95 * spread / (diff * diff)).ceil() as u64;
    Some(n.saturating_sub(a.n.min(b.n)).max(1))
}

fn show(i: Option<Interval>, digits: usize) -> String {
    i.map_or_else(|| "-".into(), |i| format!("{:.digits$} [{:.digits$}, {:.digits$}]", i.mean, i.low, i.high))
}

impl Stats {
    /// The per-key table: requests, refusals, tokens and spend of each client key.
    pub fn key_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>7} {:>8} {:>12} {:>12} {:>11}",
            "key", "requests", "errors", "limited", "input tok", "output tok", "spend $"
        );
        for k in &self.by_key {
            let _ = writeln!(
                out,
                "{:<24} {:>9} {:>7} {:>8} {:>12} {:>12} {:>11.4}",
                k.key, k.requests, k.errors, k.limited, k.input_tokens, k.output_tokens, k.spend_usd
            );
        }
        out
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} requests, {} with feedback, {} fell back, {} failed; observed spend ${:.4}",
            self.requests, self.with_feedback, self.fallbacks, self.errors, self.spend_usd
        );
        let _ = writeln!(
            out,
            "\n{:<28} {:>7} {:>9} {:>11} {:>11} {:>9}  feedback mean [95% CI] (n)",
            "model", "calls", "fallbacks", "spend $", "expected $", "ms"
        );
        for m in &self.by_model {
            let n = m.feedback.map_or(0, |i| i.n);
            let _ = writeln!(
                out,
                "{:<28} {:>7} {:>9} {:>11.4} {:>11.4} {:>9.1}  {} ({n})",
                m.model,
                m.calls,
                m.fallbacks,
                m.spend_usd,
                m.expected_usd,
                m.mean_latency_ms,
                show(m.feedback, 3)
            );
        }
        if self.by_key.iter().any(|k| k.key != "-") {
            let _ = write!(out, "\n{}", self.key_table());
        }
        if !self.by_arm.is_empty() {
            let _ =
                writeln!(out, "\nexperiment arms (95% confidence intervals; each difference is against the experiment's control, listed first)");
            for a in &self.by_arm {
                let verdict = match (a.significant, a.more_needed) {
                    (Some(true), _) => " (significant)".to_string(),
                    (Some(false), Some(n)) => format!(" (not significant; about {n} more scored requests per arm)"),
                    (Some(false), None) => " (not significant)".to_string(),
                    (None, _) => String::new(),
                };
                let _ = writeln!(
                    out,
                    "{} / {}: {} calls, spend ${:.4}, per call {}, feedback {} (n {}), vs control {}{verdict}, \
                     fallback rate {}, error rate {}, cut answers {}, empty answers {}, refusals {}, latency ms {}",
                    a.experiment,
                    a.arm,
                    a.calls,
                    a.spend_usd,
                    show(a.spend_per_call, 6),
                    show(a.feedback, 3),
                    a.feedback.map_or(0, |i| i.n),
                    show(a.feedback_vs_first, 3),
                    show(a.fallback_rate, 3),
                    show(a.error_rate, 3),
                    show(a.cut_rate, 3),
                    show(a.empty_rate, 3),
                    show(a.refusal_rate, 3),
                    show(a.latency_ms, 0),
                );
            }
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests;
