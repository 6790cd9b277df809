//! `switchyard route`: one prompt in, the decision as JSON out.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use switchyard_core::{estimate_input_tokens, RouteReport, Router, Timing};
use switchyard_encoder::{Encoder, MiniLm};

use crate::{KnobArgs, ModelArgs};

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

/// Runs `switchyard route`.
pub fn run(args: &RouteArgs) -> anyhow::Result<()> {
    if args.prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty; pass the text to route as the first argument");
    }
    let router = Router::load(&args.router).with_context(|| format!("cannot load router {}", args.router.display()))?;
    let encoder = MiniLm::from_locator(&args.model.locator(), args.model.options())?;
    router.check_encoder(encoder.id(), encoder.dim())?;
    let policy = args.knob.policy(Some(&router.manifest.default_policy))?;

    let start = Instant::now();
    let embedding = encoder.embed_batch(&[args.prompt.as_str()])?.remove(0);
    let encoded = Instant::now();
    let (prediction, decision) = router.route(&embedding.vector, estimate_input_tokens(&args.prompt), &policy)?;
    let timing =
        Timing { encode: (encoded - start).as_secs_f64() * 1e3, decide: encoded.elapsed().as_secs_f64() * 1e3 };
    let report = RouteReport::new(prediction, decision, policy, embedding.tokens, embedding.truncated, timing);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
