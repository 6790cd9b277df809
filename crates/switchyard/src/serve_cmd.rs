//! `switchyard serve`: routing decisions over HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use switchyard_core::Router;
use switchyard_encoder::{Encoder, EncoderOptions, MiniLm, ModelLocator, DEFAULT_MAX_TOKENS, DEFAULT_MODEL_DIR};
use switchyard_server::{serve, AppState, Config};

/// Arguments of `switchyard serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, ./switchyard.toml is read if present, else defaults apply.
    #[arg(long, env = "SWITCHYARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address to listen on (overrides server.listen).
    #[arg(long, env = "SWITCHYARD_LISTEN", value_name = "ADDR")]
    listen: Option<String>,

    /// Router folder (overrides router.path).
    #[arg(long, env = "SWITCHYARD_ROUTER", value_name = "DIR")]
    router: Option<PathBuf>,

    /// Encoder model folder (overrides encoder.model_dir).
    #[arg(long, env = "SWITCHYARD_MODEL_DIR", value_name = "DIR")]
    model_dir: Option<PathBuf>,
}

/// Runs `switchyard serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let default_path = PathBuf::from("switchyard.toml");
    let path = args.config.clone().or_else(|| default_path.is_file().then_some(default_path));
    let mut config = match &path {
        Some(p) => Config::load(p)?,
        None => Config::parse("", std::path::Path::new("<defaults>"))?,
    };
    if let Some(listen) = &args.listen {
        config.server.listen = listen.clone();
    }
    if let Some(router) = &args.router {
        config.router.path = router.clone();
    }
    if let Some(dir) = &args.model_dir {
        config.encoder.model_dir = Some(dir.clone());
    }
    let source = path.as_deref().unwrap_or(std::path::Path::new("<defaults and flags>"));
    config.validate(source)?;
    if config.server.client_keys.is_empty() {
        tracing::warn!("server.client_keys is empty: /v1/* accepts requests without an API key");
    }

    let mut router = Router::load(&config.router.path)
        .with_context(|| format!("cannot load router {} (router.path)", config.router.path.display()))?;
    if let Some(knob) = config.default_knob() {
        router.manifest.default_policy.knob = knob;
    }
    let locator = ModelLocator::new(DEFAULT_MODEL_DIR).with_explicit_dir(config.encoder.model_dir.clone());
    let options = EncoderOptions { max_tokens: config.encoder.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS) };
    let encoder = MiniLm::from_locator(&locator, options)?;
    router.check_encoder(encoder.id(), encoder.dim())?;

    let state = Arc::new(AppState::new(router, Arc::new(encoder), config));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(serve(state)).context("server failed")
}
