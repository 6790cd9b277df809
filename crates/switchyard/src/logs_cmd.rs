//! `switchyard logs`: the decision log the server writes, exported as labelled logs or summarised.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use switchyard_store::{export, stats_with};

use crate::logs_source::Source;

/// `switchyard logs ...`.
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Write logged requests that have feedback as labelled logs (the input of `switchyard train`).
    ///
    /// One JSON line per request: prompt, model (the one that answered), score (the feedback), observed
    /// cost and tokens, latency, and the request id, arm and rule. Requests without feedback, whose prompt
    /// was logged as a hash only, or that no model answered are left out and counted.
    Export(ExportArgs),
    /// Summarise traffic, spend, fallbacks and feedback by model and by experiment arm (95% intervals).
    Stats(StatsArgs),
    /// Print one request whole: the prompt, the decision with every model's estimate, every upstream attempt,
    /// the answer (as `log.responses` kept it), the cost and the feedback.
    Show(ShowArgs),
    /// List where each model does worse than the router predicted: logged requests with feedback, grouped by
    /// the router's domain and complexity band and by clusters of their prompts, each with the observed and
    /// predicted success, an interval, cut and empty answers, and example request ids.
    Failures(crate::logs_failures::FailuresArgs),
}

/// Arguments of `logs show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The request id (`x-switchyard-request-id`, or `request_id` in an export).
    #[arg(value_name = "REQUEST_ID")]
    request_id: String,

    #[command(flatten)]
    source: Source,

    /// Print the logged record as JSON instead.
    #[arg(long)]
    json: bool,
}

/// Arguments of `logs export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    source: Source,

    /// The labelled-log file to write (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Arguments of `logs stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    source: Source,

    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// Print only one breakdown: by client key (requests, refusals, tokens, spend) or by model.
    #[arg(long, value_enum)]
    by: Option<StatsBy>,
}

/// The breakdowns `logs stats --by` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsBy {
    /// Per client key (`[[keys]]` names).
    Key,
    /// Per model that answered.
    Model,
}

/// Runs `switchyard logs`.
pub fn run(command: &LogsCommand) -> anyhow::Result<()> {
    match command {
        LogsCommand::Export(args) => {
            let (mut store, since) = args.source.open()?;
            let summary = if args.out.as_os_str() == "-" {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                let summary = export(&mut store, since, &mut out)?;
                out.flush()?;
                summary
            } else {
                // Written beside the target and renamed, so a failed export never leaves half a file.
                let tmp = args.out.with_extension("jsonl.partial");
                let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
                let mut out = std::io::BufWriter::new(file);
                let summary = export(&mut store, since, &mut out)?;
                out.flush().with_context(|| format!("cannot write {}", tmp.display()))?;
                drop(out);
                std::fs::rename(&tmp, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
                summary
            };
            eprintln!("{summary}");
            if summary.written == 0 {
                eprintln!("nothing to train on yet: send feedback with POST /v1/feedback");
            }
            Ok(())
        }
        LogsCommand::Show(args) => {
            let (mut store, _) = args.source.open()?;
            let Some(request) = store.request(&args.request_id)? else {
                anyhow::bail!(
                    "no request {:?} in the decision log (ids are in x-switchyard-request-id; `logs export` lists them \
                     as request_id)",
                    args.request_id
                );
            };
            if args.json {
                let mut value = serde_json::to_value(&request.record)?;
                value["feedback"] = serde_json::json!(request.feedback);
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", crate::logs_show::render(&request));
            }
            Ok(())
        }
        LogsCommand::Failures(args) => crate::logs_failures::run(args),
        LogsCommand::Stats(args) => {
            let (mut store, since) = args.source.open()?;
            let s = stats_with(&mut store, since, &args.source.refusal_patterns()?)?;
            match (args.json, args.by) {
                (true, None) => println!("{}", serde_json::to_string_pretty(&s)?),
                (true, Some(StatsBy::Key)) => println!("{}", serde_json::to_string_pretty(&s.by_key)?),
                (true, Some(StatsBy::Model)) => println!("{}", serde_json::to_string_pretty(&s.by_model)?),
                (false, Some(StatsBy::Key)) => print!("{}", s.key_table()),
                (false, _) => print!("{s}"),
            }
            Ok(())
        }
    }
}
