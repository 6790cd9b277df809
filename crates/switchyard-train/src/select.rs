//! Choosing the predictor by grouped K-fold cross-validation: every candidate setting predicts each training
//! prompt from a fit on the other folds; candidates are ranked by the routing utility of those out-of-fold
//! predictions (AIQ, or APGR on two models), log loss breaking ties; the winner is refitted on every prompt.

use ndarray::Array2;
use switchyard_core::{CandidateMetrics, Predictor, PredictorKind};

use crate::folds::Folds;
use crate::metrics::{auc, brier, ece};
use crate::predictors::{
    fit_irt, fit_knn, fit_logistic, fit_mf, fit_mlp, knn_memory, memory_rows, nearest, predict_rows,
    select_rows as rows, Config, KnnConfig, Linking, MlpConfig,
};
use crate::targets::Targets;
use crate::utility::UtilityData;
use crate::TrainError;

/// Bootstrap resamples behind each candidate's utility interval.
const RESAMPLES: usize = 200;
/// Share of a fold's training prompts the MLP holds out for early stopping.
const MLP_INNER_SHARE: u64 = 10;

/// What cross-validation learns from.
pub struct CvData {
    /// Per prompt: the embedding followed by out-of-fold head outputs.
    pub features: Array2<f32>,
    /// Per prompt: the embedding.
    pub embeddings: Array2<f32>,
    /// Per prompt: the targets.
    pub targets: Targets,
    /// Per prompt and model: the expected cost of a call, USD.
    pub cost: Array2<f64>,
    /// Per prompt: its normalised text's hash (for the MLP's inner early-stopping split).
    pub text_hashes: Vec<u64>,
    /// The folds.
    pub folds: Folds,
    /// Per prompt: its source, and the published aggregates' anchors (for the IRT predictor).
    pub linking: Linking,
}

impl CvData {
    /// The same data for the prompts `keep` only (in that order), with their folds.
    pub fn subset(&self, keep: &[usize]) -> Self {
        Self {
            features: rows(&self.features, keep),
            embeddings: rows(&self.embeddings, keep),
            targets: self.targets.rows(keep),
            cost: self.cost.select(ndarray::Axis(0), keep),
            text_hashes: keep.iter().map(|&r| self.text_hashes[r]).collect(),
            folds: self.folds.subset(keep),
            linking: self.linking.rows(keep),
        }
    }
}

/// One candidate's out-of-fold predictions and metrics.
pub struct Evaluated {
    /// The setting (the members' settings for the ensemble).
    pub configs: Vec<Config>,
    /// Out-of-fold predictions, `[prompts, models]`.
    pub oof: Array2<f32>,
    /// Its cross-validated metrics.
    pub metrics: CandidateMetrics,
    /// For the MLP: the early-stopped epoch count in each fold.
    pub epochs: Vec<usize>,
}

impl Evaluated {
    /// Whether `self` ranks above `other`: higher utility, then lower log loss.
    fn beats(&self, other: &Evaluated) -> bool {
        let (a, b) = (&self.metrics, &other.metrics);
        match (&a.utility, &b.utility) {
            (Some(ua), Some(ub)) if (ua.value - ub.value).abs() > 1e-9 => ua.value > ub.value,
            _ => a.log_loss < b.log_loss,
        }
    }
}

fn metrics(kind: PredictorKind, config: String, data: &CvData, oof: &Array2<f32>, seed: u64) -> CandidateMetrics {
    let pairs = data.targets.pairs(oof);
    let utility = UtilityData { targets: &data.targets, cost: &data.cost }.measure(oof, RESAMPLES, seed);
    CandidateMetrics {
        kind,
        config,
        utility,
        log_loss: data.targets.loss(oof),
        brier: brier(&pairs),
        ece_raw: ece(&pairs),
        ece: ece(&pairs),
        auc: auc(&pairs),
    }
}

/// The rows a setting is fitted on.
struct FitRows<'a> {
    features: &'a Array2<f32>,
    embeddings: &'a Array2<f32>,
    targets: &'a Targets,
    /// The rows' sources and aggregate anchors.
    linking: &'a Linking,
    /// The rows a kNN memory may keep.
    memory: &'a [usize],
}

/// Fits one setting on some rows; `inner` holds out part of them for the MLP's early stopping (otherwise the
/// MLP runs `epochs`).
fn fit(
    config: &Config,
    on: &FitRows<'_>,
    inner: Option<&[bool]>,
    epochs: usize,
    seed: u64,
) -> Result<(Predictor, usize), TrainError> {
    let FitRows { features, embeddings, targets, .. } = *on;
    Ok(match *config {
        Config::Logistic { lambda } => (fit_logistic(features, targets, lambda)?, 0),
        Config::Mf { latent, lambda } => (fit_mf(features, targets, latent, lambda, seed)?, 0),
        Config::Irt(c) => (fit_irt(features, targets, on.linking, c, seed)?, 0),
        // fit_knn keeps at most MAX_KNN_MEMORY of these rows.
        Config::Knn(c) => (fit_knn(&rows(embeddings, on.memory), &targets.rows(on.memory), c), 0),
        Config::Mlp(c) => match inner {
            Some(held) => {
                let (val, train): (Vec<usize>, Vec<usize>) = (0..held.len()).partition(|&i| held[i]);
                if val.is_empty() || train.is_empty() {
                    fit_mlp((features, targets), None, c, seed)?
                } else {
                    fit_mlp(
                        (&rows(features, &train), &targets.rows(&train)),
                        Some((&rows(features, &val), &targets.rows(&val))),
                        c,
                        seed,
                    )?
                }
            }
            None => fit_mlp((features, targets), None, MlpConfig { max_epochs: epochs.max(1), ..c }, seed)?,
        },
    })
}

/// Cross-validates every setting in `configs` (and the ensemble of each kind's best, when there are two or
/// more kinds). `progress` is called after each fit with (done, total).
pub fn cross_validate(
    data: &CvData,
    configs: &[Config],
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Evaluated>, TrainError> {
    let (n, models) = data.targets.value.dim();
    let k = data.folds.k;
    let knn: Vec<KnnConfig> = configs
        .iter()
        .filter_map(|c| match c {
            Config::Knn(c) => Some(*c),
            _ => None,
        })
        .collect();
    let others: Vec<Config> = configs.iter().filter(|c| !matches!(c, Config::Knn(_))).copied().collect();
    let mut oof = vec![Array2::<f32>::zeros((n, models)); others.len() + knn.len()];
    let mut epochs = vec![Vec::new(); others.len()];
    let total = k * (others.len() + usize::from(!knn.is_empty()));
    let mut done = 0;
    for f in 0..k {
        let (train, val) = data.folds.split(f);
        let (xt, et, tt) = (rows(&data.features, &train), rows(&data.embeddings, &train), data.targets.rows(&train));
        let lt = data.linking.rows(&train);
        let (xv, ev) = (rows(&data.features, &val), rows(&data.embeddings, &val));
        let inner: Vec<bool> = train
            .iter()
            .map(|&i| {
                (data.text_hashes[i] ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 100 < MLP_INNER_SHARE
            })
            .collect();
        let all_train: Vec<usize> = (0..train.len()).collect();
        let on = FitRows { features: &xt, embeddings: &et, targets: &tt, linking: &lt, memory: &all_train };
        for (c, config) in others.iter().enumerate() {
            let started = std::time::Instant::now();
            let (predictor, e) = fit(config, &on, Some(&inner), 0, seed)?;
            tracing::debug!(
                "fold {f}: {} ({config}) fitted in {:.1} s",
                config.kind(),
                started.elapsed().as_secs_f64()
            );
            if e > 0 {
                epochs[c].push(e);
            }
            let predicted = predict_rows(&predictor, &xv, &ev);
            for (r, &i) in val.iter().enumerate() {
                oof[c].row_mut(i).assign(&predicted.row(r));
            }
            done += 1;
            progress(done, total);
        }
        if !knn.is_empty() {
            knn_fold(&knn, (&et, &tt), &ev, &val, &mut oof[others.len()..])?;
            done += 1;
            progress(done, total);
        }
    }
    let all: Vec<Config> = others.iter().copied().chain(knn.into_iter().map(Config::Knn)).collect();
    let mut epochs = epochs.into_iter().chain(std::iter::repeat(Vec::new()));
    let mut evaluated: Vec<Evaluated> = all
        .into_iter()
        .zip(oof)
        .map(|(config, oof)| {
            let metrics = metrics(config.kind(), config.to_string(), data, &oof, seed);
            Evaluated { configs: vec![config], oof, metrics, epochs: epochs.next().unwrap_or_default() }
        })
        .collect();
    if let Some(ensemble) = ensemble_of_bests(data, &evaluated, seed) {
        evaluated.push(ensemble);
    }
    Ok(evaluated)
}

/// One fold of every kNN setting: the memory the deployed predictor would keep from the fold's training rows
/// (`train`), its out-of-fold predictions on the validation rows written into `oof` (one per setting).
fn knn_fold(
    knn: &[KnnConfig],
    (et, tt): (&Array2<f32>, &Targets),
    ev: &Array2<f32>,
    val: &[usize],
    oof: &mut [Array2<f32>],
) -> Result<(), TrainError> {
    let Some(max_k) = knn.iter().map(|c| c.k).max() else { return Ok(()) };
    let keep = memory_rows(et.nrows());
    let kept;
    let (et, tt) = if keep.len() < et.nrows() {
        kept = (rows(et, &keep), tt.rows(&keep));
        (&kept.0, &kept.1)
    } else {
        (et, tt)
    };
    let neighbours = nearest(ev, et, max_k)?;
    let mut memory = knn_memory(et, tt, knn[0]);
    for (c, config) in knn.iter().enumerate() {
        (memory.k, memory.alpha, memory.power) = (config.k, config.alpha, config.power);
        for (r, &i) in val.iter().enumerate() {
            let p = memory.predict_from(&neighbours[r]);
            oof[c].row_mut(i).assign(&ndarray::Array1::from(p));
        }
    }
    Ok(())
}

/// The ensemble of each kind's best setting (its mean probability), when there are two kinds or more.
fn ensemble_of_bests(data: &CvData, evaluated: &[Evaluated], seed: u64) -> Option<Evaluated> {
    let (n, models) = data.targets.value.dim();
    // The ensemble: the mean probability of each kind's best setting.
    let mut best_of_kind: Vec<usize> = Vec::new();
    for i in 0..evaluated.len() {
        let kind = evaluated[i].metrics.kind;
        match best_of_kind.iter().position(|&b| evaluated[b].metrics.kind == kind) {
            Some(at) if evaluated[i].beats(&evaluated[best_of_kind[at]]) => best_of_kind[at] = i,
            Some(_) => {}
            None => best_of_kind.push(i),
        }
    }
    if best_of_kind.len() < 2 {
        return None;
    }
    {
        let mut mean = Array2::<f32>::zeros((n, models));
        for &b in &best_of_kind {
            mean += &evaluated[b].oof;
        }
        mean /= best_of_kind.len() as f32;
        let configs: Vec<Config> = best_of_kind.iter().map(|&b| evaluated[b].configs[0]).collect();
        let describe = configs.iter().map(|c| format!("{}({c})", c.kind())).collect::<Vec<_>>().join(" + ");
        let metrics = metrics(PredictorKind::Ensemble, describe, data, &mean, seed);
        let epochs = best_of_kind.iter().flat_map(|&b| evaluated[b].epochs.clone()).collect();
        Some(Evaluated { configs, oof: mean, metrics, epochs })
    }
}

/// The index of the best candidate.
pub fn best(evaluated: &[Evaluated]) -> Option<usize> {
    (0..evaluated.len()).reduce(|best, i| if evaluated[i].beats(&evaluated[best]) { i } else { best })
}

/// Refits a candidate on every prompt. The MLP runs the median of its folds' early-stopped epochs; when the
/// choice was made on a sample (`memory`, the cross-validation sample, is smaller than the data), the epochs
/// shrink in proportion, so the refit takes about as many gradient steps as the early-stopped fits did
/// rather than thirty times as many on a thirty times larger set. A kNN memory keeps only the prompts
/// `memory`, and at most [`crate::MAX_KNN_MEMORY`] of those, so that a decision's cost does not grow with
/// the logs.
pub fn refit(chosen: &Evaluated, data: &CvData, memory: &[usize], seed: u64) -> Result<Predictor, TrainError> {
    let mut epochs = chosen.epochs.clone();
    epochs.sort_unstable();
    let mut median = epochs.get(epochs.len() / 2).copied().unwrap_or(1);
    let rows = data.features.nrows();
    if memory.len() < rows {
        median = (median * memory.len()).div_ceil(rows).max(1);
    }
    let on = FitRows {
        features: &data.features,
        embeddings: &data.embeddings,
        targets: &data.targets,
        linking: &data.linking,
        memory,
    };
    let members = chosen
        .configs
        .iter()
        .map(|c| fit(c, &on, None, median, seed).map(|(p, _)| p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match <[Predictor; 1]>::try_from(members) {
        Ok([single]) => single,
        Err(members) => Predictor::Ensemble(members),
    })
}
