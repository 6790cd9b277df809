//! `switchyard route`: one prompt in, the decision as JSON out, through the same pipeline as `serve`: with
//! `--config`, the config's rules (semantic ones included), experiment, tiers and catalog capabilities apply.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use switchyard_core::{estimate_input_tokens, RouteReport};
use switchyard_encoder::{Encoder, MiniLm};
use switchyard_server::{load_router, Config, Decided, Query, RequestKnobs, Routers, Steering};

use crate::{KnobArgs, ModelArgs};

/// Arguments of `switchyard route`.
#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The prompt to route.
    #[arg(value_name = "PROMPT")]
    prompt: String,

    /// Router folder written by `switchyard train` (default: the config's router.path).
    #[arg(long, value_name = "DIR", required_unless_present = "config")]
    router: Option<PathBuf>,

    /// A `switchyard.toml` whose rules, experiment, tiers and catalog apply as they do in `serve`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// A request header rules and experiments read, as NAME=VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = pair)]
    headers: Vec<(String, String)>,

    /// A request metadata value rules and experiments read, as KEY=VALUE (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = pair)]
    metadata: Vec<(String, String)>,

    /// The request's user (sticky experiment assignment).
    #[arg(long)]
    user: Option<String>,

    /// Overrides the router's default policy.
    #[command(flatten)]
    knob: KnobArgs,

    #[command(flatten)]
    model: ModelArgs,
}

fn pair(text: &str) -> Result<(String, String), String> {
    let (k, v) = text.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))?;
    if k.trim().is_empty() {
        return Err(format!("expected NAME=VALUE with a name, got {text:?}"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// The decision and what steered it.
#[derive(serde::Serialize)]
struct Answer {
    #[serde(flatten)]
    report: RouteReport,
    rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    similarity: Option<f32>,
    experiment: Option<String>,
    arm: Option<String>,
}

/// Runs `switchyard route`.
pub fn run(args: &RouteArgs) -> anyhow::Result<()> {
    if args.prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty; pass the text to route as the first argument");
    }
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::parse("[log]\nenabled = false\n", std::path::Path::new("<defaults>"))?,
    };
    if let Some(router) = &args.router {
        config.router.path.clone_from(router);
    }
    let (locator, options) = args.model.serving(Some(&config.encoder));
    let encoder = MiniLm::from_locator(&locator, options)?;
    let main = load_router(&config.router.path, "router.path", &encoder)
        .with_context(|| format!("cannot load router {}", config.router.path.display()))?;
    let routers = Routers::assemble(main, &config, &encoder, 1)?;
    let policy = args.knob.policy(Some(&routers.main.manifest.default_policy))?;
    let knobs = RequestKnobs {
        knob: (args.knob.min_quality.is_some() || args.knob.willingness_to_pay.is_some()).then_some(policy.knob),
        allowed: policy.allowed.clone(),
        denied: policy.denied.clone(),
        max_latency_ms: None,
    };
    let query = Query {
        prompt: args.prompt.clone(),
        headers: args.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect(),
        metadata: args.metadata.iter().cloned().collect::<BTreeMap<_, _>>(),
        user: args.user.clone(),
        knobs,
        input_tokens: estimate_input_tokens(&args.prompt),
        request_id: "cli".into(),
        ..Query::default()
    };

    let start = Instant::now();
    let embedding = encoder.embed_batch(&[args.prompt.as_str()])?.remove(0);
    let encode_ms = start.elapsed().as_secs_f64() * 1e3;
    // With online learning on, the decision uses what the server learned (read from its state file).
    let learning = config
        .learning
        .online
        .then(|| switchyard_server::Learning::open(&config.learning, &routers.main))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let steering = Steering {
        routers: &routers,
        config: &config,
        // No upstream is called and no conversation is kept: nothing to slow a model down or pin it.
        health: None,
        sessions: None,
        learning: learning.as_ref(),
    };
    let Decided { report, rule, similarity, arm, .. } =
        switchyard_server::decide(&steering, &query, &embedding, encode_ms)?;
    let answer = Answer {
        report,
        rule,
        similarity,
        experiment: arm.as_ref().map(|a| a.experiment.clone()),
        arm: arm.map(|a| a.arm),
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
