//! `switchyard bench`: evaluate a router on held-out labelled logs against the field's baselines.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use switchyard_core::{Catalog, Router};
use switchyard_encoder::{Encoder, MiniLm};
use switchyard_train::bench::{knn_memory, plot, run_bench, BenchReport, BenchSet, Metrics};
use switchyard_train::{default_cache_dir, embed_texts, train, Dataset, EmbeddingCache, RowFilter, TrainOptions};

use crate::train_cmd::PredictorChoice;
use crate::ModelArgs;

/// Arguments of `switchyard bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Router folder to evaluate (from `switchyard train`).
    #[arg(long, value_name = "DIR", required_unless_present = "train_logs", conflicts_with = "train_logs")]
    router: Option<PathBuf>,

    /// Train a router on these logs in the same run (rows with "split": "test" are left out), then evaluate it.
    #[arg(long = "train-logs", value_name = "FILE")]
    train_logs: Vec<PathBuf>,

    /// Held-out logs: rows with "split": "test", or every row when none is marked.
    #[arg(long = "logs", required = true, value_name = "FILE")]
    logs: Vec<PathBuf>,

    /// Catalog with prices (for training, and for costing rows without cost_usd).
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,

    /// Folder for report.json, curve.svg and curve.png.
    #[arg(long, value_name = "DIR", default_value = "bench-out")]
    out: PathBuf,

    /// Predictors to compare when training in the same run.
    #[arg(long = "predictor", value_enum, value_delimiter = ',', default_values_t = PredictorChoice::defaults())]
    predictors: Vec<PredictorChoice>,

    /// Skip rows that break the labelled-log contract instead of stopping.
    #[arg(long)]
    skip_bad_rows: bool,

    /// Embedding cache folder.
    #[arg(long, env = "SWITCHYARD_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,

    #[command(flatten)]
    model: ModelArgs,
}

/// Runs `switchyard bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let catalog = args.catalog.as_deref().map(Catalog::load).transpose()?;
    let encoder = MiniLm::from_locator(&args.model.locator(), args.model.options())?;
    let mut cache = EmbeddingCache::open(&args.cache_dir.clone().unwrap_or_else(default_cache_dir), &encoder)?;

    let (router, train_files) = if let Some(dir) = &args.router {
        let router = Router::load(dir).with_context(|| format!("cannot load router {}", dir.display()))?;
        router.check_encoder(encoder.id(), encoder.dim())?;
        // The kNN baselines learn from the router's own training logs when they are still where they were.
        let files: Vec<PathBuf> = router.manifest.training.files.iter().map(|f| PathBuf::from(&f.path)).collect();
        let files = if files.iter().all(|f| f.is_file()) { files } else { Vec::new() };
        (router, files)
    } else {
        let dataset =
            Dataset::from_logs(&args.train_logs, catalog.as_ref(), args.skip_bad_rows, RowFilter::ExcludeTest)?;
        eprintln!("training on {} prompts, {} models", dataset.prompts.len(), dataset.models.len());
        let options = TrainOptions {
            candidates: args.predictors.iter().map(|p| p.kind()).collect(),
            progress: !args.quiet,
            ..TrainOptions::default()
        };
        (train(&dataset, &encoder, &mut cache, &options)?, args.train_logs.clone())
    };

    let mut set = BenchSet::from_logs(
        &args.logs,
        &router.manifest.models,
        catalog.as_ref(),
        args.skip_bad_rows,
        RowFilter::TestOrAll,
    )?;
    let dropped = set.restrict_to_dense_models();
    let sparse = set.prompts.iter().any(|p| p.score.iter().any(Option::is_none));
    if sparse {
        eprintln!(
            "note: not every model answered every held-out prompt, so single models (and the zero router, random \
             and oracle built from them) are measured on different prompts; compare the routers with each other"
        );
    }
    if !dropped.is_empty() {
        eprintln!(
            "note: {} models did not answer every held-out prompt and are left out so that every router and \
             baseline is measured on the same prompts: {}",
            dropped.len(),
            dropped.join(", ")
        );
    }
    eprintln!(
        "evaluating on {} held-out prompts, {} models ({} rows not usable: pairwise or unknown models)",
        set.prompts.len(),
        set.models.len(),
        set.unused_rows
    );
    let embeddings = embed(&mut cache, &encoder, set.prompts.iter().map(|p| p.text.as_str()), !args.quiet)?;

    let mut knn = Vec::new();
    if train_files.is_empty() {
        eprintln!("note: no training logs at hand (pass --train-logs), so the kNN baselines are left out");
    } else {
        let mut train_set =
            BenchSet::from_logs(&train_files, &router.manifest.models, catalog.as_ref(), true, RowFilter::ExcludeTest)?;
        train_set.keep_models(&set.models);
        let train_embeddings =
            embed(&mut cache, &encoder, train_set.prompts.iter().map(|p| p.text.as_str()), !args.quiet)?;
        for k in [10, 40] {
            knn.push((format!("knn{k}"), knn_memory(&train_set, &train_embeddings, k)));
        }
    }
    let report = run_bench(&set, &embeddings, &router, &knn);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    let title = args.logs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    plot(&report, &format!("switchyard bench: {title}"), &args.out.join("curve.svg"), &args.out.join("curve.png"))?;
    print_table(&report, &path);
    Ok(())
}

fn embed<'a>(
    cache: &mut EmbeddingCache,
    encoder: &MiniLm,
    texts: impl Iterator<Item = &'a str>,
    progress: bool,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let texts: Vec<&str> = texts.collect();
    if texts.is_empty() {
        bail!("no prompts to embed");
    }
    Ok(embed_texts(cache, encoder as &dyn Encoder, &texts, 32, progress)?)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

fn row(name: &str, m: &Metrics) -> String {
    format!(
        "{name:<28} {:>7.4} {:>7} {:>7} {:>7} {:>11} {:>8}",
        m.aiq,
        fmt(m.apgr),
        fmt(m.cpt50),
        fmt(m.cpt80),
        m.cost.map_or_else(|| "-".to_string(), |c| format!("{c:.6}")),
        fmt(m.quality)
    )
}

fn print_table(report: &BenchReport, path: &Path) {
    println!("{} held-out prompts; c_max (dearest single model) = ${:.6} per prompt", report.prompts, report.c_max);
    println!(
        "{:<28} {:>7} {:>7} {:>7} {:>7} {:>11} {:>8}",
        "router", "AIQ", "APGR", "CPT50", "CPT80", "cost $", "quality"
    );
    println!("{}", row("learned router", &report.metrics.curve));
    for (name, m) in &report.baselines {
        if !name.starts_with("model:") {
            println!("{}", row(name, m));
        }
    }
    for (name, m) in &report.baselines {
        if name.starts_with("model:") {
            println!("{}", row(name, m));
        }
    }
    let r = &report.metrics;
    println!(
        "learned router: quality {:.3} at the best single model's cost; matches its quality at {} of its cost; \
         ECE {:.3}, AUC {:.3}{}",
        r.quality_at_best_single_cost,
        r.cost_share_to_match_best_single.map_or_else(|| "never".to_string(), |s| format!("{:.0}%", s * 100.0)),
        r.ece,
        r.auc,
        r.domain_accuracy.map_or_else(String::new, |a| format!(", domain accuracy {a:.3}"))
    );
    println!("report written to {} (plots: curve.svg, curve.png beside it)", path.display());
}
