//! The routers in service, loaded and checked at start-up and swapped as a whole on a hot reload (SIGHUP or
//! `POST /admin/reload`). Requests hold an `Arc` to the set they started with, so a reload never disturbs a
//! request in flight.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use switchyard_core::{Router, RouterError};
use switchyard_encoder::Encoder;

use crate::config::Config;
use crate::routing::rules::Rule;

/// The main router and the experiment arms' own routers.
#[derive(Debug)]
pub struct Routers {
    /// The router of `router.path`, with the config's default knob applied.
    pub main: Arc<Router>,
    /// Per `[[experiment.arms]]` entry, in order: its own router, if it names one.
    pub arms: Vec<Option<Arc<Router>>>,
    /// The config's rules, compiled, in order; a `similar_to` rule's examples embedded with the encoder.
    pub rules: Vec<Rule>,
    /// The experiment's `when` clause, compiled as a rule's is (absent: every request is in the experiment).
    pub experiment_scope: Option<Rule>,
    /// 1 at start-up, +1 per successful reload.
    pub generation: u64,
}

/// Why the server cannot start (or a reload cannot happen).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A router folder cannot be loaded or does not fit the encoder.
    #[error("cannot load router {path} ({key}): {source}")]
    Router {
        /// The folder.
        path: PathBuf,
        /// The config key naming it.
        key: String,
        /// Why.
        #[source]
        source: RouterError,
    },
    /// A rule or tier names a model that neither the catalog nor the router knows.
    #[error("{key} names model {model:?}, which is neither in [[models]] nor in the router; fix the name or add it")]
    UnknownModel {
        /// Where.
        key: String,
        /// The model.
        model: String,
    },
    /// The decision log cannot be opened.
    #[error(transparent)]
    Log(#[from] switchyard_store::StoreError),
    /// A rule cannot be compiled (its `similar_to` examples cannot be read or embedded).
    #[error("rule {name:?}: {problem}")]
    Rule {
        /// The rule.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A server thread cannot be started.
    #[error("cannot start the inference thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A `[[keys]]` secret is missing from the environment.
    #[error(transparent)]
    Key(#[from] crate::limits::keys::MissingSecret),
    /// The shared state (`[state]`) cannot be used: Redis does not answer and `state.required` is set.
    #[error("{0}")]
    State(String),
    /// The online-learning state file cannot be read.
    #[error("{0}")]
    Learning(String),
    /// The dashboard's session secret is missing or too short, or no random one can be made.
    #[error("{0}")]
    SessionSecret(String),
    /// The HTTP client for upstream calls cannot be built (its TLS back end failed to start).
    #[error("cannot build the HTTP client for upstream calls: {0}")]
    Http(String),
}

/// A summary of a (re)load, as `/admin/reload` answers it.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The new generation.
    pub generation: u64,
    /// Models of the main router.
    pub models: Vec<String>,
    /// The main router's training-data fingerprint.
    pub fingerprint: String,
}

/// What a router records of the encoder it was trained with, for the running one: id (weights), dimension,
/// truncation and the tokenizer/config digest.
pub fn encoder_info(encoder: &dyn Encoder) -> switchyard_core::EncoderInfo {
    switchyard_core::EncoderInfo {
        id: encoder.id().to_string(),
        dim: encoder.dim(),
        max_tokens: encoder.max_tokens(),
        files_sha256: encoder.files_digest().map(str::to_string),
        precision: encoder.precision().manifest_name(),
    }
}

/// The experiment's `when` clause as a compiled rule (its `similar_to` examples embedded), if it has one.
fn experiment_scope(config: &Config, encoder: &dyn Encoder) -> Result<Option<Rule>, StartError> {
    let Some((e, when)) = config.experiment.as_ref().and_then(|e| e.when.clone().map(|w| (e, w))) else {
        return Ok(None);
    };
    let name = format!("experiment {:?} when", e.name);
    let rule = crate::routing::rules::RuleConfig { name: name.clone(), when, then: Default::default() };
    let mut rule = Rule::scope(rule).map_err(|problem| StartError::Rule { name: name.clone(), problem })?;
    rule.embed_examples(encoder).map_err(|problem| StartError::Rule { name, problem })?;
    Ok(Some(rule))
}

/// Loads a router folder and checks it against the encoder.
pub fn load_router(path: &Path, key: &str, encoder: &dyn Encoder) -> Result<Router, StartError> {
    let wrap = |source| StartError::Router { path: path.to_path_buf(), key: key.to_string(), source };
    let router = Router::load(path).map_err(wrap)?;
    router.check_encoder(&encoder_info(encoder)).map_err(wrap)?;
    Ok(router)
}

impl Routers {
    /// The set for a main router already loaded: the config's default knob goes on it, arm routers are loaded,
    /// and every model a rule or tier names must be known.
    pub fn assemble(
        mut main: Router,
        config: &Config,
        encoder: &dyn Encoder,
        generation: u64,
    ) -> Result<Self, StartError> {
        main.check_encoder(&encoder_info(encoder)).map_err(|source| StartError::Router {
            path: config.router.path.clone(),
            key: "router.path".into(),
            source,
        })?;
        if let Some(knob) = config.default_knob() {
            main.manifest.default_policy.knob = knob;
        }
        let known = |m: &str| config.model(m).is_some() || main.manifest.models.iter().any(|c| c.model == m);
        for (tier, models) in &config.tiers {
            if let Some(m) = models.iter().find(|m| !known(m)) {
                return Err(StartError::UnknownModel { key: format!("tiers.{tier}"), model: m.clone() });
            }
        }
        for rule in &config.rules {
            if let Some(m) = rule.then.model.as_ref().filter(|m| !known(m)) {
                return Err(StartError::UnknownModel { key: format!("rule {:?}", rule.name), model: m.clone() });
            }
        }
        let mut rules = config.compiled_rules().map_err(|(name, problem)| StartError::Rule { name, problem })?;
        for rule in &mut rules {
            let name = rule.config.name.clone();
            rule.embed_examples(encoder).map_err(|problem| StartError::Rule { name, problem })?;
        }
        let mut arms = Vec::new();
        for arm in config.experiment.iter().flat_map(|e| &e.arms) {
            if let Some(m) = arm.model.as_ref().filter(|m| !known(m)) {
                return Err(StartError::UnknownModel {
                    key: format!("experiment arm {:?}", arm.name),
                    model: m.clone(),
                });
            }
            let key = format!("experiment arm {:?} router", arm.name);
            arms.push(arm.router.as_deref().map(|p| load_router(p, &key, encoder).map(Arc::new)).transpose()?);
        }
        let experiment_scope = experiment_scope(config, encoder)?;
        Ok(Self { main: Arc::new(main), arms, rules, experiment_scope, generation })
    }

    /// What a reload answers.
    pub fn report(&self) -> ReloadReport {
        ReloadReport {
            generation: self.generation,
            models: self.main.manifest.models.iter().map(|m| m.model.clone()).collect(),
            fingerprint: self.main.manifest.training.fingerprint.clone(),
        }
    }
}
