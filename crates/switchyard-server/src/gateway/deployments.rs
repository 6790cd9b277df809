//! The upstreams behind catalog models: each model's deployments (other providers, keys or regions serving
//! the same model), the order in which a request tries them, and the chain of named fallbacks.
//!
//! Choosing among a model's deployments: those in cooldown are left out (unless every candidate of the
//! request is cooling); when weights differ, smooth weighted round-robin gives each deployment its exact
//! share of first tries (weights 2 and 1: two requests of every three go to the first); when they tie, the
//! deployment expected to answer soonest goes first (its latency average over its share of successful
//! calls), and one never called goes before any called, so that it gets measured. The rest follow as
//! fallbacks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchyard_core::{Catalog, ModelCard};

use crate::gateway::deployment::Upstream;
use crate::gateway::health::Health;

/// Every model's deployments and fallbacks, built once from the validated catalog.
#[derive(Debug, Default)]
pub struct Deployments {
    by_model: HashMap<String, Vec<Arc<Upstream>>>,
    by_name: HashMap<String, Arc<Upstream>>,
    fallbacks: HashMap<String, Vec<String>>,
    /// Smooth weighted round-robin: each deployment's current weight, by model.
    current: Mutex<HashMap<String, Vec<i64>>>,
}

impl Deployments {
    /// The deployments of a validated catalog (`[[models]]`; models without any are left out).
    pub fn new(models: &[ModelCard]) -> Self {
        let mut by_model = HashMap::new();
        for card in models.iter().filter(|c| c.has_deployment()) {
            let upstreams = card
                .endpoints()
                .into_iter()
                .map(|(name, d)| {
                    Arc::new(Upstream {
                        name,
                        model: card.name.clone(),
                        base_url: d.base_url.trim_end_matches('/').to_string(),
                        api: d.api,
                        api_key_env: d.api_key_env,
                        upstream_model: d.upstream_model.unwrap_or_else(|| card.name.clone()),
                        weight: d.weight.max(1),
                    })
                })
                .collect();
            by_model.insert(card.name.clone(), upstreams);
        }
        let catalog = Catalog { models: models.to_vec() };
        let fallbacks = models
            .iter()
            .map(|c| (c.name.clone(), catalog.with_fallbacks(&c.name).into_iter().map(str::to_string).collect()))
            .collect();
        let by_name = by_model.values().flatten().map(|u: &Arc<Upstream>| (u.name.clone(), u.clone())).collect();
        Self { by_model, by_name, fallbacks, current: Mutex::new(HashMap::new()) }
    }

    /// A model's deployments, in catalog order (empty when it has none).
    pub fn of(&self, model: &str) -> &[Arc<Upstream>] {
        self.by_model.get(model).map_or(&[], Vec::as_slice)
    }

    /// The deployment named `name`, if the catalog has it.
    pub fn named(&self, name: &str) -> Option<&Upstream> {
        self.by_name.get(name).map(Arc::as_ref)
    }

    /// Every deployment of every model.
    pub fn all(&self) -> impl Iterator<Item = &Upstream> {
        self.by_model.values().flatten().map(Arc::as_ref)
    }

    /// The models to try for `model`: itself, then its fallbacks (chained, without repeats).
    pub fn with_fallbacks(&self, model: &str) -> Vec<String> {
        self.fallbacks.get(model).cloned().unwrap_or_else(|| vec![model.to_string()])
    }

    /// The order in which to try `model`'s deployments for one request. Deployments in cooldown are left
    /// out unless `include_cooling`. Each call counts as one request in the weighted round-robin, so call it
    /// only when the request reaches this model.
    pub fn order(&self, model: &str, health: &Health, include_cooling: bool) -> Vec<Arc<Upstream>> {
        let all = self.of(model);
        let live: Vec<usize> = (0..all.len()).filter(|&i| include_cooling || !health.cooling(&all[i].name)).collect();
        if live.len() <= 1 {
            return live.iter().map(|&i| all[i].clone()).collect();
        }
        // Never called first, then the sooner expected answer, then catalog order.
        let faster = |a: usize, b: usize| {
            let key = |i: usize| health.expected_ms(&all[i].name).map_or((0, 0.0), |l| (1, l));
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(a.cmp(&b))
        };
        let weights_tie = live.iter().all(|&i| all[i].weight == all[live[0]].weight);
        let mut rest = live.clone();
        if weights_tie {
            rest.sort_by(|&a, &b| faster(a, b));
            return rest.into_iter().map(|i| all[i].clone()).collect();
        }
        let first = {
            let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let current = current.entry(model.to_string()).or_insert_with(|| vec![0; all.len()]);
            let total: i64 = live.iter().map(|&i| i64::from(all[i].weight)).sum();
            for &i in &live {
                current[i] += i64::from(all[i].weight);
            }
            let first = live
                .iter()
                .copied()
                .max_by(|&a, &b| current[a].cmp(&current[b]).then_with(|| faster(b, a)))
                .unwrap_or(live[0]);
            current[first] -= total;
            first
        };
        rest.retain(|&i| i != first);
        rest.sort_by(|&a, &b| all[b].weight.cmp(&all[a].weight).then_with(|| faster(a, b)));
        std::iter::once(first).chain(rest).map(|i| all[i].clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn deployments(text: &str) -> Deployments {
        let catalog = Catalog::from_toml(text, std::path::Path::new("c.toml")).unwrap_or_else(|e| panic!("{e}"));
        Deployments::new(&catalog.models)
    }

    fn firsts(d: &Deployments, health: &Health, n: usize) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for _ in 0..n {
            let order = d.order("m", health, false);
            *counts.entry(order[0].name.clone()).or_default() += 1;
        }
        counts
    }

    const WEIGHTED: &str = "[[models]]\nname = \"m\"\nfallbacks = [\"f\"]\n\
        [[models.deployments]]\nname = \"a\"\nbase_url = \"http://a/v1/\"\nupstream_model = \"m-2024\"\nweight = 2\n\
        [[models.deployments]]\nname = \"b\"\nbase_url = \"http://b/v1\"\n\
        [[models]]\nname = \"f\"\nbase_url = \"http://f/v1\"\n";

    #[test]
    fn weights_give_exact_shares_and_the_rest_follow() {
        let d = deployments(WEIGHTED);
        let health = Health::default();
        let counts = firsts(&d, &health, 300);
        assert_eq!((counts["a"], counts["b"]), (200, 100));
        let order: Vec<String> = d.order("m", &health, false).iter().map(|u| u.name.clone()).collect();
        assert_eq!(order.len(), 2);
        let a = &d.of("m")[0];
        assert_eq!((a.base_url.as_str(), a.upstream_model.as_str()), ("http://a/v1", "m-2024"));
        assert_eq!(d.of("f")[0].upstream_model, "f");
        assert_eq!(d.with_fallbacks("m"), ["m", "f"]);
        assert!(d.of("nothing").is_empty());
    }

    #[test]
    fn cooling_deployments_are_left_out_and_ties_go_to_the_faster() {
        let d = deployments(WEIGHTED);
        let health = Health::default();
        let a = d.of("m")[0].clone();
        assert!(health.failure(&a, Duration::from_millis(5), 1, Duration::from_secs(60)));
        let counts = firsts(&d, &health, 10);
        assert_eq!(counts.get("b"), Some(&10));
        assert_eq!(d.order("m", &health, false).len(), 1);
        assert_eq!(d.order("m", &health, true).len(), 2);

        let tied = deployments(
            "[[models]]\nname = \"m\"\n[[models.deployments]]\nbase_url = \"http://a\"\n\
             [[models.deployments]]\nbase_url = \"http://b\"\n[[models.deployments]]\nbase_url = \"http://c\"\n",
        );
        let names = |h: &Health| -> Vec<String> { tied.order("m", h, false).iter().map(|u| u.name.clone()).collect() };
        let health = Health::default();
        assert_eq!(names(&health), ["m#1", "m#2", "m#3"]);
        health.success(&tied.of("m")[0], Duration::from_millis(300));
        health.success(&tied.of("m")[1], Duration::from_millis(100));
        // Never called first (so it gets measured), then the faster.
        assert_eq!(names(&health), ["m#3", "m#2", "m#1"]);
        health.success(&tied.of("m")[2], Duration::from_millis(200));
        assert_eq!(names(&health), ["m#2", "m#3", "m#1"]);
        // A fast failure does not make a deployment look fast: failing calls lower its place.
        // Four failures: an error rate of 0.59, so 100 ms / 0.41 = 244 ms expected, behind m#3's 200.
        for _ in 0..4 {
            assert!(!health.failure(&tied.of("m")[1], Duration::from_millis(1), 10, Duration::from_secs(1)));
        }
        assert_eq!(names(&health), ["m#3", "m#2", "m#1"]);
    }
}
