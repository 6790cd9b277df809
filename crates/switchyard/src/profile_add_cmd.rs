//! `switchyard profile add` and `profile update`: a model added to a trained router from a small labelled
//! eval set or from published per-domain accuracies, fitted in the router's shared representation while
//! everything else stays as it is.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use switchyard_core::{Catalog, ProfileBasis, Router};
use switchyard_encoder::MiniLm;
use switchyard_train::{
    default_cache_dir, embed_eval, fit_profile, representative, strata, EmbeddingCache, EvalRows, Prices,
    ProfileRequest, Stratum,
};

use crate::ModelArgs;

/// What the commands that read and embed logs share.
#[derive(Debug, Args)]
pub struct EvalOptions {
    /// Seed of the cross-validation folds (`add`, `update`) or of the clustering (`prompts`).
    #[arg(long, default_value_t = 17)]
    seed: u64,

    /// Skip rows that break the labelled-log contract instead of stopping.
    #[arg(long)]
    skip_bad_rows: bool,

    /// Embedding cache folder.
    #[arg(long, env = "SWITCHYARD_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,

    #[command(flatten)]
    encoder: ModelArgs,
}

impl EvalOptions {
    /// The encoder and its embedding cache.
    fn encoder(&self) -> anyhow::Result<(MiniLm, EmbeddingCache)> {
        let encoder = MiniLm::from_locator(&self.encoder.locator(), self.encoder.options())?;
        let dir = self.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let cache = EmbeddingCache::open(&dir, &encoder)?;
        Ok((encoder, cache))
    }
}

/// Arguments of `profile add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The router folder (rewritten atomically).
    #[arg(long, value_name = "DIR")]
    router: PathBuf,

    /// The model's name, as logs, catalogs and decisions name it.
    #[arg(long, value_name = "NAME")]
    model: String,

    /// Labelled logs with the model's outcomes (at least 50 distinct prompts; rows about other models are
    /// passed over, rows marked "split": "test" left out).
    #[arg(long = "logs", value_name = "FILE")]
    logs: Vec<PathBuf>,

    /// Published P(success) per domain, e.g. `math=0.82,code=0.74` (`all=0.7` for every domain not named).
    /// Without --logs the model rests on these alone, and is marked as a prior in the manifest and decisions.
    #[arg(long = "prior", value_delimiter = ',', value_name = "DOMAIN=P")]
    priors: Vec<String>,

    /// USD per million input tokens.
    #[arg(long, value_name = "USD", requires = "output_usd_per_mtok")]
    input_usd_per_mtok: Option<f64>,

    /// USD per million output tokens.
    #[arg(long, value_name = "USD", requires = "input_usd_per_mtok")]
    output_usd_per_mtok: Option<f64>,

    /// Take the model's prices from this catalog instead.
    #[arg(long, value_name = "FILE", conflicts_with = "input_usd_per_mtok")]
    catalog: Option<PathBuf>,

    /// Mean output tokens per call, when the eval rows report no output_tokens.
    #[arg(long, value_name = "N")]
    mean_output_tokens: Option<f64>,

    /// Replace a model of the same name (its old profile is dropped).
    #[arg(long)]
    replace: bool,

    #[command(flatten)]
    eval: EvalOptions,
}

/// Arguments of `profile update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The router folder (rewritten atomically).
    #[arg(long, value_name = "DIR")]
    router: PathBuf,

    /// A model added earlier with `profile add`.
    #[arg(long, value_name = "NAME")]
    model: String,

    /// New labelled logs to merge with the eval files the model was added from.
    #[arg(long = "logs", value_name = "FILE", required = true)]
    logs: Vec<PathBuf>,

    #[command(flatten)]
    eval: EvalOptions,
}

/// Arguments of `profile prompts`.
#[derive(Debug, Args)]
pub struct PromptsArgs {
    /// Logs (labelled, or exported decision logs) to pick from: every distinct prompt, whatever its model.
    #[arg(long = "logs", value_name = "FILE", required = true)]
    logs: Vec<PathBuf>,

    /// How many prompts to pick.
    #[arg(long, value_name = "N", default_value_t = 200)]
    n: usize,

    /// The router whose domains the sample's mix follows (its domain head labels each prompt).
    #[arg(long, value_name = "DIR", default_value = "models/default")]
    router: PathBuf,

    #[command(flatten)]
    eval: EvalOptions,
}

/// Runs `profile prompts`: prompts that represent the traffic, one JSON object per line, to run a new model
/// on and label. A stratified sample: the picks follow the logs' mix over the router's domains (shared in
/// proportion to their prompts) and, within a domain, over its complexity (a systematic draw along the
/// complexity order). The sample's mix is printed next to the logs'.
pub fn prompts(args: &PromptsArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("--n 0 picks nothing: give how many prompts to pick (200 is plenty for `profile add`)");
    }
    let router = load(&args.router)?;
    let domains = router.manifest.domains.clone();
    if args.n < domains.len() {
        eprintln!(
            "warning: --n {} is fewer than the router's {} domains: some domains get no prompt; the largest come \
             first",
            args.n,
            domains.len()
        );
    }
    let (texts, _) = switchyard_train::read_prompts(&args.logs, args.eval.skip_bad_rows)?;
    if texts.is_empty() {
        bail!("no prompts in {}", args.logs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    let (encoder, mut cache) = args.eval.encoder()?;
    router.check_encoder(&switchyard_server::encoder_info(&encoder))?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = switchyard_train::embed_texts(&mut cache, &encoder, &refs, 32, !args.eval.quiet)?;
    let strata = strata(&router, &vectors);
    let chosen = representative(&strata, args.n, args.eval.seed);
    eprint!("{}", mix_table(&domains, &strata, &chosen));
    let mut out = String::new();
    for i in &chosen {
        out.push_str(&serde_json::json!({ "prompt": texts[*i] }).to_string());
        out.push('\n');
    }
    eprintln!("{} prompts of {} distinct ones, following their mix", chosen.len(), texts.len());
    match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// The share of each domain and of each complexity band in the logs (`strata`, one per prompt) and in the
/// sample (`chosen`), as a table.
fn mix_table(domains: &[String], strata: &[Stratum], chosen: &[usize]) -> String {
    const BANDS: [(&str, f64, f64); 3] = [
        ("complexity < 0.33", 0.0, 1.0 / 3.0),
        ("complexity 0.33-0.67", 1.0 / 3.0, 2.0 / 3.0),
        ("complexity >= 0.67", 2.0 / 3.0, 2.0),
    ];
    let share = |test: &dyn Fn(&Stratum) -> bool, rows: &mut dyn Iterator<Item = &Stratum>, n: usize| {
        100.0 * rows.filter(|s| test(s)).count() as f64 / n.max(1) as f64
    };
    let mut lines = Vec::new();
    let names = domains
        .iter()
        .enumerate()
        .map(|(d, name)| (name.as_str(), Box::new(move |s: &Stratum| s.domain == d) as Box<dyn Fn(&Stratum) -> bool>));
    let bands = BANDS.iter().map(|&(name, lo, hi)| {
        (name, Box::new(move |s: &Stratum| s.complexity >= lo && s.complexity < hi) as Box<dyn Fn(&Stratum) -> bool>)
    });
    for (name, test) in names.chain(bands) {
        let logs = share(&*test, &mut strata.iter(), strata.len());
        let sample = share(&*test, &mut chosen.iter().map(|&i| &strata[i]), chosen.len());
        if logs > 0.0 || sample > 0.0 {
            lines.push(format!("{name:<22} {logs:>6.1}  {sample:>8.1}"));
        }
    }
    format!("{:<22} {:>6}  {:>8}\n{}\n", "domain / band", "logs %", "sample %", lines.join("\n"))
}

/// Runs `profile add`.
pub fn add(args: &AddArgs) -> anyhow::Result<()> {
    let mut router = load(&args.router)?;
    if !args.replace && router.manifest.models.iter().any(|c| c.model == args.model) {
        bail!(
            "the router already has a model {:?}; pass --replace to refit it from these rows, or use `switchyard \
             profile update` to merge new eval rows into its profile",
            args.model
        );
    }
    let priors = parse_priors(&args.priors)?;
    let prices = match (&args.catalog, args.input_usd_per_mtok, args.output_usd_per_mtok) {
        (Some(path), _, _) => {
            let catalog = Catalog::load(path)?;
            let card = catalog.get(&args.model).with_context(|| {
                format!(
                    "the catalog {} has no model {:?}: add it there, or give its prices",
                    path.display(),
                    args.model
                )
            })?;
            Some(Prices { input_usd_per_mtok: card.input_usd_per_mtok, output_usd_per_mtok: card.output_usd_per_mtok })
        }
        (None, Some(input), Some(output)) => Some(Prices { input_usd_per_mtok: input, output_usd_per_mtok: output }),
        _ => None,
    };
    let fitted = fit(&router, &args.model, &args.logs, &args.eval, &priors, prices, args.mean_output_tokens)?;
    router.add_model(fitted, args.replace)?;
    save(&router, &args.router, &args.model, "added")
}

/// Runs `profile update`.
pub fn update(args: &UpdateArgs) -> anyhow::Result<()> {
    let mut router = load(&args.router)?;
    let Some(profile) = router.added_profile(&args.model).cloned() else {
        if router.manifest.models.iter().any(|c| c.model == args.model) {
            bail!(
                "{:?} was trained with the router, not added with `profile add`, so there are no eval rows to merge \
                 into: retrain the router with the new rows, or replace the model with `profile add --replace`",
                args.model
            );
        }
        bail!("the router has no model {:?}; add it with `switchyard profile add`", args.model);
    };
    // The files the profile was fitted on must still be there, unchanged, to be merged with the new ones.
    let mut logs: Vec<PathBuf> = Vec::new();
    for file in &profile.files {
        let path = PathBuf::from(&file.path);
        let now = switchyard_train::fingerprint(&path).map_err(|_| {
            anyhow::anyhow!(
                "{:?} was added from {}, which is no longer there; pass it again with --logs next to the new rows \
                 and use `profile add --replace`",
                args.model,
                file.path
            )
        })?;
        if now.sha256 != file.sha256 {
            bail!(
                "{} changed since {:?} was added from it; use `profile add --replace` with the files you want it \
                 fitted on",
                file.path,
                args.model
            );
        }
        logs.push(path);
    }
    for path in &args.logs {
        if !logs.iter().any(|l| same_file(l, path)) {
            logs.push(path.clone());
        }
    }
    let cost = router.manifest.models.iter().find(|c| c.model == args.model).cloned();
    let prices = cost
        .as_ref()
        .filter(|c| c.source == switchyard_core::CostSource::Prices)
        .map(|c| Prices { input_usd_per_mtok: c.input_usd_per_mtok, output_usd_per_mtok: c.output_usd_per_mtok });
    let mean_tokens = cost.map(|c| c.mean_output_tokens);
    let fitted = fit(&router, &args.model, &logs, &args.eval, &profile.priors, prices, mean_tokens)?;
    router.add_model(fitted, true)?;
    save(&router, &args.router, &args.model, "updated")
}

/// Reads `model`'s eval rows from `logs` (none: a prior-only model), embeds them, and fits the model into
/// `router`'s representation.
fn fit(
    router: &Router,
    model: &str,
    logs: &[PathBuf],
    options: &EvalOptions,
    priors: &[(String, f64)],
    prices: Option<Prices>,
    mean_output_tokens: Option<f64>,
) -> anyhow::Result<switchyard_core::NewModel> {
    let eval = if logs.is_empty() { None } else { Some(EvalRows::read(logs, model, options.skip_bad_rows)?) };
    let embeddings = match &eval {
        Some(eval) => {
            eval.check_enough()?;
            let (encoder, mut cache) = options.encoder()?;
            router.check_encoder(&switchyard_server::encoder_info(&encoder))?;
            Some(embed_eval(&mut cache, &encoder, eval, !options.quiet)?)
        }
        None => None,
    };
    let request = ProfileRequest {
        model,
        eval: eval.as_ref().zip(embeddings.as_ref()),
        priors,
        prices,
        mean_output_tokens,
        seed: options.seed,
    };
    let (new, fitted) = fit_profile(router, &request)?;
    let p = &new.profile;
    match p.basis {
        ProfileBasis::Prior => eprintln!("{model}: from published priors only (no eval rows); marked as a prior"),
        _ => eprintln!(
            "{model}: {} eval rows on {} prompts; cross-validated log loss {:.4} (the eval mean alone: {:.4}; penalty {:e})",
            p.rows,
            p.prompts,
            p.cv_log_loss.unwrap_or(f64::NAN),
            p.constant_log_loss.unwrap_or(f64::NAN),
            fitted.lambda.unwrap_or(f64::NAN)
        ),
    }
    if !p.widened.is_empty() {
        let kind = |i: usize| match &router.predictor {
            switchyard_core::Predictor::Ensemble(members) => members.get(i).map(|m| format!("the {} member", m.kind())),
            single => Some(format!("the {} predictor", single.kind())),
        };
        let members: Vec<String> = p.widened.iter().filter_map(|&i| kind(i)).collect();
        eprintln!(
            "{model}: its eval rows say more than the router's shared representation can, so it has a direction of \
             its own over the features in {} (the other models' estimates are unchanged)",
            members.join(", ")
        );
    }
    let domains =
        if router.manifest.domains.is_empty() { vec!["all".to_string()] } else { router.manifest.domains.clone() };
    let shown: Vec<String> = domains
        .iter()
        .zip(new.priors.iter().zip(&new.evidence))
        .map(|(d, (prior, n))| format!("{d} {prior:.2} ({n:.0})"))
        .collect();
    if !shown.is_empty() {
        eprintln!("prior P(success) per domain (evidence rows): {}", shown.join(", "));
    }
    Ok(new)
}

fn load(dir: &Path) -> anyhow::Result<Router> {
    Router::load(dir).with_context(|| format!("cannot load the router in {}", dir.display()))
}

fn save(router: &Router, dir: &Path, model: &str, verb: &str) -> anyhow::Result<()> {
    router.save(dir).with_context(|| format!("cannot write the router to {}", dir.display()))?;
    eprintln!(
        "{verb} {model} in {}; {} models (reload a running server: SIGHUP or POST /admin/reload)",
        dir.display(),
        router.manifest.models.len()
    );
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `DOMAIN=P` pairs, each P a probability (a percentage like 82 is refused, with the fix).
fn parse_priors(items: &[String]) -> anyhow::Result<Vec<(String, f64)>> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let Some((domain, value)) = item.split_once('=') else {
            bail!("--prior {item:?} is not DOMAIN=P: write e.g. math=0.82");
        };
        let domain = domain.trim().to_string();
        let p: f64 = value.trim().parse().with_context(|| format!("--prior {item:?}: {value:?} is not a number"))?;
        if !(0.0..=1.0).contains(&p) {
            bail!("--prior {item:?}: {p} is outside [0, 1]; give P(success) as a fraction (0.82 for 82%)");
        }
        if out.iter().any(|(d, _)| *d == domain) {
            bail!("--prior names {domain:?} twice");
        }
        out.push((domain, p));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priors_parse_and_refuse_bad_values() {
        let p = parse_priors(&["math=0.8".into(), " code = 0.25 ".into()]).unwrap();
        assert_eq!(p, vec![("math".to_string(), 0.8), ("code".to_string(), 0.25)]);
        for bad in ["math=82", "math", "math=x", "math=-0.1"] {
            let e = parse_priors(&[bad.to_string()]).unwrap_err().to_string();
            assert!(e.contains("--prior"), "{bad}: {e}");
        }
        assert!(parse_priors(&["a=0.1".into(), "a=0.2".into()]).is_err());
    }
}
