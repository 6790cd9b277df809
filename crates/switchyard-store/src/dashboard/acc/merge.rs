//! Sums that add up: a range scanned in parts gives the whole's sums once its parts' are merged.

use super::{Acc, ArmAcc, DeploymentAcc, DomainAcc, Few, ModelAcc};

impl<V: Default + Merge> Few<V> {
    /// Adds `other`'s sums key by key.
    fn merge(&mut self, other: Few<V>) {
        for (key, v) in other {
            self.entry(&key).merge(v);
        }
    }
}

/// Sums that add up: a scan split into parts gives the whole's sums once its parts are merged.
pub(crate) trait Merge {
    /// Adds `other`'s sums to these.
    fn merge(&mut self, other: Self);
}

impl Merge for (u64, f64) {
    fn merge(&mut self, other: Self) {
        self.0 += other.0;
        self.1 += other.1;
    }
}

impl Merge for ModelAcc {
    fn merge(&mut self, o: Self) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.spend += o.spend;
        self.input += o.input;
        self.output += o.output;
        self.fallbacks += o.fallbacks;
        self.latency.merge(&o.latency);
        self.feedback.merge(&o.feedback);
        self.predicted.merge(&o.predicted);
        self.priced += o.priced;
        self.priced_input += o.priced_input;
        self.priced_output += o.priced_output;
        self.priced_spend += o.priced_spend;
        self.routed |= o.routed;
        if self.by_bucket.len() < o.by_bucket.len() {
            self.by_bucket.resize(o.by_bucket.len(), (0, 0.0));
        }
        for (mine, theirs) in self.by_bucket.iter_mut().zip(o.by_bucket) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
        self.by_domain.merge(o.by_domain);
    }
}

impl Merge for DomainAcc {
    fn merge(&mut self, o: Self) {
        self.requests += o.requests;
        self.feedback.merge(&o.feedback);
        self.predicted.merge(&o.predicted);
        for (mine, theirs) in self.bands.iter_mut().zip(o.bands) {
            *mine += theirs;
        }
    }
}

impl Merge for ArmAcc {
    fn merge(&mut self, o: Self) {
        self.requests += o.requests;
        self.spend += o.spend;
        self.gateway += o.gateway;
        self.fallbacks += o.fallbacks;
        self.feedback.merge(&o.feedback);
    }
}

impl Merge for Few<ArmAcc> {
    fn merge(&mut self, other: Self) {
        Few::merge(self, other);
    }
}

impl Merge for DeploymentAcc {
    fn merge(&mut self, o: Self) {
        if self.model.is_empty() {
            self.model = o.model;
        }
        self.calls += o.calls;
        self.failures += o.failures;
        self.latency.merge(&o.latency);
    }
}

impl Acc {
    /// Adds the sums of a scan of another part of the range (made with the same query).
    pub(crate) fn merge(&mut self, o: Acc) {
        let t = &mut self.totals;
        t.requests += o.totals.requests;
        t.routed += o.totals.routed;
        t.gateway += o.totals.gateway;
        t.errors += o.totals.errors;
        t.spend_usd += o.totals.spend_usd;
        t.input_tokens += o.totals.input_tokens;
        t.output_tokens += o.totals.output_tokens;
        self.feedback.merge(&o.feedback);
        self.models.merge(o.models);
        self.keys.merge(o.keys);
        self.arms.merge(o.arms);
        self.deployments.merge(o.deployments);
        self.cache.hits += o.cache.hits;
        self.cache.saved_usd += o.cache.saved_usd;
    }
}
