//! `switchyard profile`: the models a trained router routes between, listed with their evidence, or one
//! removed without retraining the others.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use switchyard_core::{ProfileBasis, Router};

/// `switchyard profile ...`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the router's models: prices, mean output length, and the evidence behind each (logged outcomes,
    /// in total and per domain) with its prior P(success) per domain.
    List(ListArgs),
    /// Remove a model from the router (its predictor outputs, calibration, priors, output length, costs);
    /// the other models' predictions do not change. The router folder is rewritten atomically, and a
    /// running server picks it up on reload (SIGHUP or POST /admin/reload).
    Remove(RemoveArgs),
    /// Add a model without retraining: fitted from a small labelled eval set (at least 50 prompts) in the
    /// router's shared representation, or from published per-domain accuracies (--prior). The other models'
    /// predictions do not change; the router folder is rewritten atomically.
    Add(crate::profile_add_cmd::AddArgs),
    /// Refit a model added with `profile add` on its eval rows merged with new ones.
    Update(crate::profile_add_cmd::UpdateArgs),
    /// Pick representative prompts from logs (k-means over their embeddings), one JSON object per line: the
    /// prompts to run a new model on, label, and pass to `profile add --logs`.
    Prompts(crate::profile_add_cmd::PromptsArgs),
}

/// Arguments of `profile list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The router folder.
    #[arg(long, value_name = "DIR")]
    router: PathBuf,

    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `profile remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The router folder (rewritten in place).
    #[arg(long, value_name = "DIR")]
    router: PathBuf,

    /// The model to remove.
    #[arg(long, value_name = "NAME")]
    model: String,
}

/// Runs a `profile` command.
pub fn run(command: &ProfileCommand) -> anyhow::Result<()> {
    match command {
        ProfileCommand::List(args) => list(args),
        ProfileCommand::Remove(args) => remove(args),
        ProfileCommand::Add(args) => crate::profile_add_cmd::add(args),
        ProfileCommand::Update(args) => crate::profile_add_cmd::update(args),
        ProfileCommand::Prompts(args) => crate::profile_add_cmd::prompts(args),
    }
}

fn load(dir: &std::path::Path) -> anyhow::Result<Router> {
    Router::load(dir).with_context(|| format!("cannot load the router in {}", dir.display()))
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    let router = load(&args.router)?;
    let mut out = String::new();
    write_list(&router, args.json, &mut out)?;
    // A reader that stops early (`| head`) is not an error.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

fn write_list(router: &Router, json: bool, out: &mut String) -> anyhow::Result<()> {
    use std::fmt::Write;
    let profiles = router.profiles();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&profiles)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} models, trained on {} rows ({} prompts)",
        profiles.len(),
        router.manifest.training.rows,
        router.manifest.training.prompts
    )?;
    writeln!(
        out,
        "{:<28} {:>9} {:>9} {:>8} {:>9}  strongest domains (prior P, evidence)",
        "model", "in $/M", "out $/M", "out tok", "evidence"
    )?;
    for p in &profiles {
        let evidence = p.evidence_rows.map_or_else(|| "-".to_string(), |r| format!("{r:.0}"));
        let mut domains: Vec<(&String, f64, f64)> = p
            .prior_by_domain
            .iter()
            .map(|(d, prior)| {
                let seen = p.evidence_by_domain.iter().find(|(e, _)| e == d).map_or(0.0, |(_, n)| *n);
                (d, *prior, seen)
            })
            .collect();
        domains.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = domains.iter().take(3).map(|(d, prior, n)| format!("{d} {prior:.2} ({n:.0})")).collect();
        let added = p.added.as_ref().map_or_else(String::new, |a| match a.basis {
            ProfileBasis::Prior => "  [added: published priors only]".to_string(),
            basis => format!("  [added from {} eval rows ({basis})]", a.rows),
        });
        writeln!(
            out,
            "{:<28} {:>9.3} {:>9.3} {:>8.0} {:>9}  {}{added}",
            p.model,
            p.input_usd_per_mtok,
            p.output_usd_per_mtok,
            p.mean_output_tokens,
            evidence,
            top.join(", ")
        )?;
    }
    Ok(())
}

fn remove(args: &RemoveArgs) -> anyhow::Result<()> {
    let mut router = load(&args.router)?;
    router.remove_model(&args.model)?;
    router.save(&args.router).with_context(|| format!("cannot write the router to {}", args.router.display()))?;
    eprintln!(
        "removed {} from {}; {} models left (reload a running server: SIGHUP or POST /admin/reload)",
        args.model,
        args.router.display(),
        router.manifest.models.len()
    );
    Ok(())
}
