//! `switchyard logs`: the decision log the server writes, exported as labelled logs or summarised.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use switchyard_store::{export, stats_with, StatsOptions};

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
    /// Write the dashboard's views of a range (requests and spend over time, savings against a reference
    /// model, quality, traffic, keys, experiments, deployments, the cache, recent decisions) as one static
    /// HTML file to attach to an email or a pull request.
    Report(crate::logs_report::ReportArgs),
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

    /// The experiment arm the others are compared with, as EXPERIMENT=ARM or ARM (every experiment with an arm
    /// of that name). Default: the config's `[experiment]` first arm, else each experiment's first arm by name.
    #[arg(long, value_name = "[EXPERIMENT=]ARM")]
    control: Option<String>,
}

impl StatsArgs {
    /// How to read the log: the config's refusal patterns and the control arm.
    fn options(&self) -> anyhow::Result<StatsOptions> {
        let config = self.source.config()?;
        let mut options =
            StatsOptions { refusal_patterns: Source::refusal_patterns(config.as_ref()), ..StatsOptions::default() };
        if let Some(config) = &config {
            if let Some(e) = &config.experiment {
                if let Some(first) = e.arms.first() {
                    options.control.insert(e.name.clone(), first.name.clone());
                }
            }
        }
        match self.control.as_deref().map(|c| c.split_once('=').map_or(("*", c), |(e, a)| (e, a))) {
            Some((_, "")) | Some(("", _)) => {
                anyhow::bail!("--control takes EXPERIMENT=ARM or ARM, got {:?}", self.control.as_deref().unwrap_or(""))
            }
            Some((experiment, arm)) => {
                options.control = [(experiment.trim().to_string(), arm.trim().to_string())].into();
            }
            None => {}
        }
        Ok(options)
    }
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
        LogsCommand::Report(args) => crate::logs_report::run(args),
        LogsCommand::Stats(args) => {
            let (mut store, since) = args.source.open()?;
            let s = stats_with(&mut store, since, &args.options()?)?;
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: StatsArgs,
    }

    fn options(control: &str) -> anyhow::Result<StatsOptions> {
        Wrapper::try_parse_from(["stats", "--db", "/nowhere.sqlite", "--control", control])?.args.options()
    }

    #[test]
    fn the_control_arm_is_read_for_one_experiment_or_all() {
        let one = options("tone=formal").unwrap();
        assert_eq!(one.control, [("tone".to_string(), "formal".to_string())].into());
        let all = options("formal").unwrap();
        assert_eq!(all.control, [("*".to_string(), "formal".to_string())].into());
        for bad in ["=formal", "tone="] {
            assert!(options(bad).unwrap_err().to_string().contains("--control takes EXPERIMENT=ARM"), "{bad}");
        }
        // With --db and no --config, no config is read: the default refusal patterns apply.
        assert_eq!(one.refusal_patterns, StatsOptions::default().refusal_patterns);
    }
}
