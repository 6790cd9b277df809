//! Counters and latency histograms, exported at `GET /metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use sha2::Digest;

use crate::config::server::KeyLabels;

mod gauges;
pub use gauges::{render_budgets, render_embedder, render_log, render_supervision};

/// Histogram bucket upper bounds, in seconds.
const BOUNDS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Bucket upper bounds of the decisions' `ood` (a calibrated distance in [0, 1]; shrinkage starts at 0.9).
const OOD_BOUNDS: [f64; 8] = [0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::with_bounds(&BOUNDS)
    }
}

impl Histogram {
    fn with_bounds(bounds: &'static [f64]) -> Self {
        Self { bounds, buckets: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, seconds: f64) {
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {bucket}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// One finished request in an experiment arm, as [`Metrics::arm`] counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArmRequest {
    /// Its spend: observed, else expected.
    pub spend_usd: Option<f64>,
    /// Whether it fell back.
    pub fell_back: bool,
    /// Seconds from its arrival to the end of its answer.
    pub latency_s: f64,
    /// Whether its answer was cut at the token limit: `None` when its finish reason is not known.
    pub cut: Option<bool>,
}

/// An arm's running sums.
#[derive(Debug, Default)]
struct ArmTally {
    requests: u64,
    spend_usd: f64,
    fallbacks: u64,
    latency_s: f64,
    judged: u64,
    cut: u64,
    scored: u64,
    score_sum: f64,
}

#[derive(Debug)]
struct Inner {
    requests: BTreeMap<(String, String, u16, String), u64>,
    /// Per client key: requests by status; tokens in, out and spend; refusals by reason.
    key_requests: BTreeMap<(String, u16), u64>,
    key_tokens: BTreeMap<String, (u64, u64, f64)>,
    key_refusals: BTreeMap<(String, &'static str), u64>,
    rules: BTreeMap<String, u64>,
    /// Per experiment/arm: requests, spend (observed, else expected), requests that fell back.
    arms: BTreeMap<(String, String), ArmTally>,
    feedback: BTreeMap<&'static str, u64>,
    reloads: u64,
    generation: u64,
    upstream_calls: BTreeMap<(String, String, &'static str), u64>,
    fallbacks: u64,
    cooldowns: u64,
    /// Per model: input tokens, output tokens, estimated cost in USD.
    tokens: BTreeMap<String, (u64, u64, f64)>,
    encode: Histogram,
    queue: Histogram,
    tokenize: Histogram,
    inference: Histogram,
    decision: Histogram,
    ood: Histogram,
    upstream: BTreeMap<String, Histogram>,
    /// Connections the server closed, by reason (`header_timeout`, `keepalive_timeout`, ...).
    connections_closed: BTreeMap<&'static str, u64>,
    /// How client keys are named in labels.
    key_labels: KeyLabels,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            requests: BTreeMap::new(),
            key_requests: BTreeMap::new(),
            key_tokens: BTreeMap::new(),
            key_refusals: BTreeMap::new(),
            rules: BTreeMap::new(),
            arms: BTreeMap::new(),
            feedback: BTreeMap::new(),
            reloads: 0,
            generation: 0,
            upstream_calls: BTreeMap::new(),
            fallbacks: 0,
            cooldowns: 0,
            tokens: BTreeMap::new(),
            encode: Histogram::default(),
            queue: Histogram::default(),
            tokenize: Histogram::default(),
            inference: Histogram::default(),
            decision: Histogram::default(),
            ood: Histogram::with_bounds(&OOD_BOUNDS),
            upstream: BTreeMap::new(),
            connections_closed: BTreeMap::new(),
            key_labels: KeyLabels::Name,
        }
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    /// Metrics that name client keys in their labels as `labels` says.
    pub fn new(labels: KeyLabels) -> Self {
        Self(Mutex::new(Inner { key_labels: labels, ..Inner::default() }))
    }

    /// A connection the server closed, and why.
    pub fn connection_closed(&self, reason: &'static str) {
        self.with(|m| *m.connections_closed.entry(reason).or_default() += 1);
    }

    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut inner) = self.0.lock() {
            f(&mut inner);
        }
    }

    /// One answered request, with its experiment arm (`experiment/arm`, or `-`).
    pub fn request(&self, endpoint: &str, model: &str, status: u16, arm: &str) {
        self.with(|m| {
            *m.requests.entry((endpoint.to_string(), model.to_string(), status, arm.to_string())).or_default() += 1;
        });
    }

    /// One answered request made with a client key.
    pub fn key_request(&self, key: &str, status: u16) {
        self.with(|m| *m.key_requests.entry((key.to_string(), status)).or_default() += 1);
    }

    /// Tokens and spend charged to a client key.
    pub fn key_usage(&self, key: &str, input: u64, output: u64, cost_usd: f64) {
        self.with(|m| {
            let t = m.key_tokens.entry(key.to_string()).or_default();
            t.0 += input;
            t.1 += output;
            t.2 += cost_usd;
        });
    }

    /// A request refused for a key's limit (`rate_limit_exceeded`, `budget_exceeded`).
    pub fn key_refusal(&self, key: &str, reason: &'static str) {
        self.with(|m| *m.key_refusals.entry((key.to_string(), reason)).or_default() += 1);
    }

    /// One request a rule matched.
    pub fn rule(&self, name: &str) {
        self.with(|m| *m.rules.entry(name.to_string()).or_default() += 1);
    }

    /// One finished request in an experiment arm: its spend (observed, else expected), whether it fell back,
    /// its latency and whether its answer was cut at the token limit.
    pub fn arm(&self, experiment: &str, arm: &str, finished: ArmRequest) {
        self.with(|m| {
            let a = m.arms.entry((experiment.to_string(), arm.to_string())).or_default();
            a.requests += 1;
            a.spend_usd += finished.spend_usd.unwrap_or(0.0);
            a.fallbacks += u64::from(finished.fell_back);
            a.latency_s += finished.latency_s;
            if let Some(cut) = finished.cut {
                a.judged += 1;
                a.cut += u64::from(cut);
            }
        });
    }

    /// The first feedback score for a request in an experiment arm (a replaced score is not counted again).
    pub fn arm_feedback(&self, experiment: &str, arm: &str, score: f64) {
        self.with(|m| {
            let a = m.arms.entry((experiment.to_string(), arm.to_string())).or_default();
            a.scored += 1;
            a.score_sum += score;
        });
    }

    /// Feedback stored (`recorded` or `replaced`).
    pub fn feedback(&self, outcome: &'static str) {
        self.with(|m| *m.feedback.entry(outcome).or_default() += 1);
    }

    /// A successful router reload, to `generation`.
    pub fn reload(&self, generation: u64) {
        self.with(|m| {
            m.reloads += 1;
            m.generation = generation;
        });
    }

    /// Time spent tokenizing and embedding one prompt.
    pub fn encode(&self, seconds: f64) {
        self.with(|m| m.encode.observe(seconds));
    }

    /// The parts of one encoding: tokenizing (when the encoder reports it) and the model's forward pass.
    pub fn encode_parts(&self, tokenize: Option<f64>, inference: f64) {
        self.with(|m| {
            if let Some(t) = tokenize {
                m.tokenize.observe(t);
            }
            m.inference.observe(inference);
        });
    }

    /// Time one prompt waited for the inference thread.
    pub fn encode_queue(&self, seconds: f64) {
        self.with(|m| m.queue.observe(seconds));
    }

    /// Time spent deciding (encoding included), and how far the prompt was from the training data.
    pub fn decision(&self, seconds: f64, ood: f64) {
        self.with(|m| {
            m.decision.observe(seconds);
            m.ood.observe(ood);
        });
    }

    /// One upstream call to a model's deployment and how it ended (`ok`, `client_error`, `failed`, `timeout`,
    /// `auth_error`).
    pub fn upstream(&self, model: &str, deployment: &str, outcome: &'static str, seconds: f64) {
        self.with(|m| {
            *m.upstream_calls.entry((model.to_string(), deployment.to_string(), outcome)).or_default() += 1;
            m.upstream.entry(model.to_string()).or_default().observe(seconds);
        });
    }

    /// One fall-back to the next candidate.
    pub fn fallback(&self) {
        self.with(|m| m.fallbacks += 1);
    }

    /// Tokens an upstream reported for one call, and their list-price cost in USD.
    pub fn tokens(&self, model: &str, input: u64, output: u64, cost_usd: f64) {
        self.with(|m| {
            let t = m.tokens.entry(model.to_string()).or_default();
            t.0 += input;
            t.1 += output;
            t.2 += cost_usd;
        });
    }

    /// One upstream put in cooldown.
    pub fn cooldown(&self) {
        self.with(|m| m.cooldowns += 1);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(m) = self.0.lock() else { return out };
        render_request_counters(&mut out, &m);
        render_upstream_counters(&mut out, &m);
        render_key_counters(&mut out, &m);
        render_connections(&mut out, &m);
        let fallbacks = "Failed upstream attempts (each moves a request on to its next candidate, if any).";
        scalar(&mut out, "switchyard_fallbacks_total", "counter", fallbacks, m.fallbacks);
        let cooldowns = "Times an upstream was put in cooldown.";
        scalar(&mut out, "switchyard_cooldowns_total", "counter", cooldowns, m.cooldowns);
        let histograms = [
            ("switchyard_encode_seconds", "Time to tokenize and embed a prompt.", &m.encode),
            ("switchyard_encode_queue_seconds", "Time a prompt waited for the inference thread.", &m.queue),
            ("switchyard_encode_tokenize_seconds", "Part of encoding spent tokenizing.", &m.tokenize),
            (
                "switchyard_encode_inference_seconds",
                "Part of encoding spent in the model (forward, pooling).",
                &m.inference,
            ),
            ("switchyard_decision_seconds", "Time to decide (encoding, heads, predictor, policy).", &m.decision),
            (
                "switchyard_route_ood",
                "How far routed prompts lie from the router's training prompts (0 typical, 1 farther than any; \
                 estimates shrink toward priors above 0.9).",
                &m.ood,
            ),
        ];
        for (name, help, histogram) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            histogram.render(&mut out, name, "");
        }
        out.push_str("# HELP switchyard_upstream_seconds Upstream call time to response headers, by model.\n");
        out.push_str("# TYPE switchyard_upstream_seconds histogram\n");
        for (model, h) in &m.upstream {
            h.render(&mut out, "switchyard_upstream_seconds", &format!("model=\"{}\"", escape(model)));
        }
        out
    }
}

/// Appends one unlabelled sample with its HELP and TYPE lines.
pub(crate) fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// Appends the decision log's counters: rows written, dropped (queue full), failed, queued and pruned.
/// A client key's name as `/metrics` shows it: the name, or the first 12 hex digits of its SHA-256.
pub(crate) fn key_label(name: &str, labels: KeyLabels) -> String {
    match labels {
        KeyLabels::Name => escape(name),
        KeyLabels::Hash => {
            sha2::Sha256::digest(name.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()
        }
    }
}

fn render_connections(out: &mut String, m: &Inner) {
    out.push_str("# HELP switchyard_connections_closed_total Client connections the server closed, by reason.\n");
    out.push_str("# TYPE switchyard_connections_closed_total counter\n");
    for (reason, n) in &m.connections_closed {
        let _ = writeln!(out, "switchyard_connections_closed_total{{reason=\"{reason}\"}} {n}");
    }
}

/// Requests by endpoint, rule matches, experiment arms, feedback and reloads.
fn render_request_counters(out: &mut String, m: &Inner) {
    out.push_str(
        "# HELP switchyard_requests_total Requests answered, by endpoint, chosen model, status and experiment arm.\n",
    );
    out.push_str("# TYPE switchyard_requests_total counter\n");
    for ((endpoint, model, status, arm), n) in &m.requests {
        let _ = writeln!(
            out,
            "switchyard_requests_total{{endpoint=\"{}\",model=\"{}\",status=\"{status}\",arm=\"{}\"}} {n}",
            escape(endpoint),
            escape(model),
            escape(arm)
        );
    }
    out.push_str("# HELP switchyard_rule_matches_total Requests a rule matched, by rule.\n");
    out.push_str("# TYPE switchyard_rule_matches_total counter\n");
    for (rule, n) in &m.rules {
        let _ = writeln!(out, "switchyard_rule_matches_total{{rule=\"{}\"}} {n}", escape(rule));
    }
    type Family = (&'static str, &'static str, fn(&ArmTally) -> f64);
    let arm_families: [Family; 8] = [
        ("switchyard_arm_requests_total", "Finished requests", |a| a.requests as f64),
        ("switchyard_arm_cost_usd_total", "Spend (observed, else expected)", |a| a.spend_usd),
        ("switchyard_arm_fallbacks_total", "Requests that fell back", |a| a.fallbacks as f64),
        ("switchyard_arm_latency_seconds_total", "Seconds from arrival to the end of the answer", |a| a.latency_s),
        ("switchyard_arm_judged_total", "Answers with a known finish reason", |a| a.judged as f64),
        ("switchyard_arm_cut_total", "Answers cut at the token limit (finish_reason length)", |a| a.cut as f64),
        ("switchyard_arm_feedback_total", "Requests with feedback (the first score of each)", |a| a.scored as f64),
        ("switchyard_arm_feedback_score_total", "Sum of those first feedback scores", |a| a.score_sum),
    ];
    for (name, help, value) in arm_families {
        let _ = writeln!(out, "# HELP {name} {help}, by experiment and arm.\n# TYPE {name} counter");
        for ((e, a), tally) in &m.arms {
            let _ = writeln!(out, "{name}{{experiment=\"{}\",arm=\"{}\"}} {}", escape(e), escape(a), value(tally));
        }
    }
    out.push_str("# HELP switchyard_feedback_total Feedback stored, by outcome (recorded, replaced).\n");
    out.push_str("# TYPE switchyard_feedback_total counter\n");
    for (outcome, n) in &m.feedback {
        let _ = writeln!(out, "switchyard_feedback_total{{outcome=\"{outcome}\"}} {n}");
    }
    scalar(out, "switchyard_router_reloads_total", "counter", "Successful router reloads.", m.reloads);
    let generation = "Generation of the routers in service (1 at start-up).";
    scalar(out, "switchyard_router_generation", "gauge", generation, m.generation.max(1));
}

/// Upstream calls, tokens and spend by model.
fn render_upstream_counters(out: &mut String, m: &Inner) {
    out.push_str("# HELP switchyard_upstream_calls_total Upstream calls, by model, deployment and outcome.\n");
    out.push_str("# TYPE switchyard_upstream_calls_total counter\n");
    for ((model, deployment, outcome), n) in &m.upstream_calls {
        let _ = writeln!(
            out,
            "switchyard_upstream_calls_total{{model=\"{}\",deployment=\"{}\",outcome=\"{outcome}\"}} {n}",
            escape(model),
            escape(deployment)
        );
    }
    out.push_str("# HELP switchyard_tokens_total Tokens reported by upstreams, by model and kind.\n");
    out.push_str("# TYPE switchyard_tokens_total counter\n");
    for (model, (input, output, _)) in &m.tokens {
        let model = escape(model);
        let _ = writeln!(out, "switchyard_tokens_total{{model=\"{model}\",kind=\"input\"}} {input}");
        let _ = writeln!(out, "switchyard_tokens_total{{model=\"{model}\",kind=\"output\"}} {output}");
    }
    out.push_str("# HELP switchyard_cost_usd_total Estimated spend at catalog list prices, by model.\n");
    out.push_str("# TYPE switchyard_cost_usd_total counter\n");
    for (model, (_, _, cost)) in &m.tokens {
        let _ = writeln!(out, "switchyard_cost_usd_total{{model=\"{}\"}} {cost}", escape(model));
    }
}

fn render_key_counters(out: &mut String, m: &Inner) {
    let label = |key: &str| key_label(key, m.key_labels);
    out.push_str("# HELP switchyard_key_requests_total Requests answered, by client key and status.\n");
    out.push_str("# TYPE switchyard_key_requests_total counter\n");
    for ((key, status), n) in &m.key_requests {
        let _ = writeln!(out, "switchyard_key_requests_total{{key=\"{}\",status=\"{status}\"}} {n}", label(key));
    }
    out.push_str("# HELP switchyard_key_tokens_total Tokens upstreams reported, by client key and kind.\n");
    out.push_str("# TYPE switchyard_key_tokens_total counter\n");
    for (key, (input, output, _)) in &m.key_tokens {
        let key = label(key);
        let _ = writeln!(out, "switchyard_key_tokens_total{{key=\"{key}\",kind=\"input\"}} {input}");
        let _ = writeln!(out, "switchyard_key_tokens_total{{key=\"{key}\",kind=\"output\"}} {output}");
    }
    out.push_str("# HELP switchyard_key_cost_usd_total Spend at catalog prices, by client key.\n");
    out.push_str("# TYPE switchyard_key_cost_usd_total counter\n");
    for (key, (_, _, cost)) in &m.key_tokens {
        let _ = writeln!(out, "switchyard_key_cost_usd_total{{key=\"{}\"}} {cost}", label(key));
    }
    out.push_str("# HELP switchyard_key_refusals_total Requests refused for a key's limit, by key and reason.\n");
    out.push_str("# TYPE switchyard_key_refusals_total counter\n");
    for ((key, reason), n) in &m.key_refusals {
        let _ = writeln!(out, "switchyard_key_refusals_total{{key=\"{}\",reason=\"{reason}\"}} {n}", label(key));
    }
}

/// Escapes a Prometheus label value.
pub(crate) fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
