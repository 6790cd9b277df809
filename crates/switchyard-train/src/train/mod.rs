//! One training run: embed the prompts (through the cache), split them into K folds by normalised text,
//! cross-fit the heads, cross-validate every candidate predictor by routing utility, refit the winner on
//! every prompt, and calibrate it on its out-of-fold predictions.

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use sha2::{Digest, Sha256};
use switchyard_core::{
    CandidateMetrics, Dense, EncoderInfo, Knob, LengthReport, Manifest, Policy, Predictor, PredictorKind, Router,
    TrainingInfo, FORMAT_VERSION,
};
use switchyard_encoder::Encoder;

use crate::cache::EmbeddingCache;
use crate::complexity_labels::ComplexityLabels;
use crate::dataset::{hex, Dataset, PromptRecord};
use crate::folds::{sample_groups, Folds};
use crate::heads::cross_fit_heads;
use crate::lengths::{fit_lengths, LengthTargets, OutputLengths, MIN_LENGTH_PROMPTS};
use crate::predictors::MlpConfig;
use crate::profiles::Profiles;
use crate::scaling::{calibrate, coherent_priors};
use crate::select::{best, refit, CvData};
use crate::TrainError;

mod inputs;
use inputs::{
    check_inputs, cross_validate_candidates, cv_data, embed_labels, embed_prompts, familiarity, linking, membership,
    selection_sample,
};

/// Total weight of complexity-labelled prompts, as a share of the logged prompts.
const LABEL_SHARE: f64 = 0.25;

/// Fewest prompts a router can be trained on.
pub const MIN_PROMPTS: usize = 20;
/// Most prompts that choosing the predictor works on, by default ([`TrainOptions::cv_sample`]). Larger logs
/// are cross-validated on a sample of at most this many (whole text groups, [`crate::folds::sample_groups`]):
/// the heads, the output-length head, the candidates' cross-validation and the calibration use the sample,
/// and the chosen predictor is refitted on every prompt. It equals [`crate::MAX_KNN_MEMORY`], so a kNN memory
/// keeps the whole sample.
pub const SELECTION_PROMPTS: usize = crate::predictors::MAX_KNN_MEMORY;

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Texts per encoder forward pass.
    pub batch_size: usize,
    /// Cross-validation folds (grouped by normalised prompt text).
    pub folds: usize,
    /// Seed of the folds, the MLP's and MF's initialisation and shuffling, and the bootstrap.
    pub seed: u64,
    /// Predictor kinds to cross-validate (each over its grid of settings).
    pub candidates: Vec<PredictorKind>,
    /// MLP settings.
    pub mlp: MlpConfig,
    /// The policy stored as the router's default.
    pub default_policy: Policy,
    /// Published aggregate accuracies, priors for domains the logs say little about.
    pub profiles: Option<Profiles>,
    /// Whether to predict output lengths per prompt.
    pub output_lengths: OutputLengths,
    /// Prompts with a judged complexity but no outcomes, for the complexity head.
    pub complexity_labels: Option<ComplexityLabels>,
    /// Most prompts the predictor is chosen on ([`SELECTION_PROMPTS`] by default): larger logs are
    /// cross-validated on a sample of this many, and the chosen predictor is refitted on every prompt.
    pub cv_sample: usize,
    /// Show progress bars on stderr.
    pub progress: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            folds: 5,
            seed: 17,
            candidates: vec![
                PredictorKind::Logistic,
                PredictorKind::Mf,
                PredictorKind::Mlp,
                PredictorKind::Knn,
                PredictorKind::Irt,
            ],
            mlp: MlpConfig::default(),
            default_policy: Policy::new(Knob::MinQuality(0.7)),
            profiles: None,
            output_lengths: OutputLengths::Auto,
            complexity_labels: None,
            cv_sample: SELECTION_PROMPTS,
            progress: false,
        }
    }
}

/// Trains a router on `dataset`.
pub fn train(
    dataset: &Dataset,
    encoder: &dyn Encoder,
    cache: &mut EmbeddingCache,
    options: &TrainOptions,
) -> Result<Router, TrainError> {
    check_inputs(dataset, options)?;
    let hashes: Vec<u64> = dataset.prompts.iter().map(|p| p.text_hash).collect();
    let folds = Folds::grouped(&hashes, options.folds, options.seed)?;
    let vectors = embed_prompts(dataset, encoder, cache, options)?;

    let started = std::time::Instant::now();
    let dim = encoder.dim();
    let embeddings = Array2::from_shape_fn((vectors.len(), dim), |(r, c)| vectors[r][c]);
    drop(vectors);
    let sample = selection_sample(&hashes, options);
    let prompts: Vec<&PromptRecord> = dataset.prompts.iter().collect();
    let models = dataset.models.len();
    let labelled = embed_labels(encoder, cache, options)?;
    // The labels' share is of the prompts the heads are fitted on: the sample.
    let weighted = labelled.as_ref().map(|(x, targets)| repeat_labels(x, targets, sample.len()));
    let (heads, features) = cross_fit_heads(
        &embeddings,
        &prompts,
        &dataset.domains,
        models,
        &folds,
        &sample,
        weighted.as_ref().map(|(x, t)| (x, t.as_slice())),
    )?;
    tracing::info!("heads cross-fitted in {:.1} s", started.elapsed().as_secs_f64());
    let domains = dataset.domains.len();
    let domain_probs = features.slice(ndarray::s![.., dim..dim + domains]).to_owned();
    let membership = membership(&prompts, &domain_probs);
    let linking = linking(dataset, &prompts, options, &membership);
    let full = cv_data(dataset, &prompts, (features, embeddings), hashes, folds, linking);
    let sampled = (sample.len() < full.text_hashes.len()).then(|| full.subset(&sample));
    // What the choice is made on: every prompt, or the sample.
    let selection = sampled.as_ref().unwrap_or(&full);

    let lengths = output_lengths(dataset, &full, options)?;
    let evaluated = cross_validate_candidates(selection, options)?;
    tracing::info!("candidates cross-validated at {:.1} s", started.elapsed().as_secs_f64());
    for e in &evaluated {
        log_candidate(&e.metrics);
    }
    let mut familiarity =
        familiarity(dataset, &prompts, &full, (&domain_probs, &membership), labelled.as_ref(), options)?;
    let chosen = best(&evaluated).ok_or_else(|| TrainError::Fit("no predictor candidates were fitted".into()))?;
    let predictor = refit(&evaluated[chosen], &full, &sample, options.seed)?;
    tracing::info!(
        "chosen predictor refitted on all {} prompts at {:.1} s",
        prompts.len(),
        started.elapsed().as_secs_f64()
    );
    // The IRT predictor puts every model on one scale, and its estimates must stay coherent across models:
    // one Platt scaling for all of them (a monotone map of every logit, which keeps their order), and
    // priors read off the predictor itself rather than from each model's own evidence.
    let pooled = matches!(predictor, Predictor::Irt(_));
    let (calibration, ece_calibrated) = calibrate(&selection.targets, &evaluated[chosen].oof, pooled);
    if let (Predictor::Irt(irt), Some(platt)) = (&predictor, calibration.first()) {
        coherent_priors(&mut familiarity, irt, *platt, &full.features, &membership);
    }
    let mut validation: Vec<CandidateMetrics> = evaluated.iter().map(|e| e.metrics.clone()).collect();
    validation[chosen].ece = ece_calibrated;
    let validation = rank(validation, chosen);

    let info =
        TrainingInfo { cv_sample: (sample.len() < prompts.len()).then_some(sample.len()), ..training_info(dataset) };
    let manifest =
        manifest(dataset, encoder, &predictor, options, info, validation, lengths.as_ref().map(|l| l.1.clone()));
    Ok(Router {
        manifest,
        heads,
        predictor,
        calibration,
        familiarity: Some(familiarity),
        lengths: lengths.map(|l| l.0),
    })
}

/// The router's manifest: everything that is not a weight.
fn manifest(
    dataset: &Dataset,
    encoder: &dyn Encoder,
    predictor: &Predictor,
    options: &TrainOptions,
    training: TrainingInfo,
    validation: Vec<CandidateMetrics>,
    output_lengths: Option<LengthReport>,
) -> Manifest {
    let find = |f: fn(&Predictor) -> Option<usize>| match predictor {
        Predictor::Ensemble(members) => members.iter().find_map(f).unwrap_or(0),
        single => f(single).unwrap_or(0),
    };
    let hidden = find(|p| match p {
        Predictor::Mlp { hidden, .. } => Some(hidden.outputs),
        _ => None,
    });
    let latent = find(|p| match p {
        Predictor::Mf(mf) => Some(mf.latent()),
        _ => None,
    });
    let members = match predictor {
        Predictor::Ensemble(m) => m.iter().map(Predictor::kind).collect(),
        _ => Vec::new(),
    };
    Manifest {
        format_version: FORMAT_VERSION,
        encoder: EncoderInfo {
            id: encoder.id().to_string(),
            dim: encoder.dim(),
            max_tokens: encoder.max_tokens(),
            files_sha256: encoder.files_digest().map(str::to_string),
            precision: encoder.precision().manifest_name(),
        },
        models: dataset.costs.clone(),
        domains: dataset.domains.clone(),
        predictor: predictor.kind(),
        hidden,
        latent,
        members,
        default_policy: options.default_policy.clone(),
        training,
        validation,
        output_lengths,
        created_by: format!("switchyard {}", env!("CARGO_PKG_VERSION")),
        profiles: Vec::new(),
        weights_sha256: None,
    }
}

/// The complexity-labelled prompts `x` and their `targets`, each repeated so that together they weigh
/// [`LABEL_SHARE`] of the `logged` prompts (each at least once): a label speaks for a prompt's difficulty
/// directly, and everyday prompts are a large part of real traffic, so a few hundred labels must not drown
/// among thousands of benchmark items.
fn repeat_labels(x: &Array2<f32>, targets: &[f32], logged: usize) -> (Array2<f32>, Vec<f32>) {
    let n = x.nrows();
    let copies = ((LABEL_SHARE * logged as f64 / n.max(1) as f64).round() as usize).max(1);
    tracing::info!("{n} complexity-labelled prompts, each counted {copies} times");
    let rows: Vec<usize> = (0..n * copies).map(|r| r % n).collect();
    (x.select(ndarray::Axis(0), &rows), rows.iter().map(|&r| targets[r]).collect())
}

/// The output-length head, when asked for (or, under `auto`, when the logs have enough token counts), fitted
/// on the prompts with token counts: all of them, or a sample of [`TrainOptions::cv_sample`] for large logs.
/// `data` holds every prompt's features and folds.
fn output_lengths(
    dataset: &Dataset,
    data: &CvData,
    options: &TrainOptions,
) -> Result<Option<(Dense, LengthReport)>, TrainError> {
    let counted: Vec<usize> =
        (0..dataset.prompts.len()).filter(|&r| !dataset.prompts[r].output_tokens.is_empty()).collect();
    match options.output_lengths {
        OutputLengths::Mean => return Ok(None),
        OutputLengths::Auto if counted.len() < MIN_LENGTH_PROMPTS => return Ok(None),
        OutputLengths::Predict if counted.is_empty() => return Err(TrainError::NoTokenCounts),
        _ => {}
    }
    let hashes: Vec<u64> = counted.iter().map(|&r| data.text_hashes[r]).collect();
    let rows: Vec<usize> = sample_groups(&hashes, options.cv_sample.max(MIN_PROMPTS), options.seed)
        .into_iter()
        .map(|i| counted[i])
        .collect();
    let models = dataset.models.len();
    let mut sum = Array2::<f32>::zeros((rows.len(), models));
    let mut weight = Array2::<f32>::zeros((rows.len(), models));
    for (r, p) in rows.iter().map(|&i| &dataset.prompts[i]).enumerate() {
        for &(m, t) in &p.output_tokens {
            sum[[r, m]] += t.max(0.0).ln_1p();
            weight[[r, m]] += 1.0;
        }
    }
    let value = Array2::from_shape_fn((rows.len(), models), |(r, m)| {
        if weight[[r, m]] > 0.0 {
            sum[[r, m]] / weight[[r, m]]
        } else {
            0.0
        }
    });
    let targets = LengthTargets { value, weight };
    let data = data.subset(&rows);
    let fallback: Vec<f32> = dataset.costs.iter().map(|c| (c.mean_output_tokens as f32).max(0.0).ln_1p()).collect();
    let (layer, report) = fit_lengths(&data.features, &targets, &data.folds, &fallback)?;
    tracing::info!(
        "output lengths: cross-validated MAE of ln(1 + tokens) {:.3} (per-model mean: {:.3}) over {} prompts",
        report.mae_log,
        report.mean_only_mae_log,
        report.prompts
    );
    Ok(Some((layer, report)))
}

/// The chosen candidate first, then the others best first (by utility, then log loss).
fn rank(mut all: Vec<CandidateMetrics>, chosen: usize) -> Vec<CandidateMetrics> {
    let first = all.remove(chosen);
    all.sort_by(|a, b| {
        let ua = a.utility.as_ref().map_or(f64::NEG_INFINITY, |u| u.value);
        let ub = b.utility.as_ref().map_or(f64::NEG_INFINITY, |u| u.value);
        ub.total_cmp(&ua).then(a.log_loss.total_cmp(&b.log_loss))
    });
    std::iter::once(first).chain(all).collect()
}

fn log_candidate(m: &CandidateMetrics) {
    let utility = m.utility.as_ref().map_or_else(
        || "no utility (too few prompts with two observed models)".to_string(),
        |u| format!("{} {:.4} [{:.4}, {:.4}]", u.metric, u.value, u.lo, u.hi),
    );
    tracing::info!(
        "{} ({}): {utility}, log loss {:.4}, Brier {:.4}, AUC {:.3}, ECE {:.3}",
        m.kind,
        m.config,
        m.log_loss,
        m.brier,
        m.auc,
        m.ece_raw
    );
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
        cv_sample: None,
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
