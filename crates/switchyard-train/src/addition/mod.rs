//! Adding a model to a trained router from a small labelled eval set, or from published per-domain
//! accuracies, without retraining anything else (`switchyard profile add` / `update`).
//!
//! The new model is fitted in the router's shared representation, with everything the router already learned
//! held fixed:
//! - logistic predictor: a logistic row over the router's features;
//! - MLP: a row of the output layer over the (fixed) hidden units;
//! - matrix factorisation / IRT: the model's vector and bias over the prompts' (fixed) latent vectors, against
//!   the prompts' (fixed) difficulty, as UniRoute and IRT routers do;
//! - kNN: the model's estimated score on each stored prompt, from the eval prompts nearest to it (per-region
//!   accuracy);
//! - an ensemble: each member's own.
//!
//! Each row is shrunk toward the mean of the existing models' rows (what is hard for every model is likely
//! hard for this one), with the penalty chosen by grouped cross-validation on the eval prompts. The model's
//! per-domain priors are its difficulty-adjusted eval accuracy per domain (or the published figures), and its
//! evidence is the eval rows per domain, so the router leans on the prior wherever the eval set says little.

mod fit;
mod priors;
mod row;
mod select;
mod widen;

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::Array2;
use switchyard_core::{
    read_logs, AddedProfile, CostSource, Evidence, FileFingerprint, ModelCost, NewModel, ProfileBasis, Router, Split,
};

use crate::dataset::{fingerprint, text_hash};
use crate::TrainError;

pub use fit::ProfileFit;
pub use select::{representative, strata, Stratum};

/// Fewest distinct eval prompts a model can be added from.
pub const MIN_PROFILE_PROMPTS: usize = 50;

/// One eval prompt: the outcomes of the model being added on it.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPrompt {
    /// The text the router reads.
    pub text: String,
    /// Hash of the normalised text (the grouping key).
    pub text_hash: u64,
    /// The row's domain label, when given.
    pub domain: Option<String>,
    /// Sum of the model's scores on it.
    pub score_sum: f32,
    /// The model's outcome rows on it.
    pub rows: f32,
    /// Output tokens of the rows that report them.
    pub output_tokens: Vec<f32>,
}

impl EvalPrompt {
    /// The mean score.
    pub fn score(&self) -> f32 {
        self.score_sum / self.rows.max(1.0)
    }
}

/// One model's outcomes read from eval logs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvalRows {
    /// The model.
    pub model: String,
    /// Its prompts, in first-seen order, grouped by normalised text.
    pub prompts: Vec<EvalPrompt>,
    /// Its outcome rows.
    pub rows: usize,
    /// Rows about other models, passed over.
    pub other_rows: usize,
    /// Pairwise rows naming the model (preferences carry no outcome, so they are not used).
    pub pairwise_rows: usize,
    /// Rows marked `"split": "test"`, left out.
    pub test_rows: usize,
    /// Mean observed `cost_usd` of its rows, when they carry it.
    pub mean_cost_usd: Option<f64>,
    /// The files, with their digests.
    pub files: Vec<FileFingerprint>,
}

impl EvalRows {
    /// Reads `model`'s outcome rows from `paths` (rows marked `"split": "test"` are left out, as training
    /// leaves them out).
    pub fn read(paths: &[PathBuf], model: &str, skip_bad_rows: bool) -> Result<Self, TrainError> {
        let files = paths.iter().map(|p| fingerprint(p)).collect::<Result<Vec<_>, _>>()?;
        let mut out = Self { model: model.to_string(), files, ..Self::default() };
        let mut index: HashMap<u64, usize> = HashMap::new();
        let (mut cost_sum, mut cost_n) = (0.0, 0usize);
        read_logs(paths, skip_bad_rows, |row| {
            let outcome = match &row.evidence {
                Evidence::Outcome(o) if o.model == model => o,
                Evidence::Pairwise(p) if p.model_a == model || p.model_b == model => {
                    out.pairwise_rows += 1;
                    return;
                }
                _ => {
                    out.other_rows += 1;
                    return;
                }
            };
            if row.split == Some(Split::Test) {
                out.test_rows += 1;
                return;
            }
            out.rows += 1;
            if let Some(c) = outcome.cost_usd {
                cost_sum += c;
                cost_n += 1;
            }
            let hash = text_hash(&row.prompt);
            let i = *index.entry(hash).or_insert_with(|| {
                out.prompts.push(EvalPrompt {
                    text: row.prompt.clone(),
                    text_hash: hash,
                    domain: row.domain.clone(),
                    score_sum: 0.0,
                    rows: 0.0,
                    output_tokens: Vec::new(),
                });
                out.prompts.len() - 1
            });
            let p = &mut out.prompts[i];
            p.score_sum += outcome.score as f32;
            p.rows += 1.0;
            if let Some(t) = outcome.output_tokens {
                p.output_tokens.push(t as f32);
            }
        })?;
        out.mean_cost_usd = (cost_n > 0).then(|| cost_sum / cost_n as f64);
        Ok(out)
    }

    /// Fails unless the model has outcomes on at least [`MIN_PROFILE_PROMPTS`] distinct prompts.
    pub fn check_enough(&self) -> Result<(), TrainError> {
        if self.prompts.len() >= MIN_PROFILE_PROMPTS {
            return Ok(());
        }
        Err(TrainError::Profile(format!(
            "{} has outcomes on only {} distinct prompts in the eval logs ({} rows; {} about other models, {} \
             pairwise, {} marked test); at least {MIN_PROFILE_PROMPTS} are needed, or give published accuracies \
             with --prior instead",
            self.model,
            self.prompts.len(),
            self.rows,
            self.other_rows,
            self.pairwise_rows,
            self.test_rows
        )))
    }

    /// Keeps the prompts at `indices` (in that order).
    pub fn keep(&mut self, indices: &[usize]) {
        self.prompts = indices.iter().filter_map(|&i| self.prompts.get(i).cloned()).collect();
        self.rows = self.prompts.iter().map(|p| p.rows as usize).sum();
    }

    /// Keeps at most `n` prompts, chosen by a seeded hash of their text (the same for the same seed).
    pub fn sample(&mut self, n: usize, seed: u64) {
        if self.prompts.len() <= n {
            return;
        }
        let key = |h: u64| (h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let mut order: Vec<usize> = (0..self.prompts.len()).collect();
        order.sort_by_key(|&i| key(self.prompts[i].text_hash));
        order.truncate(n);
        order.sort_unstable();
        self.prompts = order.into_iter().map(|i| self.prompts[i].clone()).collect();
        self.rows = self.prompts.iter().map(|p| p.rows as usize).sum();
    }
}

/// Prices of the model being added.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// USD per million input tokens.
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
}

/// What a model is added from.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRequest<'a> {
    /// The model's name.
    pub model: &'a str,
    /// Its eval outcomes and the prompts' embeddings (one row per prompt, in order); `None` for a prior-only
    /// model.
    pub eval: Option<(&'a EvalRows, &'a Array2<f32>)>,
    /// Published P(success) per domain (`--prior`), each in [0, 1].
    pub priors: &'a [(String, f64)],
    /// List prices; without them, the eval rows' mean `cost_usd`.
    pub prices: Option<Prices>,
    /// Mean output tokens to assume when the eval rows report none.
    pub mean_output_tokens: Option<f64>,
    /// Seed of the cross-validation folds.
    pub seed: u64,
}

/// Fits `request`'s model into `router`'s representation. The router is not changed: add the result with
/// [`Router::add_model`].
pub fn fit_profile(router: &Router, request: &ProfileRequest<'_>) -> Result<(NewModel, ProfileFit), TrainError> {
    let domains = &router.manifest.domains;
    for (domain, p) in request.priors {
        if !(0.0..=1.0).contains(p) || p.is_nan() {
            return Err(TrainError::Profile(format!(
                "the prior for {domain:?} is {p}: a P(success) must lie in [0, 1] (give 0.82 for 82%)"
            )));
        }
        if !domains.is_empty() && !domains.contains(domain) && domain != "all" {
            return Err(TrainError::Profile(format!(
                "the router has no domain {domain:?}; its domains are {} (or give \"all\" for every domain)",
                domains.join(", ")
            )));
        }
    }
    if let Some((eval, embeddings)) = request.eval {
        eval.check_enough()?;
        if embeddings.nrows() != eval.prompts.len() || embeddings.ncols() != router.manifest.encoder.dim {
            return Err(TrainError::Fit(format!(
                "{} embeddings of width {} for {} prompts and a {}-wide encoder",
                embeddings.nrows(),
                embeddings.ncols(),
                eval.prompts.len(),
                router.manifest.encoder.dim
            )));
        }
    } else if request.priors.is_empty() {
        return Err(TrainError::Profile(
            "nothing to add the model from: give its eval rows (--logs) or published accuracies (--prior)".into(),
        ));
    }
    let cost = model_cost(request)?;
    let (head, fitted) = match request.eval {
        Some((eval, embeddings)) => fit::fit_heads(router, eval, embeddings, request.seed)?,
        None => (fit::prior_only_head(router, request.priors), ProfileFit::default()),
    };
    let (priors, evidence) = priors::priors_and_evidence(router, request, &fitted)?;
    let length = router.lengths.as_ref().map(|layer| priors::length_row(layer, &fitted, &cost));
    let basis = match (request.eval.is_some(), request.priors.is_empty()) {
        (true, true) => ProfileBasis::Eval,
        (true, false) => ProfileBasis::EvalAndPrior,
        (false, _) => ProfileBasis::Prior,
    };
    let eval = request.eval.map(|(e, _)| e);
    let profile = AddedProfile {
        model: request.model.to_string(),
        basis,
        rows: eval.map_or(0, |e| e.rows),
        prompts: eval.map_or(0, |e| e.prompts.len()),
        files: eval.map(|e| e.files.clone()).unwrap_or_default(),
        priors: request.priors.to_vec(),
        cv_log_loss: fitted.cv_log_loss,
        constant_log_loss: fitted.constant_log_loss,
        widened: widened_members(&head),
        added_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    let model = NewModel { cost, head, calibration: fitted.calibration, priors, evidence, length, profile };
    Ok((model, fitted))
}

/// The members of `head` (0 for a single predictor) that are widened.
fn widened_members(head: &switchyard_core::ModelHead) -> Vec<usize> {
    use switchyard_core::ModelHead;
    match head {
        ModelHead::Widened { .. } => vec![0],
        ModelHead::Ensemble(heads) => {
            heads.iter().enumerate().filter(|(_, h)| matches!(h, ModelHead::Widened { .. })).map(|(i, _)| i).collect()
        }
        _ => Vec::new(),
    }
}

/// The new model's cost: list prices when given, else the eval rows' mean observed cost.
fn model_cost(request: &ProfileRequest<'_>) -> Result<ModelCost, TrainError> {
    let eval = request.eval.map(|(e, _)| e);
    let tokens: Vec<f32> =
        eval.map(|e| e.prompts.iter().flat_map(|p| p.output_tokens.clone()).collect()).unwrap_or_default();
    let mean_output_tokens = if tokens.is_empty() {
        request.mean_output_tokens
    } else {
        Some(tokens.iter().map(|&t| f64::from(t)).sum::<f64>() / tokens.len() as f64)
    };
    if let Some(prices) = request.prices {
        for (what, v) in [("input", prices.input_usd_per_mtok), ("output", prices.output_usd_per_mtok)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(TrainError::Profile(format!(
                    "the {what} price {v} is not a price in USD per million tokens"
                )));
            }
        }
        let Some(mean_output_tokens) = mean_output_tokens else {
            return Err(TrainError::Profile(format!(
                "{}'s cost needs its typical output length: the eval rows report no output_tokens, so give \
                 --mean-output-tokens",
                request.model
            )));
        };
        return Ok(ModelCost {
            model: request.model.to_string(),
            input_usd_per_mtok: prices.input_usd_per_mtok,
            output_usd_per_mtok: prices.output_usd_per_mtok,
            mean_output_tokens,
            mean_cost_usd: eval.and_then(|e| e.mean_cost_usd),
            source: CostSource::Prices,
        });
    }
    match eval.and_then(|e| e.mean_cost_usd) {
        Some(mean) => Ok(ModelCost {
            model: request.model.to_string(),
            input_usd_per_mtok: 0.0,
            output_usd_per_mtok: 0.0,
            mean_output_tokens: mean_output_tokens.unwrap_or(0.0),
            mean_cost_usd: Some(mean),
            source: CostSource::Observed,
        }),
        None => Err(TrainError::NoCost { model: request.model.to_string() }),
    }
}

/// The eval prompts' embeddings, one row per prompt (through the cache).
pub fn embed_eval(
    cache: &mut crate::EmbeddingCache,
    encoder: &dyn switchyard_encoder::Encoder,
    eval: &EvalRows,
    progress: bool,
) -> Result<Array2<f32>, TrainError> {
    let texts: Vec<&str> = eval.prompts.iter().map(|p| p.text.as_str()).collect();
    let vectors = crate::embed_texts(cache, encoder, &texts, 32, progress)?;
    let dim = encoder.dim();
    Ok(Array2::from_shape_fn((vectors.len(), dim), |(r, c)| vectors[r][c]))
}
