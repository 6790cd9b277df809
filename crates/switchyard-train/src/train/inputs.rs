//! The inputs of a training run, built from the dataset: the prompts' embeddings, the rows the predictor is
//! chosen on, the complexity labels, domain membership, the sources' linking and the cross-validation data.

use ndarray::Array2;
use switchyard_core::{estimate_input_tokens, PredictorKind};
use switchyard_encoder::Encoder;

use super::{progress_bar, TrainOptions, MIN_PROMPTS};
use crate::cache::EmbeddingCache;
use crate::dataset::{Dataset, PromptRecord};
use crate::familiarity::{fit_familiarity, FamiliarityInputs};
use crate::folds::{sample_groups, Folds};
use crate::heads::difficulty_targets;
use crate::predictors::{grid, Linking};
use crate::profiles::baselines;
use crate::select::{cross_validate, CvData, Evaluated};
use crate::targets::Targets;
use crate::TrainError;

/// Complexity labels: their prompts' embeddings and their targets.
pub(super) type Labels<'o> = (Array2<f32>, &'o [f32]);

/// Refuses a dataset too small to train on, or no predictor to choose from.
pub(super) fn check_inputs(dataset: &Dataset, options: &TrainOptions) -> Result<(), TrainError> {
    if dataset.prompts.len() < MIN_PROMPTS {
        return Err(TrainError::TooFewPrompts { found: dataset.prompts.len(), needed: MIN_PROMPTS });
    }
    if options.candidates.is_empty() || options.candidates == [PredictorKind::Ensemble] {
        return Err(TrainError::Fit(
            "no predictor candidates: list logistic, mf, mlp, knn or irt (an ensemble is built from them)".into(),
        ));
    }
    Ok(())
}

/// The complexity labels' prompts embedded, with their targets (`options.complexity_labels`).
pub(super) fn embed_labels<'o>(
    encoder: &dyn Encoder,
    cache: &mut EmbeddingCache,
    options: &'o TrainOptions,
) -> Result<Option<Labels<'o>>, TrainError> {
    let dim = encoder.dim();
    Ok(match &options.complexity_labels {
        Some(labels) => {
            let texts: Vec<&str> = labels.texts.iter().map(String::as_str).collect();
            let vectors = cache.embed(encoder, &texts, options.batch_size, |_, _| {})?;
            Some((Array2::from_shape_fn((vectors.len(), dim), |(r, c)| vectors[r][c]), labels.targets.as_slice()))
        }
        None => None,
    })
}

/// What links the sources' scales: each prompt's source, and the published aggregates per (model, domain).
pub(super) fn linking(
    dataset: &Dataset,
    prompts: &[&PromptRecord],
    options: &TrainOptions,
    membership: &Array2<f32>,
) -> Linking {
    Linking {
        sources: prompts.iter().map(|p| p.source as u32).collect(),
        source_count: dataset.sources.len().max(1),
        aggregates: options
            .profiles
            .as_ref()
            .map(|p| p.aggregates(&dataset.models, &dataset.domains, membership))
            .unwrap_or_default(),
    }
}

/// The cross-validation data: features and embeddings, targets, each prompt's expected cost per model, groups
/// and folds.
pub(super) fn cv_data(
    dataset: &Dataset,
    prompts: &[&PromptRecord],
    (features, embeddings): (Array2<f32>, Array2<f32>),
    text_hashes: Vec<u64>,
    folds: Folds,
    linking: Linking,
) -> CvData {
    let models = dataset.models.len();
    let cost = Array2::from_shape_fn((prompts.len(), models), |(r, m)| {
        dataset.costs[m].expected_cost_usd(estimate_input_tokens(&prompts[r].text))
    });
    CvData { features, embeddings, targets: Targets::from_prompts(prompts, models), cost, text_hashes, folds, linking }
}

/// The prior layer: where the training prompts lie, each model's prior per domain and the difficulty slope.
pub(super) fn familiarity(
    dataset: &Dataset,
    prompts: &[&PromptRecord],
    full: &CvData,
    (domain_probs, membership): (&Array2<f32>, &Array2<f32>),
    labelled: Option<&Labels<'_>>,
    options: &TrainOptions,
) -> Result<switchyard_core::Familiarity, TrainError> {
    let (dim, domains, models) = (full.embeddings.ncols(), dataset.domains.len(), dataset.models.len());
    let complexity: Vec<f32> = full.features.column(dim + domains).to_vec();
    let difficulty = difficulty_targets(prompts, models);
    let baseline =
        baselines(options.profiles.as_ref(), &dataset.models, &dataset.domains, &full.targets, membership, &difficulty);
    let log_lengths: Vec<f32> = prompts.iter().map(|p| estimate_input_tokens(&p.text).ln_1p() as f32).collect();
    fit_familiarity(&FamiliarityInputs {
        embeddings: &full.embeddings,
        folds: &full.folds,
        targets: &full.targets,
        domain_probs,
        membership,
        baseline: &baseline,
        complexity: &complexity,
        difficulty: &difficulty,
        log_lengths: &log_lengths,
        labelled: labelled.map(|(x, t)| (x, *t)),
        seed: options.seed,
    })
}

/// Domain membership: the logged label where there is one, else the out-of-fold probabilities.
pub(super) fn membership(prompts: &[&PromptRecord], domain_probs: &Array2<f32>) -> Array2<f32> {
    Array2::from_shape_fn(domain_probs.dim(), |(r, d)| match prompts[r].domain {
        Some(label) => f32::from(u8::from(label == d)),
        None => domain_probs[[r, d]],
    })
}

/// Every candidate of `options` cross-validated on `selection`, with a progress bar.
pub(super) fn cross_validate_candidates(
    selection: &CvData,
    options: &TrainOptions,
) -> Result<Vec<Evaluated>, TrainError> {
    let configs = grid(&options.candidates, options.mlp);
    let bar = progress_bar(options.progress, 0, "cross-validating predictors");
    let evaluated = cross_validate(selection, &configs, options.seed, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    Ok(evaluated)
}

/// Every prompt's embedding (through the cache), in dataset order.
pub(super) fn embed_prompts(
    dataset: &Dataset,
    encoder: &dyn Encoder,
    cache: &mut EmbeddingCache,
    options: &TrainOptions,
) -> Result<Vec<Vec<f32>>, TrainError> {
    let texts: Vec<&str> = dataset.prompts.iter().map(|p| p.text.as_str()).collect();
    let bar = progress_bar(options.progress, texts.len(), "embedding prompts");
    let embedding_started = std::time::Instant::now();
    let mut embedded = 0;
    let vectors = cache.embed(encoder, &texts, options.batch_size, |done, _| {
        embedded = done;
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    tracing::info!(
        "{} prompts embedded ({embedded} not in the cache) in {:.1} s",
        texts.len(),
        embedding_started.elapsed().as_secs_f64()
    );
    Ok(vectors)
}

/// The rows the predictor is chosen on: a sample of whole prompt groups (`options.cv_sample`), or every row when
/// too few texts would fit in it to cross-validate (a few texts on very many rows).
pub(super) fn selection_sample(hashes: &[u64], options: &TrainOptions) -> Vec<usize> {
    let mut sample = sample_groups(hashes, options.cv_sample.max(MIN_PROMPTS), options.seed);
    let distinct: std::collections::HashSet<u64> = sample.iter().map(|&r| hashes[r]).collect();
    if sample.len() < MIN_PROMPTS || distinct.len() < options.folds {
        // Too few texts fit in the sample to cross-validate (a few texts on very many rows): use every row.
        sample = (0..hashes.len()).collect();
    }
    if sample.len() < hashes.len() {
        tracing::info!(
            "{} prompts: choosing the predictor on a sample of {}, then refitting it on all",
            hashes.len(),
            sample.len()
        );
    }
    sample
}
