//! `switchyard bench`: evaluate a router on held-out labelled logs against the field's baselines.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use switchyard_core::{Catalog, Router};
use switchyard_encoder::{Encoder, EncoderOptions, MiniLm, Precision};
use switchyard_train::bench::{
    agreement, knn_memory, leave_one_out, plot, run_bench, training_prompts, BenchReport, BenchSet, BootstrapOptions,
    Interval, LeaveOutOptions, Metrics,
};
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

    /// Bootstrap resamples of the held-out prompts behind the 95% intervals (0 = no intervals).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    bootstrap: usize,

    /// Seed of the bootstrap resampling.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    bootstrap_seed: u64,

    /// Seed of the training run(s) with --train-logs: cross-validation folds and the MLP's and MF's
    /// initialisation (`train --seed`). Training is reproducible for one seed; rerun with others to see how
    /// much a figure owes to the seed. [default: the same as `train`'s, 17]
    #[arg(long, value_name = "SEED")]
    train_seed: Option<u64>,

    /// Skip rows that break the labelled-log contract instead of stopping.
    #[arg(long)]
    skip_bad_rows: bool,

    /// Embedding cache folder.
    #[arg(long, env = "SWITCHYARD_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,

    /// Leave-one-out evaluation of `profile add` (needs --train-logs): train with and without this model
    /// (`auto`: the one whose removal costs the full router the most AIQ on the training prompts; `strongest`:
    /// the one with the highest mean success in the training rows, as a launch-day model better than every
    /// other), add it back from --profile-rows of its training rows, retrain with only those rows of it, and
    /// compare the four on the held-out prompts.
    #[arg(long, value_name = "MODEL")]
    leave_out: Option<String>,

    /// Distinct prompts of the left-out model's training rows that `profile add` gets.
    #[arg(long, value_name = "N", default_value_t = 200, requires = "leave_out")]
    profile_rows: usize,

    /// How those prompts are picked: `representative` (k-means over their embeddings, as `profile prompts`
    /// picks them) or `random` (a seeded sample).
    #[arg(long, value_enum, default_value = "representative", requires = "leave_out")]
    profile_sample: ProfileSample,

    /// Also add the model back from this many more random samples of --profile-rows prompts (seeds
    /// --bootstrap-seed + 1, + 2, ...) and report the spread of their shares: how much the choice of eval
    /// prompts matters, which the bootstrap interval (over held-out prompts) does not cover.
    #[arg(long, value_name = "K", default_value_t = 0, requires = "leave_out")]
    profile_repeats: usize,

    /// Also embed the held-out prompts at this encoder precision and report how closely the router's decisions
    /// on them follow its decisions on the main ones (--precision, f32 by default): agreement at the default
    /// policy and over the knob sweep, the AIQ difference with its paired interval, and the cosines.
    #[arg(long, value_name = "f32|int8", conflicts_with = "leave_out")]
    compare_precision: Option<Precision>,

    #[command(flatten)]
    model: ModelArgs,
}

/// How `bench --leave-out` picks the prompts `profile add` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileSample {
    /// Representative prompts (k-means over the embeddings).
    Representative,
    /// A seeded random sample.
    Random,
}

/// How `bench` trains with --train-logs: the chosen predictors, the --train-seed.
fn train_options(args: &BenchArgs) -> TrainOptions {
    let defaults = TrainOptions::default();
    TrainOptions {
        candidates: args.predictors.iter().map(|p| p.kind()).collect(),
        seed: args.train_seed.unwrap_or(defaults.seed),
        ..defaults
    }
}

/// Runs `switchyard bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.train_logs.is_empty() {
        if args.leave_out.is_some() {
            bail!("--leave-out trains the routers it compares: give the training logs with --train-logs, not --router");
        }
        if args.train_seed.is_some() {
            bail!("--train-seed seeds a training run, and --router is already trained: give --train-logs to train in this run");
        }
    }
    let catalog = args.catalog.as_deref().map(Catalog::load).transpose()?;
    let encoder = MiniLm::from_locator(&args.model.locator(), args.model.options())?;
    let mut cache = EmbeddingCache::open(&args.cache_dir.clone().unwrap_or_else(default_cache_dir), &encoder)?;

    if args.leave_out.is_some() {
        return leave_out(args, catalog.as_ref(), &encoder, &mut cache);
    }
    let (router, train_files) = router_to_bench(args, catalog.as_ref(), &encoder, &mut cache)?;
    let mut set = BenchSet::from_logs(
        &args.logs,
        &router.manifest.models,
        catalog.as_ref(),
        args.skip_bad_rows,
        RowFilter::TestOrAll,
    )?;
    let overlap = prepare_held_out(&mut set, &train_files)?;
    let embeddings = embed(&mut cache, &encoder, set.prompts.iter().map(|p| p.text.as_str()), !args.quiet)?;

    let knn = knn_baselines(args, &router, &set, &train_files, catalog.as_ref(), &encoder, &mut cache)?;
    let options = BootstrapOptions { resamples: args.bootstrap, seed: args.bootstrap_seed, ..Default::default() };
    let mut report = run_bench(&set, &embeddings, &router, &knn, &options);
    report.overlap_dropped = overlap;
    if let Some(precision) = args.compare_precision {
        if precision == encoder.precision() {
            bail!("--compare-precision {precision} is the precision of the main run: compare with the other one");
        }
        let other = MiniLm::from_locator(&args.model.locator(), EncoderOptions { precision, ..args.model.options() })?;
        let mut other_cache = EmbeddingCache::open(&args.cache_dir.clone().unwrap_or_else(default_cache_dir), &other)?;
        let texts = set.prompts.iter().map(|p| p.text.as_str());
        let other_embeddings = embed(&mut other_cache, &other, texts, !args.quiet)?;
        let label = format!("{precision} against {}", encoder.precision());
        report.agreement = Some(agreement(&set, &router, &embeddings, &other_embeddings, &label, &options));
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    let title = args.logs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    plot(&report, &format!("switchyard bench: {title}"), &args.out.join("curve.svg"), &args.out.join("curve.png"))?;
    print_table(&report, &path);
    Ok(())
}

/// The router to evaluate, loaded (`--router`) or trained in this run (`--train-logs`), and its training files
/// when they are at hand (the kNN baselines learn from them; held-out prompts are checked against them).
fn router_to_bench(
    args: &BenchArgs,
    catalog: Option<&Catalog>,
    encoder: &MiniLm,
    cache: &mut EmbeddingCache,
) -> anyhow::Result<(Router, Vec<PathBuf>)> {
    Ok(if let Some(dir) = &args.router {
        let router = Router::load(dir).with_context(|| format!("cannot load router {}", dir.display()))?;
        router.check_encoder(&switchyard_server::encoder_info(encoder))?;
        // The kNN baselines learn from the router's own training logs when they are still where they were.
        let files: Vec<PathBuf> = router.manifest.training.files.iter().map(|f| PathBuf::from(&f.path)).collect();
        let files = if files.iter().all(|f| f.is_file()) { files } else { Vec::new() };
        (router, files)
    } else {
        let dataset = Dataset::from_logs(&args.train_logs, catalog, args.skip_bad_rows, RowFilter::ExcludeTest)?;
        eprintln!("training on {} prompts, {} models", dataset.prompts.len(), dataset.models.len());
        let options = TrainOptions { progress: !args.quiet, ..train_options(args) };
        (train(&dataset, encoder, cache, &options)?, args.train_logs.clone())
    })
}

/// Leaves out held-out prompts that also occur in the training logs (same normalised text), and the models that
/// did not answer every held-out prompt, saying so. Returns how many prompts were left out for leakage.
fn prepare_held_out(set: &mut BenchSet, train_files: &[PathBuf]) -> anyhow::Result<usize> {
    // No leakage: a held-out prompt that also occurs in the training logs (same normalised text) is left out.
    let overlap = if train_files.is_empty() {
        eprintln!(
            "note: the training logs are not at hand (the router's training files are no longer where it was \
             trained from; --train-logs trains in the same run instead), so held-out prompts cannot be checked \
             against the training prompts; if some were trained on, the router's figures are flattered"
        );
        0
    } else {
        let seen = training_prompts(train_files)?;
        let n = set.drop_prompts_seen_in(&seen);
        if n > 0 {
            eprintln!(
                "note: {n} held-out prompts also appear in the training logs (same normalised text) and were left out"
            );
        }
        if set.prompts.is_empty() {
            bail!(
                "every held-out prompt also appears in the training logs, so nothing is left to evaluate on: mark \
                 held-out rows with \"split\": \"test\" (training leaves those out), or pass held-out logs that \
                 share no prompt with the training logs"
            );
        }
        n
    };
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
    Ok(overlap)
}

/// kNN10 and kNN40 on the training logs, when they are at hand.
fn knn_baselines(
    args: &BenchArgs,
    router: &Router,
    set: &BenchSet,
    train_files: &[PathBuf],
    catalog: Option<&Catalog>,
    encoder: &MiniLm,
    cache: &mut EmbeddingCache,
) -> anyhow::Result<Vec<(String, switchyard_core::KnnMemory)>> {
    let mut knn = Vec::new();
    if train_files.is_empty() {
        eprintln!("note: no training logs at hand (pass --train-logs), so the kNN baselines are left out");
    } else {
        let mut train_set =
            BenchSet::from_logs(train_files, &router.manifest.models, catalog, true, RowFilter::ExcludeTest)?;
        train_set.keep_models(&set.models);
        let train_embeddings = embed(cache, encoder, train_set.prompts.iter().map(|p| p.text.as_str()), !args.quiet)?;
        for k in [10, 40] {
            knn.push((format!("knn{k}"), knn_memory(&train_set, &train_embeddings, k)));
        }
    }
    Ok(knn)
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

/// A value with its interval, e.g. `0.8312 [0.8201, 0.8420]`.
fn with_ci(v: Option<f64>, ci: Option<Interval>, digits: usize) -> String {
    match (v, ci) {
        (None, _) => "-".to_string(),
        (Some(v), None) => format!("{v:.digits$}"),
        (Some(v), Some(ci)) => format!("{v:.digits$} [{:.digits$}, {:.digits$}]", ci.lo, ci.hi),
    }
}

fn row(name: &str, width: usize, m: &Metrics) -> String {
    format!(
        "{name:<width$} {:>24} {:>21} {:>21} {:>6} {:>10} {:>7}",
        with_ci(Some(m.aiq), m.aiq_ci, 4),
        with_ci(m.apgr, m.apgr_ci, 3),
        with_ci(m.cpt50, m.cpt50_ci, 3),
        fmt(m.cpt80),
        m.cost.map_or_else(|| "-".to_string(), |c| format!("{c:.6}")),
        fmt(m.quality)
    )
}

fn print_table(report: &BenchReport, path: &Path) {
    println!("{} held-out prompts; c_max (dearest single model) = ${:.6} per prompt", report.prompts, report.c_max);
    if report.overlap_dropped > 0 {
        println!("({} held-out prompts left out: they also appear in the training logs)", report.overlap_dropped);
    }
    let width = report.baselines.keys().map(String::len).max().unwrap_or(0).max(16);
    println!(
        "{:<width$} {:>24} {:>21} {:>21} {:>6} {:>10} {:>7}",
        "router", "AIQ [95% CI]", "APGR [95% CI]", "CPT50 [95% CI]", "CPT80", "cost $", "quality"
    );
    println!("{}", row("learned router", width, &report.metrics.curve));
    for (name, m) in &report.baselines {
        if !name.starts_with("model:") {
            println!("{}", row(name, width, m));
        }
    }
    for (name, m) in &report.baselines {
        if name.starts_with("model:") {
            println!("{}", row(name, width, m));
        }
    }
    for d in &report.differences {
        let verdict = match d.ci {
            Some(ci) if ci.above_zero() => "above 0: the learned router is better",
            Some(ci) if ci.below_zero() => "below 0: the learned router is worse",
            Some(_) => "the interval includes 0: no clear difference",
            None => "no interval",
        };
        let ci = d.ci.map_or_else(String::new, |ci| format!(" [{:+.4}, {:+.4}]", ci.lo, ci.hi));
        println!("learned router - {:<12} {:<4} {:+.4}{ci}  {verdict}", d.baseline, d.metric.to_uppercase(), d.value);
    }
    if let Some(b) = &report.bootstrap {
        println!(
            "intervals: {:.0}% paired percentile bootstrap, {} resamples of the held-out prompts (seed {}), {:.2} s",
            b.options.level * 100.0,
            b.options.resamples,
            b.options.seed,
            b.seconds
        );
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
    if let Some(a) = &report.agreement {
        let ci =
            |c: Option<Interval>, d: usize| c.map_or_else(String::new, |c| format!(" [{:+.d$}, {:+.d$}]", c.lo, c.hi));
        println!(
            "precision {}: same model for {:.2}%{} of {} prompts at the default policy, {:.2}% over the knob sweep; \
             AIQ {:.4} vs {:.4}, difference {:+.4}{}; cosine min {:.4}, mean {:.4}",
            a.label,
            a.default_policy * 100.0,
            a.default_policy_ci.map_or_else(String::new, |c| format!(" [{:.2}, {:.2}]", c.lo * 100.0, c.hi * 100.0)),
            a.prompts,
            a.sweep * 100.0,
            a.aiq_other,
            a.aiq_reference,
            a.aiq_difference,
            ci(a.aiq_difference_ci, 4),
            a.min_cosine,
            a.mean_cosine
        );
    }
    println!("report written to {} (plots: curve.svg, curve.png beside it)", path.display());
}

/// `bench --leave-out`: the leave-one-out evaluation of `profile add`.
fn leave_out(
    args: &BenchArgs,
    catalog: Option<&Catalog>,
    encoder: &MiniLm,
    cache: &mut EmbeddingCache,
) -> anyhow::Result<()> {
    let dataset = Dataset::from_logs(&args.train_logs, catalog, args.skip_bad_rows, RowFilter::ExcludeTest)?;
    let mut set = BenchSet::from_logs(&args.logs, &dataset.costs, catalog, args.skip_bad_rows, RowFilter::TestOrAll)?;
    let seen = training_prompts(&args.train_logs)?;
    let overlap = set.drop_prompts_seen_in(&seen);
    if set.prompts.is_empty() {
        bail!("every held-out prompt also appears in the training logs: mark held-out rows with \"split\": \"test\"");
    }
    set.restrict_to_dense_models();
    let embeddings = embed(cache, encoder, set.prompts.iter().map(|p| p.text.as_str()), !args.quiet)?;
    let mut train_set = BenchSet::from_logs(&args.train_logs, &dataset.costs, catalog, true, RowFilter::ExcludeTest)?;
    train_set.keep_models(&set.models);
    let train_embeddings = embed(cache, encoder, train_set.prompts.iter().map(|p| p.text.as_str()), !args.quiet)?;
    let knn = vec![("knn40".to_string(), knn_memory(&train_set, &train_embeddings, 40))];
    let train_options = train_options(args);
    let options = LeaveOutOptions {
        model: args.leave_out.clone().filter(|m| m != "auto" && m != "strongest"),
        strongest: args.leave_out.as_deref() == Some("strongest"),
        rows: args.profile_rows,
        seed: args.bootstrap_seed,
        representative: args.profile_sample == ProfileSample::Representative,
        save_to: Some(args.out.join("routers")),
        repeats: args.profile_repeats,
    };
    let bootstrap = BootstrapOptions { resamples: args.bootstrap, seed: args.bootstrap_seed, ..Default::default() };
    eprintln!(
        "leave-one-out on {} held-out prompts ({overlap} left out as seen in training), {} models",
        set.prompts.len(),
        set.models.len()
    );
    let report = leave_one_out(
        &dataset,
        &args.train_logs,
        &set,
        &embeddings,
        &knn,
        (&train_set, &train_embeddings),
        encoder as &dyn Encoder,
        cache,
        &train_options,
        &options,
        &bootstrap,
    )?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join("leave-out.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    print_leave_out(&report, args);
    println!("report written to {} (the four routers: {})", path.display(), args.out.join("routers").display());
    Ok(())
}

/// The leave-one-out figures, as a table on stdout.
fn print_leave_out(report: &switchyard_train::bench::LeaveOutReport, args: &BenchArgs) {
    println!(
        "left out {} ({}: removing it costs {:.4} AIQ there), added back from {} prompts ({} rows) of its {} training prompts",
        report.model,
        report.picked,
        report.training_aiq_loss,
        report.profile_prompts,
        report.profile_rows,
        report.available_prompts
    );
    for (name, a) in &report.aiq {
        println!("{name:<12} AIQ {}", with_ci(Some(a.aiq), a.ci, 4));
    }
    let share = |e: &switchyard_train::bench::Estimate| with_ci(Some(e.value), e.ci, 3);
    println!("added back: {} of the full router's AIQ gain over the zero router", share(&report.added_share));
    println!("without it: {} of that gain", share(&report.without_share));
    println!(
        "retrained with the same {} prompts of it: {} of that gain",
        report.profile_prompts,
        share(&report.retrained_share)
    );
    println!("added - full: AIQ {}", with_ci(Some(report.added_minus_full.value), report.added_minus_full.ci, 4));
    let vs = &report.added_minus_retrained;
    println!("added - retrained: AIQ {}", with_ci(Some(vs.value), vs.ci, 4));
    let shares = &report.resampled_shares;
    if args.profile_repeats > 0 && shares.is_empty() {
        println!("no further samples: the full router gains nothing over the zero router, so there is no share");
    } else if !shares.is_empty() {
        let n = shares.len() as f64;
        let mean = shares.iter().sum::<f64>() / n;
        let sd = (shares.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        let (lo, hi) = shares.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &s| (a.min(s), b.max(s)));
        println!(
            "added back from {} more random samples of {} prompts: share mean {mean:.3} (sd {sd:.3}, range {lo:.3} \
             to {hi:.3}); at least 0.9 in {} of them",
            shares.len(),
            args.profile_rows,
            shares.iter().filter(|&&s| s >= 0.9).count()
        );
    }
}
