//! `switchyard train`: labelled logs in, a router folder (manifest + weights) out.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use switchyard_core::{Catalog, PredictorKind};
use switchyard_encoder::{Encoder, MiniLm};
use switchyard_train::{default_cache_dir, train, Dataset, EmbeddingCache, RowFilter, TrainOptions};

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

    /// Skip rows that break the labelled-log contract (and report how many) instead of stopping.
    #[arg(long)]
    skip_bad_rows: bool,

    /// Predictors to fit and compare (comma-separated); the one with the lowest validation log loss is kept.
    #[arg(long = "predictor", value_enum, value_delimiter = ',', default_values_t = [PredictorChoice::Logistic, PredictorChoice::Mlp, PredictorChoice::Knn])]
    predictors: Vec<PredictorChoice>,

    /// Share of prompts held out for validation (model choice, early stopping, calibration).
    #[arg(long, default_value_t = 0.15, value_name = "SHARE")]
    validation_share: f64,

    /// Seed of the validation split and of the MLP's shuffling.
    #[arg(long, default_value_t = 17)]
    seed: u64,

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

/// A predictor to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PredictorChoice {
    /// Per-model logistic regression (linfa).
    Logistic,
    /// A small MLP over all models (candle-nn).
    Mlp,
    /// k nearest neighbours.
    Knn,
}

impl PredictorChoice {
    /// The library's name for it.
    pub fn kind(self) -> PredictorKind {
        match self {
            Self::Logistic => PredictorKind::Logistic,
            Self::Mlp => PredictorKind::Mlp,
            Self::Knn => PredictorKind::Knn,
        }
    }
}

/// Runs `switchyard train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    if !(0.01..=0.5).contains(&args.validation_share) {
        anyhow::bail!("--validation-share must be between 0.01 and 0.5, got {}", args.validation_share);
    }
    let catalog = args.catalog.as_deref().map(Catalog::load).transpose()?;
    let dataset = Dataset::from_logs(&args.logs, catalog.as_ref(), args.skip_bad_rows, RowFilter::ExcludeTest)?;
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
        validation_share: args.validation_share,
        seed: args.seed,
        candidates,
        default_policy: args.knob.policy(None)?,
        progress: !args.quiet,
        ..TrainOptions::default()
    };
    let router = train(&dataset, &encoder as &dyn Encoder, &mut cache, &options)?;
    router.save(&args.out).with_context(|| format!("cannot save the router to {}", args.out.display()))?;

    eprintln!("\npredictor   log loss   Brier    AUC    ECE raw  ECE calibrated");
    for m in &router.manifest.validation {
        let chosen = if m.kind == router.manifest.predictor { "  <- chosen" } else { "" };
        eprintln!(
            "{:<10} {:>9.4} {:>8.4} {:>6.3} {:>8.3} {:>10.3}{chosen}",
            m.kind.to_string(),
            m.log_loss,
            m.brier,
            m.auc,
            m.ece_raw,
            m.ece
        );
    }
    println!("router written to {}", args.out.display());
    Ok(())
}
