//! `switchyard serve`: routing decisions over HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use switchyard_encoder::{EncoderOptions, MiniLm, ModelLocator, Precision, DEFAULT_MAX_TOKENS, DEFAULT_MODEL_DIR};
use switchyard_server::{load_router, serve, AppState, Config};

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

    /// The encoder's matrix arithmetic, f32 or int8 (overrides encoder.precision).
    #[arg(long, value_name = "f32|int8")]
    precision: Option<Precision>,

    /// Override any config setting, e.g. --set server.max_attempts=5 (repeatable). Environment variables
    /// SWITCHYARD__SECTION__KEY=value do the same (SWITCHYARD__SERVER__MAX_ATTEMPTS=5); flags win.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Runs `switchyard serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let default_path = PathBuf::from("switchyard.toml");
    let path = args.config.clone().or_else(|| default_path.is_file().then_some(default_path));
    let text = match &path {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read config {}", p.display()))?,
        None => String::new(),
    };
    // Environment first, then --set, then the dedicated flags: the most specific wins.
    let mut overrides = Config::env_overrides(std::env::vars());
    for item in &args.set {
        let (key, value) = item.split_once('=').with_context(|| format!("--set expects KEY=VALUE, got {item:?}"))?;
        overrides.push((key.trim().to_string(), value.trim().to_string()));
    }
    if let Some(listen) = &args.listen {
        overrides.push(("server.listen".into(), format!("{listen:?}")));
    }
    if let Some(router) = &args.router {
        overrides.push(("router.path".into(), format!("{:?}", router.display().to_string())));
    }
    if let Some(dir) = &args.model_dir {
        overrides.push(("encoder.model_dir".into(), format!("{:?}", dir.display().to_string())));
    }
    if let Some(precision) = args.precision {
        overrides.push(("encoder.precision".into(), format!("{:?}", precision.as_str())));
    }
    let source = path.as_deref().unwrap_or(std::path::Path::new("<defaults>"));
    let config = Config::parse_with_overrides(&text, source, &overrides)?;
    if config.server.client_keys.is_empty() && config.keys.is_empty() {
        tracing::warn!("server.client_keys is empty: /v1/* accepts requests without an API key");
    }

    let locator = ModelLocator::new(DEFAULT_MODEL_DIR).with_explicit_dir(config.encoder.model_dir.clone());
    let options = EncoderOptions {
        precision: config.encoder.precision,
        ..EncoderOptions::with_max_tokens(config.encoder.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS))
    };
    let encoder = MiniLm::from_locator(&locator, options)?;
    let router = load_router(&config.router.path, "router.path", &encoder)?;
    let state = Arc::new(AppState::new(router, Arc::new(encoder), config)?);
    if let Some(log) = &state.log {
        tracing::info!("decision log: {}", log.location());
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(serve(state)).context("server failed")
}
