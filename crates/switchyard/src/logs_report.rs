//! `switchyard logs report`: the dashboard's views of a range of the decision log, as one static HTML file
//! (the page of `/ui`, its script and stylesheet inlined, the data embedded) to attach to an email or a pull
//! request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use switchyard_store::{now_ms, parse_duration_ms, parse_since, DashboardQuery, Pricing, PromptLogging};

use crate::logs_source::Source;

/// The range a report covers without --since.
const DEFAULT_DAYS: i64 = 30;

/// Arguments of `logs report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    source: Source,

    /// The HTML file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// The end of the range: a date (2026-11-01) or a UTC time (2026-11-01T12:00:00Z); default now. The
    /// start is --since (default 30 days before the end).
    #[arg(long, value_name = "WHEN")]
    to: Option<String>,

    /// The width of the time series' buckets (5m, 1h, 1d); default: at most 120 buckets.
    #[arg(long, value_name = "DURATION")]
    bucket: Option<String>,

    /// Price the savings at this model (default: the dearest model the router sent traffic to).
    #[arg(long, value_name = "MODEL")]
    reference: Option<String>,

    /// How many recent decisions to list.
    #[arg(long, default_value_t = 50, value_name = "N")]
    recent: usize,

    /// The router whose profiles give prices for models the config's catalog lacks (default: the config's
    /// router.path, else models/default).
    #[arg(long, value_name = "DIR")]
    router: Option<PathBuf>,

    /// Put the recent decisions' prompts in the file (left out by default: a report is meant to be shared;
    /// never in when the config's log.prompts is "hash").
    #[arg(long)]
    prompts: bool,
}

/// Runs `logs report`.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let config = args.source.config()?;
    let now = now_ms();
    let to = match &args.to {
        Some(text) => parse_since(text, now).map_err(|e| anyhow::anyhow!("--to: {e}"))?,
        None => now,
    };
    let (mut db, since) = args.source.open()?;
    let from = if since == i64::MIN { to - DEFAULT_DAYS * 86_400_000 } else { since };
    let bucket = match &args.bucket {
        Some(text) => parse_duration_ms(text)
            .ok_or_else(|| anyhow::anyhow!("--bucket: cannot read {text:?}; use a duration such as 5m, 1h or 1d"))?,
        None => DashboardQuery::auto_bucket(from, to, 120),
    };
    let query = DashboardQuery::new(from, to, bucket, args.recent).map_err(|e| anyhow::anyhow!("{e}"))?;
    let prices = prices(args, config.as_ref())?;
    switchyard_server::dashboard::check_reference(&prices, args.reference.as_deref(), "--reference")
        .map_err(anyhow::Error::msg)?;
    let price = |m: &str| prices.get(m).copied();
    let pricing =
        Pricing { price: &price, candidates: prices.keys().cloned().collect(), reference: args.reference.clone() };
    let mut dashboard = db.dashboard(&query, &pricing)?;
    let hashed = config.as_ref().is_some_and(|c| c.log.prompts == PromptLogging::Hash);
    let shown = args.prompts && !hashed;
    dashboard.log.prompts = Some(if shown { "full" } else { "hash" }.into());
    if !shown {
        dashboard.hide_prompts();
    }
    let html = switchyard_server::ui::report_html(&dashboard)?;
    write(&args.out, &html)?;
    let s = &dashboard.savings;
    let against = s.reference.as_ref().map_or_else(|| "no priced model".to_string(), |r| r.model.clone());
    eprintln!(
        "wrote {}: {} requests from {} to {}; spend ${:.4}, saved ${:.4}{} against {against}",
        args.out.display(),
        dashboard.totals.requests,
        switchyard_store::format_rfc3339(from),
        switchyard_store::format_rfc3339(to),
        dashboard.totals.spend_usd,
        s.saved_usd,
        s.saved_share.map_or(String::new(), |x| format!(" ({:.1}%)", 100.0 * x)),
    );
    Ok(())
}

/// Prices by model: the router's profiles, overridden by the config's catalog.
fn prices(
    args: &ReportArgs,
    config: Option<&switchyard_server::Config>,
) -> anyhow::Result<BTreeMap<String, (f64, f64)>> {
    let path = match (&args.router, config) {
        (Some(path), _) => path.clone(),
        (None, Some(config)) => config.router.path.clone(),
        (None, None) => PathBuf::from("models/default"),
    };
    let router = switchyard_core::Router::load(&path)
        .with_context(|| format!("cannot load the router in {} for its prices (pass --router)", path.display()))?;
    Ok(switchyard_server::dashboard::prices(&router, config.map(|c| c.models.as_slice()).unwrap_or_default()))
}

/// Writes `text` to `path` through a temporary file beside it.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
