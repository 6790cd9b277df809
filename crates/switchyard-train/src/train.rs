//! One training run: embed the prompts (through the cache), hold out validation prompts, fit the heads and
//! every candidate predictor, measure them, keep the one with the lowest validation log loss, calibrate it.

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use sha2::{Digest, Sha256};
use switchyard_core::{
    CandidateMetrics, EncoderInfo, Heads, Knob, Manifest, Platt, Policy, Predictor, PredictorKind, Router,
    TrainingInfo, FORMAT_VERSION,
};
use switchyard_encoder::Encoder;

use crate::cache::EmbeddingCache;
use crate::dataset::{hex, Dataset, PromptRecord};
use crate::heads::{difficulty_targets, fit_complexity_head, fit_domain_head};
use crate::metrics::{auc, brier, ece, fit_platt, log_loss};
use crate::predictors::{fit_knn, fit_logistic, fit_mlp, predict_rows, MlpConfig, Targets};
use crate::TrainError;

/// L2 penalties tried for the logistic predictor (on the summed log loss, unit-length embeddings).
const LOGISTIC_ALPHAS: [f64; 4] = [0.3, 3.0, 30.0, 300.0];

/// Fewest prompts a router can be trained on.
pub const MIN_PROMPTS: usize = 20;

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Texts per encoder forward pass.
    pub batch_size: usize,
    /// Share of prompts held out for validation (model selection, early stopping, calibration).
    pub validation_share: f64,
    /// Seed of the validation split and the MLP's shuffling.
    pub seed: u64,
    /// Predictors to fit and compare.
    pub candidates: Vec<PredictorKind>,
    /// MLP settings.
    pub mlp: MlpConfig,
    /// k values tried by the kNN predictor.
    pub knn_ks: Vec<usize>,
    /// The policy stored as the router's default.
    pub default_policy: Policy,
    /// Show progress bars on stderr.
    pub progress: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            validation_share: 0.15,
            seed: 17,
            candidates: vec![PredictorKind::Logistic, PredictorKind::Mlp, PredictorKind::Knn],
            mlp: MlpConfig::default(),
            knn_ks: vec![10, 20, 40],
            default_policy: Policy::new(Knob::MinQuality(0.7)),
            progress: false,
        }
    }
}

/// Prompt embeddings and features for one side of the validation split.
struct Side {
    embeddings: Array2<f32>,
    features: Array2<f32>,
    targets: Targets,
}

/// Trains a router on `dataset`.
pub fn train(
    dataset: &Dataset,
    encoder: &dyn Encoder,
    cache: &mut EmbeddingCache,
    options: &TrainOptions,
) -> Result<Router, TrainError> {
    if dataset.prompts.len() < MIN_PROMPTS {
        return Err(TrainError::TooFewPrompts { found: dataset.prompts.len(), needed: MIN_PROMPTS });
    }
    let texts: Vec<&str> = dataset.prompts.iter().map(|p| p.text.as_str()).collect();
    let bar = progress_bar(options.progress, texts.len(), "embedding prompts");
    let vectors = cache.embed(encoder, &texts, options.batch_size, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();

    let is_val: Vec<bool> = dataset.prompts.iter().map(|p| in_validation(&p.key, options)).collect();
    let pick = |val: bool| -> Vec<usize> { (0..is_val.len()).filter(|&i| is_val[i] == val).collect() };
    let (train_idx, val_idx) = (pick(false), pick(true));
    if train_idx.len() < MIN_PROMPTS / 2 || val_idx.is_empty() {
        return Err(TrainError::TooFewPrompts { found: dataset.prompts.len(), needed: MIN_PROMPTS });
    }
    let dim = encoder.dim();
    let rows = |idx: &[usize]| Array2::from_shape_fn((idx.len(), dim), |(r, c)| vectors[idx[r]][c]);
    let (train_x, val_x) = (rows(&train_idx), rows(&val_idx));

    let labels: Vec<Option<usize>> = train_idx.iter().map(|&i| dataset.prompts[i].domain).collect();
    let domain = fit_domain_head(&train_x, &labels, dataset.domains.len())?;
    let train_prompts: Vec<&PromptRecord> = train_idx.iter().map(|&i| &dataset.prompts[i]).collect();
    let complexity = fit_complexity_head(&train_x, &difficulty_targets(&train_prompts, dataset.models.len()))?;
    let heads = Heads { domains: dataset.domains.clone(), domain, complexity };

    let side = |idx: &[usize], x: Array2<f32>| -> Side {
        let feats: Vec<Vec<f32>> = x.rows().into_iter().map(|r| heads.features(&r.to_vec())).collect();
        let nf = feats.first().map_or(0, Vec::len);
        let prompts: Vec<&PromptRecord> = idx.iter().map(|&i| &dataset.prompts[i]).collect();
        let targets = target_matrix(&prompts, dataset.models.len());
        Side { features: Array2::from_shape_fn((feats.len(), nf), |(r, c)| feats[r][c]), embeddings: x, targets }
    };
    let train_side = side(&train_idx, train_x);
    let val_side = side(&val_idx, val_x);

    let mut fitted: Vec<(Predictor, CandidateMetrics, Vec<Platt>)> = Vec::new();
    for &kind in &options.candidates {
        let predictor = fit_one(kind, &train_side, &val_side, options)?;
        fitted.push(evaluate(predictor, &val_side));
    }
    // The mean of every candidate's probabilities is a candidate too: members err in different places.
    if fitted.len() >= 2 {
        let members = fitted.iter().map(|f| f.0.clone()).collect();
        fitted.push(evaluate(Predictor::Ensemble(members), &val_side));
    }
    let best = (0..fitted.len())
        .min_by(|&a, &b| fitted[a].1.log_loss.total_cmp(&fitted[b].1.log_loss))
        .ok_or_else(|| TrainError::Fit("no predictor candidates were given".into()))?;
    let validation: Vec<CandidateMetrics> = fitted.iter().map(|f| f.1.clone()).collect();
    let (predictor, _, calibration) = fitted.swap_remove(best);
    let members: Vec<&Predictor> = match &predictor {
        Predictor::Ensemble(members) => members.iter().collect(),
        single => vec![single],
    };
    let hidden = members
        .iter()
        .find_map(|p| match p {
            Predictor::Mlp { hidden, .. } => Some(hidden.outputs),
            _ => None,
        })
        .unwrap_or(0);
    let members = match &predictor {
        Predictor::Ensemble(m) => m.iter().map(Predictor::kind).collect(),
        _ => Vec::new(),
    };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        encoder: EncoderInfo { id: encoder.id().to_string(), dim, max_tokens: encoder.max_tokens() },
        models: dataset.costs.clone(),
        domains: dataset.domains.clone(),
        predictor: predictor.kind(),
        hidden,
        members,
        default_policy: options.default_policy.clone(),
        training: training_info(dataset),
        validation,
        created_by: format!("switchyard {}", env!("CARGO_PKG_VERSION")),
    };
    Ok(Router { manifest, heads, predictor, calibration })
}

/// A candidate's validation metrics and its Platt calibration.
fn evaluate(predictor: Predictor, val: &Side) -> (Predictor, CandidateMetrics, Vec<Platt>) {
    let predicted = predict_rows(&predictor, &val.features, &val.embeddings);
    let pairs = val.targets.pairs(&predicted);
    let (calibration, ece_calibrated) = calibrate(&val.targets, &predicted);
    let metrics = CandidateMetrics {
        kind: predictor.kind(),
        log_loss: log_loss(&pairs),
        brier: brier(&pairs),
        ece_raw: ece(&pairs),
        ece: ece_calibrated,
        auc: auc(&pairs),
    };
    tracing::info!(
        "{}: validation log loss {:.4}, Brier {:.4}, AUC {:.3}, ECE {:.3} raw / {:.3} calibrated",
        metrics.kind,
        metrics.log_loss,
        metrics.brier,
        metrics.auc,
        metrics.ece_raw,
        metrics.ece
    );
    (predictor, metrics, calibration)
}

fn fit_one(kind: PredictorKind, train: &Side, val: &Side, options: &TrainOptions) -> Result<Predictor, TrainError> {
    match kind {
        PredictorKind::Ensemble => {
            Err(TrainError::Fit("an ensemble is built from the other candidates; list logistic, mlp or knn".into()))
        }
        PredictorKind::Logistic => {
            // The penalty is chosen by validation log loss.
            let models = train.targets.value.ncols();
            let bar = progress_bar(options.progress, models * LOGISTIC_ALPHAS.len(), "logistic regression per model");
            let mut best: Option<(f64, Predictor)> = None;
            for (i, &alpha) in LOGISTIC_ALPHAS.iter().enumerate() {
                let p = fit_logistic(&train.features, &train.targets, alpha, |m| {
                    bar.set_position((i * models + m) as u64)
                })?;
                let loss = log_loss(&val.targets.pairs(&predict_rows(&p, &val.features, &val.embeddings)));
                tracing::debug!("logistic alpha {alpha}: validation log loss {loss:.4}");
                if best.as_ref().is_none_or(|(b, _)| loss < *b) {
                    best = Some((loss, p));
                }
            }
            bar.finish_and_clear();
            best.map(|(_, p)| p).ok_or_else(|| TrainError::Fit("no logistic penalty to try".into()))
        }
        PredictorKind::Mlp => {
            let bar = progress_bar(options.progress, options.mlp.max_epochs, "MLP epochs");
            let p = fit_mlp(
                (&train.features, &train.targets),
                (&val.features, &val.targets),
                options.mlp,
                options.seed,
                |epoch, loss| {
                    bar.set_position(epoch as u64);
                    bar.set_message(format!("validation loss {loss:.4}"));
                },
            )?;
            bar.finish_and_clear();
            Ok(p)
        }
        PredictorKind::Knn => {
            fit_knn((&train.embeddings, &train.targets), (&val.embeddings, &val.targets), &options.knn_ks)
        }
    }
}

/// Per-model Platt scaling fitted on all validation rows, and the ECE of calibrated predictions measured
/// honestly by two-fold cross-fitting (fit on one half of the validation prompts, measure on the other).
/// When scaling does not lower that ECE below the raw ECE, the identity is kept (and the raw ECE reported).
fn calibrate(targets: &Targets, predicted: &Array2<f32>) -> (Vec<Platt>, f64) {
    let raw = ece(&targets.pairs(predicted));
    let (platt, cross) = platt_scaling(targets, predicted);
    if cross < raw {
        (platt, cross)
    } else {
        (vec![Platt::default(); targets.value.ncols()], raw)
    }
}

fn platt_scaling(targets: &Targets, predicted: &Array2<f32>) -> (Vec<Platt>, f64) {
    let models = targets.value.ncols();
    let calibration = (0..models).map(|m| fit_platt(&targets.model_pairs(predicted, m))).collect();
    let mut cross = Vec::new();
    for m in 0..models {
        let pairs = targets.model_pairs(predicted, m);
        let (even, odd): (Vec<_>, Vec<_>) = pairs.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let even: Vec<(f32, f32)> = even.into_iter().map(|(_, p)| *p).collect();
        let odd: Vec<(f32, f32)> = odd.into_iter().map(|(_, p)| *p).collect();
        for (fit_on, apply_to) in [(&even, &odd), (&odd, &even)] {
            let platt = fit_platt(fit_on);
            cross.extend(apply_to.iter().map(|&(p, s)| (platt.apply(p), s)));
        }
    }
    (calibration, ece(&cross))
}

fn target_matrix(prompts: &[&PromptRecord], models: usize) -> Targets {
    let mut value = Array2::zeros((prompts.len(), models));
    let mut weight = Array2::zeros((prompts.len(), models));
    for (r, p) in prompts.iter().enumerate() {
        for (m, t, w) in p.targets() {
            value[[r, m]] = t;
            weight[[r, m]] = w;
        }
    }
    Targets { value, weight }
}

fn in_validation(key: &str, options: &TrainOptions) -> bool {
    let digest = Sha256::digest(format!("{}:{key}", options.seed).as_bytes());
    let bucket = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) as f64 / f64::from(u32::MAX);
    bucket < options.validation_share
}

fn training_info(dataset: &Dataset) -> TrainingInfo {
    let mut hasher = Sha256::new();
    for f in &dataset.files {
        hasher.update(f.sha256.as_bytes());
    }
    TrainingInfo {
        files: dataset.files.clone(),
        fingerprint: hex(&hasher.finalize()),
        rows: dataset.summary.rows - dataset.test_rows_excluded,
        prompts: dataset.prompts.len(),
        skipped_rows: dataset.summary.skipped,
        test_rows_excluded: dataset.test_rows_excluded,
    }
}

/// Embeds `texts` through the cache, with a progress bar on stderr over the texts not yet cached.
pub fn embed_texts(
    cache: &mut EmbeddingCache,
    encoder: &dyn Encoder,
    texts: &[&str],
    batch_size: usize,
    progress: bool,
) -> Result<Vec<Vec<f32>>, TrainError> {
    let bar = progress_bar(progress, 0, "embedding prompts");
    let vectors = cache.embed(encoder, texts, batch_size, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    Ok(vectors)
}

fn progress_bar(show: bool, len: usize, message: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} eta {eta} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(message.to_string());
    bar
}
