//! `switchyard train`: labelled logs in, a router folder (manifest + weights) out.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use switchyard_core::{Catalog, PredictorKind};
use switchyard_encoder::{Encoder, MiniLm};
use switchyard_train::{
    default_cache_dir, train, ComplexityLabels, Dataset, EmbeddingCache, OutputLengths, Profiles, RowFilter,
    TrainOptions, MIN_PROMPTS, SELECTION_PROMPTS,
};

use crate::{KnobArgs, ModelArgs};

/// Arguments of `switchyard train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Labelled-log files (.jsonl or .jsonl.gz); repeat for several. Rows with "split": "test" are left out.
    #[arg(long = "logs", required = true, value_name = "FILE")]
    logs: Vec<PathBuf>,

    /// Model catalog (TOML) with prices; without it, models and costs come from the logs' cost_usd.
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,

    /// Folder to write the router into (manifest.json + router.safetensors).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Model profiles (TOML: published MMLU-Redux / ZebraLogic accuracies per model): priors for domains the
    /// logs say little about, used where a prompt is far from the training data.
    #[arg(long, value_name = "FILE")]
    profiles: Option<PathBuf>,

    /// Prompts with a judged difficulty but no outcomes (JSON lines: "prompt" and "label" easy, medium or hard,
    /// or "complexity" in [0, 1]): they teach the complexity head what the logs lack, e.g. everyday chat.
    #[arg(long = "complexity-labels", value_name = "FILE")]
    complexity_labels: Option<PathBuf>,

    /// Output lengths: `predict` them per prompt (fails without output_tokens in the logs), use each model's
    /// `mean`, or `auto` (predict when at least 50 prompts have token counts).
    #[arg(long = "output-tokens", value_enum, default_value_t = OutputTokens::Auto, value_name = "HOW")]
    output_tokens: OutputTokens,

    /// Skip rows that break the labelled-log contract (and report how many) instead of stopping.
    #[arg(long)]
    skip_bad_rows: bool,

    /// Weight logged-bandit rows (rows with a `propensity`, as `logs export` writes them) equally instead of
    /// by their inverse propensity: naive training, biased toward what the logging router already believed.
    /// For comparison only.
    #[arg(long)]
    no_ips: bool,

    /// Predictors to cross-validate (comma-separated), each over its grid of settings; with two or more, the
    /// ensemble of each kind's best is a candidate too. The highest routing utility on the validation folds
    /// wins (AIQ; APGR on two models), log loss breaking ties.
    #[arg(long = "predictor", value_enum, value_delimiter = ',', default_values_t = PredictorChoice::defaults())]
    predictors: Vec<PredictorChoice>,

    /// Cross-validation folds, grouped by normalised prompt text (at least 2).
    #[arg(long, default_value_t = 5, value_name = "K")]
    folds: usize,

    /// Seed of the folds, of the MLP's and MF's initialisation, and of the bootstrap.
    #[arg(long, default_value_t = 17)]
    seed: u64,

    /// Most prompts the predictor is chosen on: larger logs are cross-validated on a sample of this many
    /// (whole text groups), then the chosen predictor is refitted on every prompt. Bounds training time.
    #[arg(long, default_value_t = SELECTION_PROMPTS, value_name = "N")]
    cv_sample: usize,

    /// Texts per encoder forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096), value_name = "N")]
    batch_size: u32,

    /// Embedding cache folder (keyed by encoder and text, so retraining does not re-embed).
    #[arg(long, env = "SWITCHYARD_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,

    /// The router's default policy (used when a request sets no knob).
    #[command(flatten)]
    knob: KnobArgs,

    #[command(flatten)]
    model: ModelArgs,
}

/// How output lengths enter expected costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputTokens {
    /// Predict when the logs have enough token counts.
    Auto,
    /// Predict per prompt.
    Predict,
    /// Each model's mean.
    Mean,
}

/// A predictor to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PredictorChoice {
    /// Per-model logistic regression.
    Logistic,
    /// Matrix factorisation / IRT: a latent vector per prompt and per model, and a prompt difficulty.
    Mf,
    /// A small MLP over all models (candle-nn).
    Mlp,
    /// Similarity-weighted k nearest neighbours with a Beta prior.
    Knn,
    /// Multidimensional item response theory: every model on one scale (per-prompt difficulty,
    /// discrimination and skill mix; per-model abilities; an offset per log `source`).
    Irt,
}

impl PredictorChoice {
    /// The default candidates: every kind.
    pub fn defaults() -> [Self; 5] {
        [Self::Logistic, Self::Mf, Self::Mlp, Self::Knn, Self::Irt]
    }

    /// The library's name for it.
    pub fn kind(self) -> PredictorKind {
        match self {
            Self::Logistic => PredictorKind::Logistic,
            Self::Mf => PredictorKind::Mf,
            Self::Mlp => PredictorKind::Mlp,
            Self::Knn => PredictorKind::Knn,
            Self::Irt => PredictorKind::Irt,
        }
    }
}

/// Runs `switchyard train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    if args.folds < 2 {
        anyhow::bail!("--folds must be at least 2, got {}", args.folds);
    }
    if args.cv_sample < MIN_PROMPTS {
        anyhow::bail!(
            "--cv-sample must be at least {MIN_PROMPTS} (the fewest prompts a router is trained on), got {}",
            args.cv_sample
        );
    }
    let catalog = args.catalog.as_deref().map(Catalog::load).transpose()?;
    let profiles = args.profiles.as_deref().map(Profiles::load).transpose()?;
    let complexity_labels = args.complexity_labels.as_deref().map(ComplexityLabels::load).transpose()?;
    let mut dataset = Dataset::from_logs(&args.logs, catalog.as_ref(), args.skip_bad_rows, RowFilter::ExcludeTest)?;
    if dataset.bandit_rows > 0 {
        if args.no_ips {
            eprintln!(
                "{} logged-bandit rows weighted 1 (--no-ips): biased toward the logging router",
                dataset.bandit_rows
            );
            dataset.ignore_propensities();
        } else {
            eprintln!(
                "{} logged-bandit rows weighted by inverse propensity (clipped at {}, self-normalised)",
                dataset.bandit_rows,
                switchyard_train::MAX_IPS_WEIGHT
            );
        }
    }
    eprintln!(
        "{}; {} test rows left out; {} prompts, {} models, {} domains",
        dataset.summary,
        dataset.test_rows_excluded,
        dataset.prompts.len(),
        dataset.models.len(),
        dataset.domains.len()
    );
    let encoder = MiniLm::from_locator(&args.model.locator(), args.model.options())?;
    let cache_dir = args.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let mut cache = EmbeddingCache::open(&cache_dir, &encoder)?;
    eprintln!("embedding cache {} ({} cached)", cache.path().display(), cache.len());

    let candidates = args.predictors.iter().map(|p| p.kind()).collect();
    let options = TrainOptions {
        batch_size: args.batch_size as usize,
        folds: args.folds,
        seed: args.seed,
        cv_sample: args.cv_sample,
        candidates,
        default_policy: args.knob.policy(None)?,
        profiles,
        complexity_labels,
        output_lengths: match args.output_tokens {
            OutputTokens::Auto => OutputLengths::Auto,
            OutputTokens::Predict => OutputLengths::Predict,
            OutputTokens::Mean => OutputLengths::Mean,
        },
        progress: !args.quiet,
        ..TrainOptions::default()
    };
    let router = train(&dataset, &encoder as &dyn Encoder, &mut cache, &options)?;
    router.save(&args.out).with_context(|| format!("cannot save the router to {}", args.out.display()))?;

    print_validation(&router, dataset.prompts.len(), options.folds);
    println!("router written to {}", args.out.display());
    Ok(())
}

/// The candidates' cross-validated figures, best first, and the output-length fit, on stderr.
fn print_validation(router: &switchyard_core::Router, prompts: usize, folds: usize) {
    let sample = match router.manifest.training.cv_sample {
        Some(n) => {
            format!(" on a sample of {n} of the {} prompts, the chosen one refitted on all", prompts)
        }
        None => String::new(),
    };
    eprintln!("\ncross-validated over {} folds (grouped by normalised prompt text){sample}, best first:", folds);
    eprintln!(
        "{:<10} {:<44} {:>26} {:>9} {:>7} {:>6} {:>7}",
        "predictor", "setting", "utility [95% interval]", "log loss", "Brier", "AUC", "ECE"
    );
    for (i, m) in router.manifest.validation.iter().enumerate() {
        let utility = m.utility.as_ref().map_or_else(
            || "-".to_string(),
            |u| format!("{} {:.4} [{:.4}, {:.4}]", u.metric.to_uppercase(), u.value, u.lo, u.hi),
        );
        eprintln!(
            "{:<10} {:<44} {:>26} {:>9.4} {:>7.4} {:>6.3} {:>7.3}{}",
            m.kind.to_string(),
            m.config,
            utility,
            m.log_loss,
            m.brier,
            m.auc,
            m.ece,
            if i == 0 { "  <- chosen" } else { "" }
        );
    }
    if let Some(l) = &router.manifest.output_lengths {
        eprintln!(
            "output lengths predicted per prompt: cross-validated MAE of ln(1 + tokens) {:.3}, against {:.3} for \
             each model's mean ({} prompts with token counts)",
            l.mae_log, l.mean_only_mae_log, l.prompts
        );
    }
}
