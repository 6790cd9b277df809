//! `switchyard calibrate`: set a router's default knob so that, on given prompts, it sends a target share of
//! calls to a named model or spends a target amount per 1,000 requests.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use switchyard_core::{estimate_input_tokens, Knob, Router};
use switchyard_encoder::MiniLm;
use switchyard_train::{
    calibrate, default_cache_dir, embed_texts, read_prompts, CalibrationTarget, EmbeddingCache, KnobKind,
};

use crate::ModelArgs;

/// Arguments of `switchyard calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Router folder written by `switchyard train`; its manifest's default policy is updated.
    #[arg(long, value_name = "DIR")]
    router: PathBuf,

    /// Labelled logs whose prompts represent the expected traffic (every row's prompt is used once).
    #[arg(long = "logs", required = true, value_name = "FILE")]
    logs: Vec<PathBuf>,

    /// The knob to calibrate (default: the kind of the router's current default knob).
    #[arg(long, value_enum)]
    knob: Option<KnobChoice>,

    /// Target: route this share of calls to this model, as MODEL=SHARE (e.g. gpt-4o=0.2).
    #[arg(
        long,
        value_name = "MODEL=SHARE",
        conflicts_with = "spend_per_1000",
        required_unless_present = "spend_per_1000"
    )]
    share: Option<String>,

    /// Target: spend this many USD per 1,000 requests (expected cost, from the router's cost model).
    #[arg(long, value_name = "USD")]
    spend_per_1000: Option<f64>,

    /// Print the result without writing it into the router.
    #[arg(long)]
    dry_run: bool,

    /// Skip rows that break the labelled-log contract instead of stopping.
    #[arg(long)]
    skip_bad_rows: bool,

    /// Embedding cache folder.
    #[arg(long, env = "SWITCHYARD_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    #[command(flatten)]
    model: ModelArgs,
}

/// A knob to calibrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KnobChoice {
    /// The min-quality bar.
    MinQuality,
    /// The willingness to pay.
    WillingnessToPay,
}

/// Runs `switchyard calibrate`.
pub fn run(args: &CalibrateArgs) -> anyhow::Result<()> {
    let target = match (&args.share, args.spend_per_1000) {
        (Some(spec), _) => {
            let (model, share) =
                spec.rsplit_once('=').with_context(|| format!("--share must be MODEL=SHARE, got {spec:?}"))?;
            let share: f64 = share.parse().with_context(|| format!("--share: {share:?} is not a number"))?;
            CalibrationTarget::ModelShare { model: model.to_string(), share }
        }
        (None, Some(usd)) => CalibrationTarget::SpendPer1000(usd),
        (None, None) => bail!("give a target: --share MODEL=SHARE or --spend-per-1000 USD"),
    };
    let mut router =
        Router::load(&args.router).with_context(|| format!("cannot load router {}", args.router.display()))?;
    let kind = match args.knob {
        Some(KnobChoice::MinQuality) => KnobKind::MinQuality,
        Some(KnobChoice::WillingnessToPay) => KnobKind::WillingnessToPay,
        None => match router.manifest.default_policy.knob {
            Knob::MinQuality(_) => KnobKind::MinQuality,
            Knob::WillingnessToPay(_) => KnobKind::WillingnessToPay,
        },
    };
    let encoder = MiniLm::from_locator(&args.model.locator(), args.model.options())?;
    router.check_encoder(&switchyard_server::encoder_info(&encoder))?;

    let (prompts, summary) = read_prompts(&args.logs, args.skip_bad_rows)?;
    eprintln!("{summary}; calibrating on {} distinct prompts", prompts.len());
    let mut cache = EmbeddingCache::open(&args.cache_dir.clone().unwrap_or_else(default_cache_dir), &encoder)?;
    let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let vectors = embed_texts(&mut cache, &encoder, &texts, 32, true)?;
    let estimates: Vec<_> =
        prompts.iter().zip(&vectors).map(|(text, v)| router.predict(v, estimate_input_tokens(text)).models).collect();
    let result = calibrate(&estimates, kind, &target, &router.manifest.default_policy)?;
    let what = match &target {
        CalibrationTarget::ModelShare { model, .. } => format!("share of calls to {model}"),
        CalibrationTarget::SpendPer1000(_) => "USD per 1,000 requests".to_string(),
    };
    println!(
        "{}: {} (target {:.4}, achieved {:.4} {what} on {} prompts)",
        match result.knob {
            Knob::MinQuality(_) => "min_quality",
            Knob::WillingnessToPay(_) => "willingness_to_pay",
        },
        result.knob.value(),
        result.target,
        result.achieved,
        result.prompts
    );
    let tolerance = match &target {
        CalibrationTarget::ModelShare { .. } => 0.02,
        CalibrationTarget::SpendPer1000(usd) => 0.05 * usd.max(1e-9),
    };
    if (result.achieved - result.target).abs() > tolerance {
        eprintln!("note: this knob cannot reach the target on these prompts; the value above is the closest it gets");
    }
    if !args.dry_run {
        router.manifest.default_policy.knob = result.knob;
        router.save(&args.router).with_context(|| format!("cannot update router {}", args.router.display()))?;
        println!("default policy of {} updated", args.router.display());
    }
    Ok(())
}
