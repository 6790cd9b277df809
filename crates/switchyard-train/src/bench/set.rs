//! The evaluation set of a benchmark: held-out prompts with each model's observed score and realised cost.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use switchyard_core::{
    estimate_input_tokens, normalize_prompt, read_logs, Catalog, Evidence, ModelCost, ReadSummary, Split,
};

use crate::dataset::RowFilter;
use crate::TrainError;

/// One held-out prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchPrompt {
    /// The text the router reads.
    pub text: String,
    /// Per model (in [`BenchSet::models`] order): mean observed score, if the model answered it.
    pub score: Vec<Option<f64>>,
    /// Per model: the realised cost of that answer in USD, if the model answered it.
    pub cost: Vec<Option<f64>>,
    /// The prompt's domain label, if any.
    pub domain: Option<String>,
}

/// Held-out prompts and the models they were answered by.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSet {
    /// Model names: those of the router that the logs also cover.
    pub models: Vec<String>,
    /// The prompts, in first-seen order.
    pub prompts: Vec<BenchPrompt>,
    /// Rows read and skipped.
    pub summary: ReadSummary,
    /// Pairwise rows and rows of models the router does not know, which a cost–quality benchmark cannot use.
    pub unused_rows: usize,
}

#[derive(Default)]
struct Acc {
    text: String,
    domain: Option<String>,
    score: HashMap<usize, (f64, f64)>,
    cost: HashMap<usize, (f64, f64)>,
}

impl BenchSet {
    /// Reads `paths`, keeping the router's models and the rows `filter` selects (for evaluation: those with
    /// `"split": "test"`, or every row when none is marked). A row's cost is its `cost_usd`; else its tokens ×
    /// prices (the catalog's, else the router's); else the router's expected cost for the prompt.
    pub fn from_logs(
        paths: &[PathBuf],
        router_costs: &[ModelCost],
        catalog: Option<&Catalog>,
        skip_bad_rows: bool,
        filter: RowFilter,
    ) -> Result<Self, TrainError> {
        let mut set = Self::read(paths, router_costs, catalog, skip_bad_rows, Some(filter))?;
        if set.prompts.is_empty() && filter == RowFilter::TestOrAll {
            set = Self::read(paths, router_costs, catalog, skip_bad_rows, None)?;
        }
        if set.prompts.is_empty() {
            return Err(TrainError::Fit(format!(
                "no outcome rows for the router's models ({}) in the benchmark logs",
                router_costs.iter().map(|c| c.model.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(set)
    }

    fn read(
        paths: &[PathBuf],
        router_costs: &[ModelCost],
        catalog: Option<&Catalog>,
        skip_bad_rows: bool,
        filter: Option<RowFilter>,
    ) -> Result<Self, TrainError> {
        let models: Vec<String> = router_costs.iter().map(|c| c.model.clone()).collect();
        let index: HashMap<&str, usize> = models.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
        let mut order: Vec<String> = Vec::new();
        let mut accs: HashMap<String, Acc> = HashMap::new();
        let mut unused_rows = 0;
        let summary = read_logs(paths, skip_bad_rows, |row| {
            let is_test = row.split == Some(Split::Test);
            match filter {
                Some(RowFilter::TestOrAll) if !is_test => return,
                Some(RowFilter::ExcludeTest) if is_test => return,
                _ => {}
            }
            let Evidence::Outcome(o) = &row.evidence else {
                unused_rows += 1;
                return;
            };
            let Some(&m) = index.get(o.model.as_str()) else {
                unused_rows += 1;
                return;
            };
            let key = row.group_key().to_string();
            let acc = accs.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                Acc { text: row.prompt.clone(), domain: row.domain.clone(), ..Acc::default() }
            });
            let prices = catalog
                .and_then(|c| c.get(&o.model))
                .map(|c| (c.input_usd_per_mtok, c.output_usd_per_mtok))
                .unwrap_or((router_costs[m].input_usd_per_mtok, router_costs[m].output_usd_per_mtok));
            let cost = match (o.cost_usd, o.input_tokens, o.output_tokens) {
                (Some(c), _, _) => c,
                (None, input, Some(output)) if prices != (0.0, 0.0) => {
                    let input = input.map_or_else(|| estimate_input_tokens(&row.prompt), |t| t as f64);
                    (input * prices.0 + output as f64 * prices.1) / 1e6
                }
                _ => router_costs[m].expected_cost_usd(estimate_input_tokens(&row.prompt)),
            };
            let s = acc.score.entry(m).or_default();
            s.0 += o.score;
            s.1 += 1.0;
            let c = acc.cost.entry(m).or_default();
            c.0 += cost;
            c.1 += 1.0;
        })?;
        let prompts = order
            .into_iter()
            .filter_map(|key| accs.remove(&key))
            .map(|acc| BenchPrompt {
                score: (0..models.len()).map(|m| acc.score.get(&m).map(|(s, n)| s / n)).collect(),
                cost: (0..models.len()).map(|m| acc.cost.get(&m).map(|(c, n)| c / n)).collect(),
                text: acc.text,
                domain: acc.domain,
            })
            .collect();
        Ok(Self { models, prompts, summary, unused_rows })
    }

    /// Keeps only the models that answered every prompt, when at least two did: single-model baselines are
    /// then measured on the same prompts as the routers (a model seen only on the easy half of a set would
    /// otherwise look better than it is). Returns the names of the models dropped.
    pub fn restrict_to_dense_models(&mut self) -> Vec<String> {
        let dense: Vec<usize> =
            (0..self.models.len()).filter(|&m| self.prompts.iter().all(|p| p.score[m].is_some())).collect();
        if dense.len() < 2 || dense.len() == self.models.len() {
            return Vec::new();
        }
        let dropped = (0..self.models.len()).filter(|m| !dense.contains(m)).map(|m| self.models[m].clone()).collect();
        let keep: Vec<String> = dense.iter().map(|&m| self.models[m].clone()).collect();
        self.keep_models(&keep);
        dropped
    }

    /// Keeps exactly these models, in this order (a name the set lacks gets no scores).
    pub fn keep_models(&mut self, names: &[String]) {
        let pick: Vec<Option<usize>> = names.iter().map(|n| self.models.iter().position(|m| m == n)).collect();
        for p in &mut self.prompts {
            p.score = pick.iter().map(|m| m.and_then(|m| p.score[m])).collect();
            p.cost = pick.iter().map(|m| m.and_then(|m| p.cost[m])).collect();
        }
        self.prompts.retain(|p| p.score.iter().any(Option::is_some));
        self.models = names.to_vec();
    }

    /// Leaves out the prompts whose normalised text ([`normalize_prompt`]) is in `seen` (e.g. the training
    /// prompts, from [`training_prompts`]): a router cannot be judged on prompts it learned from. Returns how
    /// many were left out.
    pub fn drop_prompts_seen_in(&mut self, seen: &HashSet<String>) -> usize {
        let before = self.prompts.len();
        self.prompts.retain(|p| !seen.contains(&normalize_prompt(&p.text)));
        before - self.prompts.len()
    }

    /// Each model's (mean cost, mean score) over the prompts it answered, and how many it answered.
    pub fn single_model_points(&self) -> Vec<(f64, f64, usize)> {
        (0..self.models.len())
            .map(|m| {
                let answered: Vec<(f64, f64)> =
                    self.prompts.iter().filter_map(|p| Some((p.cost[m]?, p.score[m]?))).collect();
                let n = answered.len().max(1) as f64;
                (
                    answered.iter().map(|a| a.0).sum::<f64>() / n,
                    answered.iter().map(|a| a.1).sum::<f64>() / n,
                    answered.len(),
                )
            })
            .collect()
    }
}

/// The normalised texts ([`normalize_prompt`]) of every training row of `paths`: every row not marked
/// `"split": "test"`, outcome or pairwise, whatever its model. Rows that break the contract are skipped.
pub fn training_prompts(paths: &[PathBuf]) -> Result<HashSet<String>, TrainError> {
    let mut seen = HashSet::new();
    read_logs(paths, true, |row| {
        if row.split != Some(Split::Test) {
            seen.insert(row.normalized_prompt());
        }
    })?;
    Ok(seen)
}

/// A kNN router memory over `set`'s prompts (e.g. the training prompts): their embeddings, each model's
/// observed score (NaN where it did not answer), each model's mean score as the prior.
pub fn knn_memory(set: &BenchSet, embeddings: &[Vec<f32>], k: usize) -> switchyard_core::KnnMemory {
    let dim = embeddings.first().map_or(0, Vec::len);
    let scores: Vec<f32> =
        set.prompts.iter().flat_map(|p| p.score.iter().map(|s| s.map_or(f32::NAN, |v| v as f32))).collect();
    let prior = set.single_model_points().into_iter().map(|(_, q, n)| if n > 0 { q as f32 } else { 0.5 }).collect();
    switchyard_core::KnnMemory { dim, embeddings: embeddings.concat(), scores, prior, k, alpha: 1.0, power: 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, lines: &[&str]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    #[test]
    fn held_out_prompts_seen_in_training_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let train = write(
            dir.path(),
            "train.jsonl",
            &[
                r#"{"prompt": "What is  the Capital of Italy?", "model": "a", "score": 1}"#,
                r#"{"prompt": "hello", "model_a": "a", "model_b": "b", "winner": "model_a"}"#,
                r#"{"prompt": "only in test", "model": "a", "score": 1, "split": "test"}"#,
            ],
        );
        let seen = training_prompts(&[train]).unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen.contains("what is the capital of italy?") && seen.contains("hello"));
        let test = write(
            dir.path(),
            "test.jsonl",
            &[
                r#"{"prompt": "what is the capital of ITALY?\n", "model": "a", "score": 1, "split": "test"}"#,
                r#"{"prompt": "only in test", "model": "a", "score": 0, "split": "test"}"#,
                r#"{"prompt": "Hello", "model": "b", "score": 1, "split": "test"}"#,
                r#"{"prompt": "a training row", "model": "b", "score": 1}"#,
            ],
        );
        let cost = |model: &str| ModelCost {
            model: model.into(),
            input_usd_per_mtok: 1.0,
            output_usd_per_mtok: 2.0,
            mean_output_tokens: 100.0,
            mean_cost_usd: None,
            source: switchyard_core::CostSource::Prices,
        };
        let costs = [cost("a"), cost("b")];
        let mut set = BenchSet::from_logs(&[test], &costs, None, false, RowFilter::TestOrAll).unwrap();
        assert_eq!(set.prompts.len(), 3);
        assert_eq!(set.drop_prompts_seen_in(&seen), 2);
        assert_eq!(set.prompts.len(), 1);
        assert_eq!(set.prompts[0].text, "only in test");
    }
}
