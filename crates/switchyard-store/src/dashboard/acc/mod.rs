//! One pass over the range's rows: the sums every panel needs, then the panels, sorted.

mod merge;

use super::{
    band, ArmRow, CacheRow, Dashboard, DashboardQuery, DeploymentRow, KeyRow, LogInfo, ModelRow, Pricing, QualityRow,
    Range, Reference, Savings, SavingsRow, Series, Totals, TrafficRow,
};
use crate::interval::{wilson, Moments};

/// One row as the covering index gives it ([`super::STAT_COLUMNS`], in order); texts borrowed from the row.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatRow<'a> {
    pub ts_ms: i64,
    pub endpoint: &'a str,
    pub status: i64,
    pub chosen_model: Option<&'a str>,
    pub domain: Option<&'a str>,
    pub complexity: Option<f64>,
    pub api_key: Option<&'a str>,
    pub experiment: Option<&'a str>,
    pub arm: Option<&'a str>,
    pub cost_usd: Option<f64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: f64,
    pub cache_hit: bool,
    pub cache_saved_usd: Option<f64>,
    pub attempts_n: Option<i64>,
    pub deployment: Option<&'a str>,
    pub upstream_ms: Option<f64>,
    pub failed_deployments: Option<&'a str>,
    pub score: Option<f64>,
    pub chosen_p: Option<f64>,
}

impl StatRow<'_> {
    fn is_gateway(&self) -> bool {
        self.endpoint != "route"
    }

    fn fell_back(&self) -> bool {
        self.attempts_n.unwrap_or(0) > 1
    }
}

#[derive(Default)]
struct ModelAcc {
    requests: u64,
    errors: u64,
    spend: f64,
    input: u64,
    output: u64,
    fallbacks: u64,
    latency: Moments,
    feedback: Moments,
    predicted: Moments,
    priced: u64,
    priced_input: u64,
    priced_output: u64,
    priced_spend: f64,
    routed: bool,
    by_bucket: Vec<(u64, f64)>,
    by_domain: Few<DomainAcc>,
}

#[derive(Default)]
struct DomainAcc {
    requests: u64,
    feedback: Moments,
    predicted: Moments,
    bands: [u64; 3],
}

#[derive(Default)]
struct ArmAcc {
    requests: u64,
    spend: f64,
    gateway: u64,
    fallbacks: u64,
    feedback: Moments,
}

#[derive(Default)]
struct DeploymentAcc {
    model: String,
    calls: u64,
    failures: u64,
    latency: Moments,
}

/// The running sums.
pub(crate) struct Acc {
    from_ms: i64,
    bucket_ms: i64,
    buckets: usize,
    totals: Totals,
    feedback: Moments,
    models: Few<ModelAcc>,
    keys: Few<(u64, f64)>,
    arms: Few<Few<ArmAcc>>,
    deployments: Few<DeploymentAcc>,
    cache: CacheRow,
}

/// A few keyed sums (models, domains, keys, deployments: tens, not thousands), found by a scan that copies the
/// key only the first time: a million rows make no allocation once every key is known.
#[derive(Debug)]
pub(crate) struct Few<V>(Vec<(String, V)>);

impl<V> Default for Few<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V: Default> Few<V> {
    /// The sums of `key`, new ones the first time.
    fn entry(&mut self, key: &str) -> &mut V {
        let at = match self.0.iter().position(|(k, _)| k == key) {
            Some(at) => at,
            None => {
                self.0.push((key.to_string(), V::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }
}

impl<V> IntoIterator for Few<V> {
    type Item = (String, V);
    type IntoIter = std::vec::IntoIter<(String, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// `map[key]`, inserting a default the first time.
fn entry<'m, V: Default>(map: &'m mut Few<V>, key: &str) -> &'m mut V {
    map.entry(key)
}

impl Acc {
    pub(crate) fn new(query: &DashboardQuery) -> Self {
        Self {
            from_ms: query.from_ms,
            bucket_ms: query.bucket_ms,
            buckets: query.buckets(),
            totals: Totals::default(),
            feedback: Moments::default(),
            models: Few::default(),
            keys: Few::default(),
            arms: Few::default(),
            deployments: Few::default(),
            cache: CacheRow::default(),
        }
    }

    /// Adds one row.
    pub(crate) fn add(&mut self, row: &StatRow<'_>) {
        let cost = row.cost_usd.unwrap_or(0.0);
        let input = row.input_tokens.unwrap_or(0).max(0) as u64;
        let output = row.output_tokens.unwrap_or(0).max(0) as u64;
        let error = row.status >= 400;
        let t = &mut self.totals;
        t.requests += 1;
        t.routed += u64::from(row.complexity.is_some());
        t.gateway += u64::from(row.is_gateway());
        t.errors += u64::from(error);
        t.spend_usd += cost;
        t.input_tokens += input;
        t.output_tokens += output;
        if let Some(score) = row.score {
            self.feedback.add(score);
        }
        let (buckets, bucket) = (self.buckets, ((row.ts_ms - self.from_ms) / self.bucket_ms).max(0) as usize);
        let m = entry(&mut self.models, row.chosen_model.unwrap_or("-"));
        m.requests += 1;
        m.errors += u64::from(error);
        m.spend += cost;
        m.input += input;
        m.output += output;
        m.fallbacks += u64::from(row.fell_back() && !error);
        m.latency.add(row.latency_ms);
        m.routed |= row.complexity.is_some();
        if let Some(score) = row.score {
            m.feedback.add(score);
            if let Some(p) = row.chosen_p {
                m.predicted.add(p);
            }
        }
        // What routing saved: the router's own choices (not a model the client named), answered upstream.
        let routed = row.complexity.is_some();
        if routed && row.is_gateway() && !row.cache_hit && row.input_tokens.is_some() && row.output_tokens.is_some() {
            if let Some(cost) = row.cost_usd {
                m.priced += 1;
                m.priced_input += input;
                m.priced_output += output;
                m.priced_spend += cost;
            }
        }
        if m.by_bucket.is_empty() {
            m.by_bucket = vec![(0, 0.0); buckets];
        }
        if let Some(b) = m.by_bucket.get_mut(bucket) {
            b.0 += 1;
            b.1 += cost;
        }
        let d = entry(&mut m.by_domain, row.domain.unwrap_or("-"));
        d.requests += 1;
        if let Some(score) = row.score {
            d.feedback.add(score);
            if let Some(p) = row.chosen_p {
                d.predicted.add(p);
            }
        }
        if let Some(c) = row.complexity {
            d.bands[["low", "mid", "high"].iter().position(|b| *b == band(c)).unwrap_or(0)] += 1;
        }
        let k = entry(&mut self.keys, row.api_key.unwrap_or("-"));
        k.0 += 1;
        k.1 += cost;
        self.add_arm(row, cost);
        self.add_calls(row);
        if row.cache_hit {
            self.cache.hits += 1;
            self.cache.saved_usd += row.cache_saved_usd.unwrap_or(0.0);
        }
    }

    fn add_arm(&mut self, row: &StatRow<'_>, cost: f64) {
        let (Some(experiment), Some(arm)) = (row.experiment, row.arm) else { return };
        let a = self.arms.entry(experiment).entry(arm);
        a.requests += 1;
        a.spend += cost;
        a.gateway += u64::from(row.is_gateway());
        a.fallbacks += u64::from(row.is_gateway() && row.fell_back());
        if let Some(score) = row.score {
            a.feedback.add(score);
        }
    }

    fn add_calls(&mut self, row: &StatRow<'_>) {
        if let Some(deployment) = row.deployment {
            let d = entry(&mut self.deployments, deployment);
            d.calls += 1;
            if d.model.is_empty() {
                d.model = row.chosen_model.unwrap_or("-").to_string();
            }
            if let Some(ms) = row.upstream_ms {
                d.latency.add(ms);
            }
        }
        for failed in row.failed_deployments.map(crate::derived::failed_calls).unwrap_or_default() {
            let d = entry(&mut self.deployments, &failed.deployment);
            d.calls += 1;
            d.failures += 1;
            if d.model.is_empty() {
                d.model = failed.model;
            }
        }
    }

    /// The view the sums give, for `backend`: everything but the recent rows, which the caller adds (and the
    /// keys' limits and deployments' cooldowns, which the server fills in).
    pub(crate) fn finish(self, query: &DashboardQuery, pricing: &Pricing<'_>, backend: &'static str) -> Dashboard {
        let mut totals = self.totals;
        totals.scored = self.feedback.n;
        totals.feedback = self.feedback.score_interval();
        let savings = savings(&self.models, pricing, totals.requests);
        let gateway = totals.gateway;
        let mut models: Vec<(String, ModelAcc)> = self.models.into_iter().collect();
        models.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then_with(|| a.0.cmp(&b.0)));
        let mut view = Dashboard {
            range: Range {
                from_ms: query.from_ms,
                to_ms: query.to_ms,
                bucket_ms: query.bucket_ms,
                buckets: (0..query.buckets() as i64).map(|i| query.from_ms + i * query.bucket_ms).collect(),
            },
            generated_ms: crate::now_ms(),
            query_ms: 0.0,
            log: LogInfo { backend, prompts: None },
            totals,
            savings,
            series: Vec::new(),
            models: Vec::new(),
            quality: Vec::new(),
            traffic: Vec::new(),
            keys: self
                .keys
                .into_iter()
                .map(|(name, (requests, spend_usd))| KeyRow {
                    name,
                    requests,
                    spend_usd,
                    budget: None,
                    rpm: None,
                    tpm: None,
                })
                .collect(),
            experiments: self
                .arms
                .into_iter()
                .flat_map(|(experiment, arms)| {
                    arms.into_iter().map(move |(arm, a)| arm_row((experiment.clone(), arm), a))
                })
                .collect(),
            deployments: self
                .deployments
                .into_iter()
                .map(|(deployment, d)| DeploymentRow {
                    deployment,
                    model: d.model,
                    calls: d.calls,
                    failures: d.failures,
                    upstream_ms: d.latency.interval().map(|i| i.mean),
                    cooling: false,
                })
                .collect(),
            cache: CacheRow { hit_rate: wilson(self.cache.hits, gateway), ..self.cache },
            recent: Vec::new(),
        };
        for (model, m) in models {
            add_model(&mut view, model, m, query.buckets());
        }
        sort(&mut view);
        view
    }
}

fn arm_row((experiment, arm): (String, String), a: ArmAcc) -> ArmRow {
    ArmRow {
        experiment,
        arm,
        requests: a.requests,
        spend_usd: a.spend,
        spend_per_request: (a.requests > 0).then(|| a.spend / a.requests as f64),
        fallback_rate: wilson(a.fallbacks, a.gateway),
        scored: a.feedback.n,
        feedback: a.feedback.score_interval(),
    }
}

/// The savings against the reference: the one the user picked, else the dearest model the router sent
/// traffic to.
fn savings(models: &Few<ModelAcc>, pricing: &Pricing<'_>, requests: u64) -> Savings {
    let price = pricing.price;
    let mut candidates: Vec<String> = pricing
        .candidates
        .iter()
        .cloned()
        .chain(models.0.iter().map(|(k, _)| k.clone()))
        .filter(|m| price(m).is_some())
        .collect();
    candidates.sort();
    candidates.dedup();
    let dearest = models
        .0
        .iter()
        .filter(|(_, m)| m.routed)
        .filter_map(|(name, _)| price(name).map(|(i, o)| (name, i + o)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(name, _)| name.clone());
    let reference = match &pricing.reference {
        Some(model) => price(model).map(|p| (model.clone(), p, "request")),
        None => dearest.and_then(|m| price(&m).map(|p| (m, p, "default"))),
    }
    .map(|(model, (i, o), picked)| Reference { model, input_usd_per_mtok: i, output_usd_per_mtok: o, picked });
    let mut s = Savings { candidates, ..Savings::default() };
    let mut priced: Vec<(&String, &ModelAcc)> =
        models.0.iter().map(|(k, m)| (k, m)).filter(|(_, m)| m.priced > 0).collect();
    // Summed in one order whatever the map's, so a view is the same from one call to the next.
    priced.sort_by(|a, b| a.0.cmp(b.0));
    for (model, m) in priced {
        let at_reference = reference.as_ref().map_or(m.priced_spend, |r| {
            (m.priced_input as f64 * r.input_usd_per_mtok + m.priced_output as f64 * r.output_usd_per_mtok) / 1e6
        });
        s.priced_requests += m.priced;
        s.spend_usd += m.priced_spend;
        s.reference_usd += at_reference;
        s.by_model.push(SavingsRow {
            model: model.clone(),
            requests: m.priced,
            input_tokens: m.priced_input,
            output_tokens: m.priced_output,
            spend_usd: m.priced_spend,
            reference_usd: at_reference,
            saved_usd: at_reference - m.priced_spend,
        });
    }
    s.unpriced_requests = requests - s.priced_requests;
    s.saved_usd = s.reference_usd - s.spend_usd;
    s.saved_share = (s.reference_usd > 0.0).then(|| s.saved_usd / s.reference_usd);
    s.reference = reference;
    s
}

/// Adds one model's series, traffic, quality and row.
fn add_model(view: &mut Dashboard, model: String, m: ModelAcc, buckets: usize) {
    let mut by_bucket = m.by_bucket;
    by_bucket.resize(buckets, (0, 0.0));
    view.series.push(Series {
        model: model.clone(),
        requests: by_bucket.iter().map(|b| b.0).collect(),
        spend_usd: by_bucket.iter().map(|b| b.1).collect(),
    });
    for (domain, d) in m.by_domain {
        for (band, requests) in ["low", "mid", "high"].into_iter().zip(d.bands).filter(|(_, n)| *n > 0) {
            view.traffic.push(TrafficRow { model: model.clone(), domain: domain.clone(), band, requests });
        }
        view.quality.push(QualityRow {
            model: model.clone(),
            domain,
            requests: d.requests,
            scored: d.feedback.n,
            feedback: d.feedback.score_interval(),
            predicted: d.predicted.interval().map(|i| i.mean),
        });
    }
    view.models.push(ModelRow {
        model,
        requests: m.requests,
        errors: m.errors,
        spend_usd: m.spend,
        input_tokens: m.input,
        output_tokens: m.output,
        fallbacks: m.fallbacks,
        latency_ms: m.latency.interval().map(|i| i.mean),
        scored: m.feedback.n,
        feedback: m.feedback.score_interval(),
        predicted: m.predicted.interval().map(|i| i.mean),
    });
}

/// Most requests first, then by name.
fn sort(view: &mut Dashboard) {
    view.quality
        .sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| (&a.model, &a.domain).cmp(&(&b.model, &b.domain))));
    view.traffic.sort_by(|a, b| {
        b.requests.cmp(&a.requests).then_with(|| (&a.model, &a.domain, a.band).cmp(&(&b.model, &b.domain, b.band)))
    });
    view.keys.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.name.cmp(&b.name)));
    view.experiments.sort_by(|a, b| (&a.experiment, &a.arm).cmp(&(&b.experiment, &b.arm)));
    view.deployments.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.deployment.cmp(&b.deployment)));
    view.savings.by_model.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.model.cmp(&b.model)));
}
