//! `switchyard route`: one prompt in, the decision as JSON out.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use switchyard_core::{
    estimate_input_tokens, Decision, DomainScore, ModelEstimate, Policy, Router,
};
use switchyard_encoder::{Encoder, MiniLm};

use crate::{KnobArgs, ModelArgs};

/// Domains reported in the decision.
const TOP_DOMAINS: usize = 3;

/// Arguments of `switchyard route`.
#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The prompt to route.
    #[arg(value_name = "PROMPT")]
    prompt: String,

    /// Router folder written by `switchyard train`.
    #[arg(long, value_name = "DIR")]
    router: PathBuf,

    /// Overrides the router's default policy.
    #[command(flatten)]
    knob: KnobArgs,

    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Serialize)]
struct Output<'a> {
    model: &'a str,
    reason: &'a str,
    meets_bar: bool,
    policy: &'a Policy,
    ranking: &'a [String],
    complexity: f64,
    domains: &'a [DomainScore],
    models: &'a [ModelEstimate],
    tokens: usize,
    truncated: bool,
    timing_ms: Timing,
}

#[derive(Serialize)]
struct Timing {
    encode: f64,
    decide: f64,
}

/// Runs `switchyard route`.
pub fn run(args: &RouteArgs) -> anyhow::Result<()> {
    if args.prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty; pass the text to route as the first argument");
    }
    let router = Router::load(&args.router)
        .with_context(|| format!("cannot load router {}", args.router.display()))?;
    let encoder = MiniLm::from_locator(&args.model.locator(), args.model.options())?;
    router.check_encoder(encoder.id(), encoder.dim())?;
    let policy = args.knob.policy(Some(&router.manifest.default_policy))?;

    let start = Instant::now();
    let embedding = encoder.embed_batch(&[args.prompt.as_str()])?.remove(0);
    let encoded = Instant::now();
    let (prediction, decision): (_, Decision) = router.route(
        &embedding.vector,
        estimate_input_tokens(&args.prompt),
        &policy,
    )?;
    let decided = Instant::now();

    let output = Output {
        model: &decision.model,
        reason: &decision.reason,
        meets_bar: decision.meets_bar,
        policy: &policy,
        ranking: &decision.ranking,
        complexity: prediction.complexity,
        domains: &prediction.domains[..prediction.domains.len().min(TOP_DOMAINS)],
        models: &prediction.models,
        tokens: embedding.tokens,
        truncated: embedding.truncated,
        timing_ms: Timing {
            encode: (encoded - start).as_secs_f64() * 1e3,
            decide: (decided - encoded).as_secs_f64() * 1e3,
        },
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
