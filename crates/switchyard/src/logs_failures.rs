//! `switchyard logs failures`: where each model does worse than the router predicted, from the decision log's
//! feedback, grouped by the router's domain and complexity band and by clusters of the prompts.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ndarray::Array2;
use switchyard_encoder::MiniLm;
use switchyard_server::load_router;
use switchyard_store::{starts_like_refusal, LogRows, LoggedRequest};
use switchyard_train::{
    default_cache_dir, failure_report, EmbeddingCache, FailureGroup, FailureOptions, FailureReport, LoggedOutcome,
};

use crate::logs_source::Source;
use crate::ModelArgs;

/// Arguments of `logs failures`.
#[derive(Debug, Args)]
pub struct FailuresArgs {
    #[command(flatten)]
    source: Source,

    /// The router whose domains, complexity and predictions the report uses (default: the config's
    /// router.path, else models/default).
    #[arg(long, value_name = "DIR")]
    router: Option<PathBuf>,

    /// Only this model's groups.
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,

    /// Only groups with at least this many requests with feedback.
    #[arg(long, default_value_t = 30, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    min_requests: u32,

    /// Clusters of the prompts' embeddings (default: √(requests / 2), between 2 and 16).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=256))]
    clusters: Option<u32>,

    /// Groups printed per table (the JSON has them all).
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,

    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,

    /// Embedding cache folder.
    #[arg(long, env = "SWITCHYARD_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    #[command(flatten)]
    encoder: ModelArgs,
}

/// What was read from the log, and what could not be analysed.
#[derive(Debug, Default)]
struct Read {
    /// What counts as a refusal (lowercase).
    refusals: Vec<String>,
    outcomes: Vec<LoggedOutcome>,
    /// Answered requests without feedback (not analysed).
    unscored: usize,
    /// Scored requests whose prompt was logged as a hash only.
    without_prompt: usize,
    /// Requests no model answered.
    unanswered: usize,
}

impl Read {
    fn add(&mut self, request: LoggedRequest) {
        let r = request.record;
        let Some(model) = r.chosen_model else {
            self.unanswered += 1;
            return;
        };
        let Some(score) = request.feedback else {
            self.unscored += 1;
            return;
        };
        let Some(prompt) = r.prompt else {
            self.without_prompt += 1;
            return;
        };
        let text = r.response.as_deref();
        self.outcomes.push(LoggedOutcome {
            predicted: r.estimates.iter().find(|e| e.model == model).map(|e| e.p),
            request_id: r.request_id,
            model,
            input_tokens: r.input_tokens.map_or_else(|| switchyard_core::estimate_input_tokens(&prompt), |t| t as f64),
            prompt,
            score,
            cut: r.finish_reason.as_deref().map(|f| f == "length"),
            empty: text.map(|t| t.is_empty() && r.tool_calls.is_none()),
            refused: text.map(|t| starts_like_refusal(t, &self.refusals)),
        });
    }
}

/// Runs `switchyard logs failures`.
pub fn run(args: &FailuresArgs) -> anyhow::Result<()> {
    let config = args.source.config()?;
    let (mut store, since) = args.source.open()?;
    let mut read = Read { refusals: Source::refusal_patterns(config.as_ref()), ..Read::default() };
    store.each_logged(since, &mut |request| read.add(request))?;
    let (locator, options) = args.encoder.serving(config.as_ref().map(|c| &c.encoder));
    let encoder = MiniLm::from_locator(&locator, options)?;
    let router_path = match (&args.router, &config) {
        (Some(path), _) => path.clone(),
        (None, Some(config)) => config.router.path.clone(),
        (None, None) => PathBuf::from("models/default"),
    };
    let router = load_router(&router_path, "--router", &encoder)
        .with_context(|| format!("cannot load the router in {}", router_path.display()))?;
    if read.outcomes.is_empty() {
        anyhow::bail!(
            "nothing to analyse: no answered request with feedback and its prompt since then ({} answered without \
             feedback, {} scored with the prompt logged as a hash only, {} unanswered); send feedback with POST \
             /v1/feedback",
            read.unscored,
            read.without_prompt,
            read.unanswered
        );
    }
    let dir = args.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let mut cache = EmbeddingCache::open(&dir, &encoder)?;
    let texts: Vec<&str> = read.outcomes.iter().map(|o| o.prompt.as_str()).collect();
    let vectors = switchyard_train::embed_texts(&mut cache, &encoder, &texts, 32, !args.json)?;
    let dim = vectors.first().map_or(0, Vec::len);
    let embeddings = Array2::from_shape_fn((vectors.len(), dim), |(r, c)| vectors[r][c]);
    let options = FailureOptions {
        min_requests: args.min_requests as usize,
        clusters: args.clusters.map(|k| k as usize),
        model: args.model.clone(),
        seed: 17,
    };
    let report = failure_report(&router, &read.outcomes, &embeddings, &options)?;
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["unscored"] = read.unscored.into();
        value["without_prompt"] = read.without_prompt.into();
        value["unanswered"] = read.unanswered.into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&report, &read, args.top));
    }
    Ok(())
}

/// The report as text: a summary, then the groups by domain, by domain and band, and by cluster.
fn render(report: &FailureReport, read: &Read, top: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} requests with feedback analysed ({} routed, {} whose model was named: predicted now by the router); \
         left out: {} answered without feedback, {} with the prompt logged as a hash only, {} unanswered, {} \
         answered by a model the router does not know",
        report.scored,
        report.routed,
        report.predicted_now,
        read.unscored,
        read.without_prompt,
        read.unanswered,
        report.unknown_model
    );
    let _ = writeln!(
        out,
        "{} groups with at least {} scored requests; gap = mean feedback − mean predicted P(success), 95% \
         interval; most surely below the prediction first. A routed request's P is the one the policy chose on, \
         so it leans high; about 1 group in 40 lies wholly below 0 by chance.",
        report.groups_tested, report.min_requests
    );
    let tables = [
        ("by domain", &report.by_domain),
        ("by domain and complexity band", &report.by_band),
        ("by cluster of the prompts", &report.by_cluster),
    ];
    for (title, groups) in tables {
        let _ = writeln!(out, "\n{title} ({} groups)", groups.len());
        if groups.is_empty() {
            let _ = writeln!(out, "  none: too few requests with feedback (lower --min-requests)");
            continue;
        }
        for g in groups.iter().take(top) {
            let _ = writeln!(out, "{}", line(g));
        }
    }
    out
}

fn line(g: &FailureGroup) -> String {
    let rate = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{:.0}%", r * 100.0));
    format!(
        "  {:<28} {}\n    {} scored ({} routed): observed {:.2}, predicted {:.2}, gap {:+.2} [{:+.2}, {:+.2}]; cut {}, \
         empty {}, refused {}; e.g. {}",
        g.model,
        g.key,
        g.scored,
        g.routed,
        g.observed,
        g.predicted,
        g.gap,
        g.gap_ci.lo,
        g.gap_ci.hi,
        rate(g.cut_rate),
        rate(g.empty_rate),
        rate(g.refusal_rate),
        g.examples.join(", ")
    )
}
