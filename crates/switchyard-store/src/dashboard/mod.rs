//! The dashboard's view of the decision log (`GET /admin/stats`, `/ui` and `switchyard logs report`): for a
//! time range, requests and spend over time per model, what routing saved against a reference model's prices,
//! feedback against predicted success per model and domain, traffic by model, domain and complexity band,
//! keys, experiment arms, deployments, the cache, and the most recent decisions with their rankings.
//!
//! The sums come from one scan of a covering index (`decisions_stats`, schema 9) in either backend, so a
//! month of a busy log is read without touching the pages that hold prompts and answers; only the recent
//! decisions are read whole. What only a running server knows (keys' limits and live use, deployments in
//! cooldown) is left for the server to fill in. The JSON is documented in `docs/admin-stats.md`.

pub(crate) mod acc;
mod recent;
mod sqlite;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use recent::{Ranked, Recent, RecentAttempt};

use crate::interval::Interval;

/// The upper edges of the low and middle bands of the router's complexity score: the edges of
/// `switchyard_core::COMPLEXITY_BAND_EDGES` (`logs failures`), which this crate does not depend on; a test
/// checks they agree.
pub const BAND_EDGES: [f64; 2] = [1.0 / 3.0, 2.0 / 3.0];

/// The columns the scan reads, in [`acc::StatRow`]'s order: all in the covering index.
pub(crate) const STAT_COLUMNS: &str = "ts_ms, endpoint, status, chosen_model, domain, complexity, api_key, \
    experiment, arm, cost_usd, input_tokens, output_tokens, latency_ms, cache_hit, cache_saved_usd, attempts_n, \
    deployment, upstream_ms, failed_deployments, score, chosen_p";

/// The most buckets a time series may have.
pub const MAX_BUCKETS: i64 = 2_000;

/// The latest time a range may reach: the start of the year 2200, milliseconds since the epoch.
pub const MAX_TIME_MS: i64 = 7_258_118_400_000;

/// The most recent decisions a view may list.
pub const MAX_RECENT: usize = 500;

/// What to summarise.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardQuery {
    /// Start, milliseconds since the epoch (inclusive).
    pub from_ms: i64,
    /// End (exclusive).
    pub to_ms: i64,
    /// Width of the time series' buckets, milliseconds.
    pub bucket_ms: i64,
    /// How many recent decisions to list.
    pub recent: usize,
}

impl DashboardQuery {
    /// A query, checked: `from` before `to`, a positive bucket, at most [`MAX_BUCKETS`] buckets and
    /// [`MAX_RECENT`] recent decisions. The error says which bound and what to do.
    pub fn new(from_ms: i64, to_ms: i64, bucket_ms: i64, recent: usize) -> Result<Self, String> {
        for (name, at) in [("from", from_ms), ("to", to_ms)] {
            if !(0..=MAX_TIME_MS).contains(&at) {
                return Err(format!("`{name}` ({at}) is outside 1970 to 2200; give a time in that span"));
            }
        }
        if from_ms >= to_ms {
            return Err(format!("`from` ({from_ms}) must be before `to` ({to_ms})"));
        }
        if bucket_ms <= 0 {
            return Err("`bucket` must be a positive duration such as 5m, 1h or 1d".into());
        }
        let buckets = ceil_div(to_ms - from_ms, bucket_ms);
        if buckets > MAX_BUCKETS {
            return Err(format!(
                "{buckets} buckets of {bucket_ms} ms in this range; at most {MAX_BUCKETS}: widen `bucket` or narrow the range"
            ));
        }
        if recent > MAX_RECENT {
            return Err(format!("`recent` is {recent}; at most {MAX_RECENT}"));
        }
        Ok(Self { from_ms, to_ms, bucket_ms, recent })
    }

    /// The bucket width that splits `from..to` into at most `max` buckets: the smallest of 1 minute, 5 and
    /// 15 minutes, 1, 3, 6 and 12 hours, 1 and 7 days that does.
    pub fn auto_bucket(from_ms: i64, to_ms: i64, max: i64) -> i64 {
        const MINUTE: i64 = 60_000;
        const STEPS: [i64; 10] = [
            MINUTE,
            5 * MINUTE,
            15 * MINUTE,
            60 * MINUTE,
            180 * MINUTE,
            360 * MINUTE,
            720 * MINUTE,
            1440 * MINUTE,
            10_080 * MINUTE,
            43_200 * MINUTE,
        ];
        let span = to_ms.saturating_sub(from_ms).max(1);
        STEPS.into_iter().find(|s| ceil_div(span, *s) <= max).unwrap_or(STEPS[STEPS.len() - 1])
    }

    /// The number of buckets.
    pub fn buckets(&self) -> usize {
        usize::try_from(ceil_div(self.to_ms - self.from_ms, self.bucket_ms)).unwrap_or(0)
    }
}

/// `a / b` rounded up, for a positive `b`.
fn ceil_div(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b > 0)
}

/// Catalog prices, for the savings.
pub struct Pricing<'a> {
    /// USD per million input and output tokens of a model, if it has a price.
    pub price: &'a dyn Fn(&str) -> Option<(f64, f64)>,
    /// Models with prices a reference may be chosen from (the catalog); the log's own models are added.
    pub candidates: Vec<String>,
    /// The reference model the user picked (`None`: the dearest model the router sent traffic to).
    pub reference: Option<String>,
}

/// The whole view. Field by field in `docs/admin-stats.md`.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// The range and its buckets.
    pub range: Range,
    /// When it was computed.
    pub generated_ms: i64,
    /// Time to read and sum the log, milliseconds.
    pub query_ms: f64,
    /// Which log.
    pub log: LogInfo,
    /// Totals over the range.
    pub totals: Totals,
    /// What routing saved.
    pub savings: Savings,
    /// Requests and spend per bucket, per model.
    pub series: Vec<Series>,
    /// Per model.
    pub models: Vec<ModelRow>,
    /// Feedback against predicted success per model and domain.
    pub quality: Vec<QualityRow>,
    /// Routed requests per model, domain and complexity band.
    pub traffic: Vec<TrafficRow>,
    /// Per client key.
    pub keys: Vec<KeyRow>,
    /// Per experiment arm.
    pub experiments: Vec<ArmRow>,
    /// Per deployment.
    pub deployments: Vec<DeploymentRow>,
    /// The response cache.
    pub cache: CacheRow,
    /// The latest decisions, newest first.
    pub recent: Vec<Recent>,
}

/// The range.
#[derive(Debug, Clone, Serialize)]
pub struct Range {
    /// Start (inclusive), milliseconds since the epoch.
    pub from_ms: i64,
    /// End (exclusive).
    pub to_ms: i64,
    /// Bucket width.
    pub bucket_ms: i64,
    /// Each bucket's start.
    pub buckets: Vec<i64>,
}

/// Which log, and how it keeps prompts.
#[derive(Debug, Clone, Serialize)]
pub struct LogInfo {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// `full` or `hash` (`log.prompts`), as the caller says; `None` when unknown.
    pub prompts: Option<String>,
}

/// Totals over the range.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Logged requests.
    pub requests: u64,
    /// Requests the router decided (the client named no model).
    pub routed: u64,
    /// Requests answered through the gateway (`chat`, `messages`).
    pub gateway: u64,
    /// Requests answered with status ≥ 400.
    pub errors: u64,
    /// Observed spend, USD.
    pub spend_usd: f64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Requests with feedback.
    pub scored: u64,
    /// Mean feedback.
    pub feedback: Option<Interval>,
}

/// The reference model savings are priced at.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    /// Its name.
    pub model: String,
    /// USD per million input tokens.
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
    /// `default` (the dearest model routed to) or `request` (picked by the user).
    pub picked: &'static str,
}

/// What routing saved: the priced requests at their logged token counts, at the reference's prices, less
/// what they cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Savings {
    /// The reference (`None` when no model has a price).
    pub reference: Option<Reference>,
    /// Models with prices, for a picker.
    pub candidates: Vec<String>,
    /// Gateway answers with token counts and a cost, not from the cache: what the savings count.
    pub priced_requests: u64,
    /// The other requests in the range.
    pub unpriced_requests: u64,
    /// What the priced requests cost.
    pub spend_usd: f64,
    /// What they would have cost at the reference's prices.
    pub reference_usd: f64,
    /// `reference_usd − spend_usd`.
    pub saved_usd: f64,
    /// `saved_usd / reference_usd` (`None` when that is 0).
    pub saved_share: Option<f64>,
    /// Per model.
    pub by_model: Vec<SavingsRow>,
}

/// One model's part of the savings.
#[derive(Debug, Clone, Serialize)]
pub struct SavingsRow {
    /// The model.
    pub model: String,
    /// Its priced requests.
    pub requests: u64,
    /// Their input tokens.
    pub input_tokens: u64,
    /// Their output tokens.
    pub output_tokens: u64,
    /// What they cost.
    pub spend_usd: f64,
    /// At the reference's prices.
    pub reference_usd: f64,
    /// The difference.
    pub saved_usd: f64,
}

/// One model's time series.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// The model that answered (`-`: none).
    pub model: String,
    /// Requests per bucket.
    pub requests: Vec<u64>,
    /// Spend per bucket, USD.
    pub spend_usd: Vec<f64>,
}

/// One model's traffic and quality.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRow {
    /// The model that answered (`-`: none).
    pub model: String,
    /// Requests.
    pub requests: u64,
    /// Those answered with status ≥ 400.
    pub errors: u64,
    /// Spend, USD.
    pub spend_usd: f64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Requests answered after more than one attempt.
    pub fallbacks: u64,
    /// Mean end-to-end latency, milliseconds.
    pub latency_ms: Option<f64>,
    /// Requests with feedback.
    pub scored: u64,
    /// Mean feedback.
    pub feedback: Option<Interval>,
    /// Mean predicted P of success over the scored requests.
    pub predicted: Option<f64>,
}

/// Feedback against prediction for one model in one domain.
#[derive(Debug, Clone, Serialize)]
pub struct QualityRow {
    /// The model.
    pub model: String,
    /// The router's domain (`-`: the request named its model).
    pub domain: String,
    /// Requests.
    pub requests: u64,
    /// Requests with feedback.
    pub scored: u64,
    /// Mean feedback.
    pub feedback: Option<Interval>,
    /// Mean predicted P over the scored requests.
    pub predicted: Option<f64>,
}

/// Routed requests of one model, domain and complexity band.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficRow {
    /// The model.
    pub model: String,
    /// The router's domain (`-`: none).
    pub domain: String,
    /// `low`, `mid` or `high` (edges at [`BAND_EDGES`]).
    pub band: &'static str,
    /// Requests.
    pub requests: u64,
}

/// A budget and what was spent of it in its current period.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// The budget, USD.
    pub usd: f64,
    /// Its period (`day`, `week`, `month`, `total`).
    pub period: String,
    /// Spent in the current period.
    pub spent_usd: f64,
}

/// A per-minute limit and its use.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    /// The limit.
    pub limit: u64,
    /// Used in the last minute.
    pub used: u64,
}

/// One client key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    /// The key's name (`-`: no key).
    pub name: String,
    /// Requests in the range.
    pub requests: u64,
    /// Spend in the range.
    pub spend_usd: f64,
    /// Its budget (filled in by the server).
    pub budget: Option<Budget>,
    /// Its requests-per-minute limit (filled in by the server).
    pub rpm: Option<Limit>,
    /// Its tokens-per-minute limit (filled in by the server).
    pub tpm: Option<Limit>,
}

/// One experiment arm.
#[derive(Debug, Clone, Serialize)]
pub struct ArmRow {
    /// The experiment.
    pub experiment: String,
    /// The arm.
    pub arm: String,
    /// Requests.
    pub requests: u64,
    /// Spend.
    pub spend_usd: f64,
    /// Spend per request.
    pub spend_per_request: Option<f64>,
    /// Share of gateway requests answered after more than one attempt.
    pub fallback_rate: Option<Interval>,
    /// Requests with feedback.
    pub scored: u64,
    /// Mean feedback.
    pub feedback: Option<Interval>,
}

/// One deployment's calls.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentRow {
    /// The deployment.
    pub deployment: String,
    /// The model it serves.
    pub model: String,
    /// Calls made to it.
    pub calls: u64,
    /// Calls that failed (another attempt followed, or the request failed).
    pub failures: u64,
    /// Mean latency of the calls it answered, milliseconds.
    pub upstream_ms: Option<f64>,
    /// In cooldown now (filled in by the server).
    pub cooling: bool,
}

/// The response cache.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheRow {
    /// Answers served from the cache.
    pub hits: u64,
    /// Hits over gateway requests.
    pub hit_rate: Option<Interval>,
    /// What the hits' answers cost when they were made.
    pub saved_usd: f64,
}

impl Dashboard {
    /// Drops the recent decisions' prompts (the server's `log.prompts` is `hash`: rows kept in full under an
    /// earlier setting are not shown).
    pub fn hide_prompts(&mut self) {
        for r in &mut self.recent {
            r.prompt = None;
        }
    }
}

/// The band of a complexity score.
pub fn band(complexity: f64) -> &'static str {
    if complexity < BAND_EDGES[0] {
        "low"
    } else if complexity < BAND_EDGES[1] {
        "mid"
    } else {
        "high"
    }
}
