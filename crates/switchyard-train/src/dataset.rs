//! Labelled logs gathered into what training needs: one record per prompt, with every model's evidence on it,
//! plus per-model cost statistics. Rows stream in; only each distinct prompt's text is kept, once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use switchyard_core::{
    normalize_prompt, read_logs, Catalog, CostSource, Evidence, FileFingerprint, LabelledRow, ModelCost, ReadSummary,
    Split, Winner,
};

use crate::TrainError;

/// What one prompt taught us.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRecord {
    /// The prompt's group key (its id, else its text).
    pub key: String,
    /// The text the router reads.
    pub text: String,
    /// A hash of the normalised text ([`switchyard_core::normalize_prompt`]): prompts with the same hash
    /// always fall in the same cross-validation fold.
    pub text_hash: u64,
    /// Index into [`Dataset::domains`], when the rows carry a domain.
    pub domain: Option<usize>,
    /// Index into [`Dataset::sources`]: the `source` most of the prompt's rows name (0, the unnamed source,
    /// when none does).
    pub source: usize,
    /// (model index, score) per outcome row.
    pub outcomes: Vec<(usize, f32)>,
    /// Each outcome row's weight, parallel to `outcomes`: 1, or for logged-bandit rows their clipped,
    /// self-normalised inverse propensity (see [`Dataset::from_logs`]).
    pub outcome_weights: Vec<f32>,
    /// (model, output tokens) per outcome row that has a token count.
    pub output_tokens: Vec<(usize, f32)>,
    /// (model a, model b, winner) per pairwise row.
    pub pairs: Vec<(usize, usize, Winner)>,
    /// The owner's split.
    pub split: Option<Split>,
}

impl PromptRecord {
    /// Per-model outcome targets in [0, 1]: the weighted mean score of the model's outcome rows (fractional
    /// scores stay fractional). Returns (model, target, weight) with weight = the rows' summed weights (their
    /// number, without logged-bandit rows). Pairwise rows are not here: they are preferences, not outcomes
    /// (see [`crate::Targets`]).
    pub fn targets(&self) -> Vec<(usize, f32, f32)> {
        let mut acc: BTreeMap<usize, (f32, f32)> = BTreeMap::new();
        for (i, &(m, s)) in self.outcomes.iter().enumerate() {
            let w = self.outcome_weights.get(i).copied().unwrap_or(1.0);
            let e = acc.entry(m).or_default();
            e.0 += w * s;
            e.1 += w;
        }
        acc.into_iter().filter(|(_, (_, n))| *n > 0.0).map(|(m, (sum, n))| (m, sum / n, n)).collect()
    }
}

/// Training data for one router.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Model names, in predictor output order.
    pub models: Vec<String>,
    /// Domain labels seen in the logs, sorted.
    pub domains: Vec<String>,
    /// Row sources seen in the logs: `""` (rows without a `source`) first, then the named ones, sorted.
    pub sources: Vec<String>,
    /// One record per distinct prompt, in first-seen order.
    pub prompts: Vec<PromptRecord>,
    /// Each model's cost, from the catalog's prices or the logs' observed costs.
    pub costs: Vec<ModelCost>,
    /// The input files and their digests.
    pub files: Vec<FileFingerprint>,
    /// Rows read and skipped.
    pub summary: ReadSummary,
    /// Rows left out because their split is "test".
    pub test_rows_excluded: usize,
    /// Logged-bandit rows: outcome rows with a `propensity`, weighted by its inverse.
    pub bandit_rows: usize,
}

#[derive(Default)]
struct CostStats {
    cost_sum: f64,
    cost_n: usize,
    out_tokens_sum: f64,
    out_tokens_n: usize,
}

/// Largest inverse-propensity weight of a logged-bandit row (propensities under 1/20 count as 1/20), so that a
/// rarely explored choice cannot dominate what is learned.
pub const MAX_IPS_WEIGHT: f64 = 20.0;

/// Which rows of the logs to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFilter {
    /// Every row except those marked `"split": "test"` (training).
    ExcludeTest,
    /// Only rows marked `"split": "test"`, or every row when none is marked (evaluation).
    TestOrAll,
}

impl Dataset {
    /// Reads `paths`, keeping rows per `filter`. With a catalog, every model in the logs must be in it and the
    /// router's models are the catalog's (in catalog order, those with evidence); without one, the models
    /// named in the logs (sorted), costed from their observed `cost_usd`.
    pub fn from_logs(
        paths: &[PathBuf],
        catalog: Option<&Catalog>,
        skip_bad_rows: bool,
        filter: RowFilter,
    ) -> Result<Self, TrainError> {
        let files = paths.iter().map(|p| fingerprint(p)).collect::<Result<Vec<_>, _>>()?;
        let mut builder = Builder::default();
        let summary = read_logs(paths, skip_bad_rows, |row| builder.add(row, filter))?;
        if filter == RowFilter::TestOrAll && builder.prompts.is_empty() {
            // No test rows anywhere: evaluate on everything.
            let mut all = Builder::default();
            read_logs(paths, skip_bad_rows, |row| all.add(row, RowFilter::ExcludeTest))?;
            builder = all;
        }
        builder.finish(catalog, files, summary)
    }

    /// The same data with every outcome weighted 1, as if the logs had no propensities: naive training on
    /// logged-bandit rows, for comparison.
    pub fn ignore_propensities(&mut self) {
        self.bandit_rows = 0;
        for p in &mut self.prompts {
            p.outcome_weights.iter_mut().for_each(|w| *w = 1.0);
        }
    }

    /// The same data with model `name`'s outcomes and output tokens kept only on the prompts whose
    /// normalised-text hash is in `keep`, and none of its pairwise rows (`profile add` reads outcomes only);
    /// the models, their order and their costs are unchanged. A retraining on this knows the model from an
    /// eval set alone, as `profile add` does. `None` when there is no such model.
    pub fn with_model_only_on(&self, name: &str, keep: &std::collections::HashSet<u64>) -> Option<Self> {
        let m = self.models.iter().position(|x| x == name)?;
        let mut out = self.clone();
        for p in &mut out.prompts {
            if keep.contains(&p.text_hash) {
                p.pairs.retain(|(a, b, _)| *a != m && *b != m);
            } else {
                p.drop_model(m);
            }
        }
        out.prompts.retain(PromptRecord::has_evidence);
        Some(out)
    }

    /// The same data without model `name`: its outcomes and the pairwise rows naming it are dropped, prompts
    /// left with no evidence are dropped, the other models keep their order. (Leave-one-out evaluation of
    /// `profile add` trains on this.) `None` when there is no such model.
    pub fn without_model(&self, name: &str) -> Option<Self> {
        let gone = self.models.iter().position(|m| m == name)?;
        let remap = |m: &mut usize| *m -= usize::from(*m > gone);
        let mut out = self.clone();
        for p in &mut out.prompts {
            p.drop_model(gone);
            p.outcomes.iter_mut().for_each(|(m, _)| remap(m));
            p.output_tokens.iter_mut().for_each(|(m, _)| remap(m));
            p.pairs.iter_mut().for_each(|(a, b, _)| {
                remap(a);
                remap(b);
            });
        }
        out.prompts.retain(PromptRecord::has_evidence);
        out.models.remove(gone);
        out.costs.remove(gone);
        Some(out)
    }
}

impl PromptRecord {
    /// Drops model `m`'s outcome rows (with their weights), output tokens and pairwise rows.
    fn drop_model(&mut self, m: usize) {
        let kept: Vec<usize> = (0..self.outcomes.len()).filter(|&i| self.outcomes[i].0 != m).collect();
        self.outcome_weights = kept.iter().map(|&i| self.outcome_weights.get(i).copied().unwrap_or(1.0)).collect();
        self.outcomes = kept.iter().map(|&i| self.outcomes[i]).collect();
        self.output_tokens.retain(|(t, _)| *t != m);
        self.pairs.retain(|(a, b, _)| *a != m && *b != m);
    }

    /// Whether any outcome or pairwise row is left.
    fn has_evidence(&self) -> bool {
        !self.outcomes.is_empty() || !self.pairs.is_empty()
    }
}

#[derive(Default)]
struct Builder {
    index: HashMap<String, usize>,
    /// Prompt records whose model indices are local (first-seen order), plus domain label counts.
    prompts: Vec<(PromptRecord, BTreeMap<String, usize>)>,
    /// Per prompt record, its rows' `source` counts.
    sources: Vec<BTreeMap<String, usize>>,
    local_models: Vec<String>,
    local_index: HashMap<String, usize>,
    costs: HashMap<String, CostStats>,
    test_rows_excluded: usize,
}

impl Builder {
    fn model(&mut self, name: &str) -> usize {
        if let Some(&i) = self.local_index.get(name) {
            return i;
        }
        self.local_models.push(name.to_string());
        self.local_index.insert(name.to_string(), self.local_models.len() - 1);
        self.local_models.len() - 1
    }

    fn add(&mut self, row: LabelledRow, filter: RowFilter) {
        let is_test = row.split == Some(Split::Test);
        match filter {
            RowFilter::ExcludeTest if is_test => {
                self.test_rows_excluded += 1;
                return;
            }
            RowFilter::TestOrAll if !is_test => return,
            _ => {}
        }
        let key = row.group_key().to_string();
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let record = PromptRecord {
                    key: key.clone(),
                    text_hash: text_hash(&row.prompt),
                    text: row.prompt.clone(),
                    domain: None,
                    source: 0,
                    outcomes: Vec::new(),
                    outcome_weights: Vec::new(),
                    output_tokens: Vec::new(),
                    pairs: Vec::new(),
                    split: row.split,
                };
                self.prompts.push((record, BTreeMap::new()));
                self.sources.push(BTreeMap::new());
                self.index.insert(key, self.prompts.len() - 1);
                self.prompts.len() - 1
            }
        };
        if let Some(d) = &row.domain {
            *self.prompts[i].1.entry(d.clone()).or_default() += 1;
        }
        *self.sources[i].entry(row.source.clone().unwrap_or_default()).or_default() += 1;
        match row.evidence {
            Evidence::Outcome(o) => {
                let stats = self.costs.entry(o.model.clone()).or_default();
                if let Some(c) = o.cost_usd {
                    stats.cost_sum += c;
                    stats.cost_n += 1;
                }
                if let Some(t) = o.output_tokens {
                    stats.out_tokens_sum += t as f64;
                    stats.out_tokens_n += 1;
                }
                let m = self.model(&o.model);
                self.prompts[i].0.outcomes.push((m, o.score as f32));
                // Raw inverse propensities for now (0 marks a row without one); normalised in `finish`.
                let inverse = o.propensity.map_or(0.0, |p| (1.0 / p).min(MAX_IPS_WEIGHT) as f32);
                self.prompts[i].0.outcome_weights.push(inverse);
                if let Some(t) = o.output_tokens {
                    self.prompts[i].0.output_tokens.push((m, t as f32));
                }
            }
            Evidence::Pairwise(p) => {
                let (a, b) = (self.model(&p.model_a), self.model(&p.model_b));
                self.prompts[i].0.pairs.push((a, b, p.winner));
            }
        }
    }

    fn finish(
        self,
        catalog: Option<&Catalog>,
        files: Vec<FileFingerprint>,
        summary: ReadSummary,
    ) -> Result<Dataset, TrainError> {
        if let Some(catalog) = catalog {
            catalog.check_known(self.local_models.iter().map(String::as_str))?;
        }
        let mut models: Vec<String> = match catalog {
            Some(c) => {
                c.names().into_iter().filter(|n| self.local_index.contains_key(*n)).map(str::to_string).collect()
            }
            None => self.local_models.clone(),
        };
        if catalog.is_none() {
            models.sort();
        }
        // local index -> final index
        let remap: Vec<usize> =
            self.local_models.iter().map(|name| models.iter().position(|m| m == name).unwrap_or(usize::MAX)).collect();
        let domain_names: BTreeSet<String> = self.prompts.iter().flat_map(|(_, d)| d.keys().cloned()).collect();
        let domains: Vec<String> = domain_names.into_iter().collect();
        let named: BTreeSet<String> = self.sources.iter().flat_map(|s| s.keys().cloned()).collect();
        let sources: Vec<String> =
            std::iter::once(String::new()).chain(named.into_iter().filter(|s| !s.is_empty())).collect();
        let prompts = self
            .prompts
            .into_iter()
            .zip(self.sources)
            .map(|((mut record, counts), source_counts)| {
                record.domain =
                    counts.iter().max_by_key(|(_, n)| **n).and_then(|(d, _)| domains.iter().position(|x| x == d));
                record.source = source_counts
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .and_then(|(s, _)| sources.iter().position(|x| x == s))
                    .unwrap_or(0);
                for (m, _) in record.outcomes.iter_mut().chain(record.output_tokens.iter_mut()) {
                    *m = remap[*m];
                }
                for (a, b, _) in &mut record.pairs {
                    (*a, *b) = (remap[*a], remap[*b]);
                }
                record
            })
            .collect();
        let mut prompts: Vec<PromptRecord> = prompts;
        // Logged-bandit rows: inverse propensities clipped at MAX_IPS_WEIGHT, self-normalised so that they
        // average 1 (their total weight is their count, as for any other rows).
        let (sum, n) = prompts
            .iter()
            .flat_map(|p| p.outcome_weights.iter())
            .filter(|w| **w > 0.0)
            .fold((0f64, 0usize), |(s, n), w| (s + f64::from(*w), n + 1));
        let scale = if n > 0 { n as f64 / sum } else { 1.0 };
        for p in &mut prompts {
            for w in &mut p.outcome_weights {
                *w = if *w > 0.0 { (f64::from(*w) * scale) as f32 } else { 1.0 };
            }
        }
        let costs = models.iter().map(|m| model_cost(m, catalog, self.costs.get(m))).collect::<Result<Vec<_>, _>>()?;
        Ok(Dataset {
            models,
            domains,
            sources,
            prompts,
            costs,
            files,
            summary,
            test_rows_excluded: self.test_rows_excluded,
            bandit_rows: n,
        })
    }
}

/// A model's cost: catalog prices × tokens when the catalog has the model and the logs give output tokens
/// (or no observed cost); else the mean observed `cost_usd`; else an error.
fn model_cost(model: &str, catalog: Option<&Catalog>, stats: Option<&CostStats>) -> Result<ModelCost, TrainError> {
    let mean_cost = stats.filter(|s| s.cost_n > 0).map(|s| s.cost_sum / s.cost_n as f64);
    let mean_out = stats.filter(|s| s.out_tokens_n > 0).map(|s| s.out_tokens_sum / s.out_tokens_n as f64);
    let card = catalog.and_then(|c| c.get(model));
    let source = if card.is_some() && (mean_out.is_some() || mean_cost.is_none()) {
        CostSource::Prices
    } else if mean_cost.is_some() {
        CostSource::Observed
    } else {
        return Err(TrainError::NoCost { model: model.to_string() });
    };
    Ok(ModelCost {
        model: model.to_string(),
        input_usd_per_mtok: card.map_or(0.0, |c| c.input_usd_per_mtok),
        output_usd_per_mtok: card.map_or(0.0, |c| c.output_usd_per_mtok),
        mean_output_tokens: mean_out.unwrap_or(0.0),
        mean_cost_usd: mean_cost,
        source,
    })
}

/// The first 8 bytes of the SHA-256 of a prompt's normalised text.
pub fn text_hash(text: &str) -> u64 {
    let digest = Sha256::digest(normalize_prompt(text).as_bytes());
    u64::from_be_bytes([digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7]])
}

/// SHA-256 of a file, streamed.
pub fn fingerprint(path: &Path) -> Result<FileFingerprint, TrainError> {
    let mut file = std::fs::File::open(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
    Ok(FileFingerprint { path: path.display().to_string(), sha256: hex(&hasher.finalize()) })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The distinct prompts of some logs (grouped by id, else text), in first-seen order, whatever their split
/// or models: what calibration and benchmarking replay a router on.
pub fn read_prompts(paths: &[PathBuf], skip_bad_rows: bool) -> Result<(Vec<String>, ReadSummary), TrainError> {
    let mut seen = std::collections::HashSet::new();
    let mut prompts = Vec::new();
    let summary = read_logs(paths, skip_bad_rows, |row| {
        if seen.insert(row.group_key().to_string()) {
            prompts.push(row.prompt);
        }
    })?;
    Ok((prompts, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_kept_only_on_some_prompts_loses_its_other_rows_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.jsonl");
        let outcome = |prompt: &str, model: &str, score: f32, propensity: Option<f32>| {
            let propensity = propensity.map_or(String::new(), |p| format!(r#", "propensity": {p}"#));
            format!(
                r#"{{"prompt": "{prompt}", "model": "{model}", "score": {score}, "output_tokens": 10, "cost_usd": 0.001{propensity}}}"#
            )
        };
        // Logged-bandit rows (with propensities) weigh differently from the others, so the weights kept must
        // be the kept rows' own.
        let rows = [
            outcome("What is 2 + 2?", "a", 1.0, None),
            outcome("What is 2 + 2?", "b", 0.0, Some(0.25)),
            outcome("Name a prime.", "b", 1.0, None),
            outcome("Name a prime.", "a", 1.0, Some(0.5)),
            outcome("Only b saw this.", "b", 0.0, None),
            r#"{"prompt": "Name a prime.", "model_a": "a", "model_b": "b", "winner": "model_a"}"#.to_string(),
        ];
        std::fs::write(&path, rows.join("\n") + "\n").unwrap();
        let data = Dataset::from_logs(std::slice::from_ref(&path), None, false, RowFilter::ExcludeTest).unwrap();
        let b = data.models.iter().position(|m| m == "b").unwrap();
        let keep: std::collections::HashSet<u64> = [text_hash("  what is 2 + 2? ")].into();
        let kept = data.with_model_only_on("b", &keep).unwrap();
        assert_eq!(kept.models, data.models);
        let find = |d: &Dataset, text: &str| d.prompts.iter().find(|p| p.text == text).cloned();
        // On the kept prompt b keeps its outcome; elsewhere its outcomes, tokens and preferences are gone.
        let sum = find(&kept, "What is 2 + 2?").unwrap();
        assert!(sum.outcomes.iter().any(|&(m, s)| m == b && s == 0.0));
        let prime = find(&kept, "Name a prime.").unwrap();
        assert!(prime.outcomes.iter().all(|&(m, _)| m != b) && prime.outcomes.len() == 1);
        let before = find(&data, "Name a prime.").unwrap();
        let a_weight = before.outcomes.iter().position(|&(m, _)| m != b).map(|i| before.outcome_weights[i]).unwrap();
        assert!((a_weight - 1.0).abs() > 0.1, "the bandit row's weight {a_weight} should differ from 1");
        assert_eq!(prime.outcome_weights, vec![a_weight]);
        assert!(prime.output_tokens.iter().all(|&(m, _)| m != b) && prime.pairs.is_empty());
        // A prompt with nothing left on it is dropped; an unknown model is `None`.
        assert!(find(&data, "Only b saw this.").is_some() && find(&kept, "Only b saw this.").is_none());
        assert!(data.with_model_only_on("c", &keep).is_none());
    }
}
