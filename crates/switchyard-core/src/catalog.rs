//! The model catalog: which models a router may choose, their prices and (for the server) their endpoints.
//!
//! Read from TOML (`[[models]]` tables, the contract in the project's labelled-log docs) and validated at load:
//! a bad catalog is refused whole, with an error naming the model and the key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One model a router can choose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// The name used in logs and decisions.
    pub name: String,
    /// USD per million input tokens.
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    #[serde(default)]
    pub output_usd_per_mtok: f64,
    /// OpenAI-compatible upstream base URL (server only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the upstream's API key (server only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// The API the upstream at `base_url` speaks (server only; default OpenAI's).
    #[serde(default, skip_serializing_if = "UpstreamApi::is_openai")]
    pub api: UpstreamApi,
    /// The model's context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// The model accepts `tools` / `tool_choice` (function calling); requests with tools go only to such
    /// models (server only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub supports_tools: bool,
    /// The model accepts image content parts (server only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub supports_vision: bool,
    /// The model accepts `response_format` of type `json_schema` (server only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub supports_json_schema: bool,
    /// Free-form labels, e.g. domains the model specialises in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Where the prices come from (a note for humans; not used by the router).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_source: Option<String>,
    /// Endpoints serving this model: other providers, keys or regions (server only). `base_url` and
    /// `api_key_env` on the model are a shorthand for a single deployment; give one form or the other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<Deployment>,
    /// Models the gateway tries after this one's deployments, in order (server only). They chain: a
    /// fallback's own fallbacks come after it. Cycles are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
}

/// One endpoint serving a catalog model (server only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The name in logs, metrics and headers; unique across the catalog (default: `<model>#<n>`, n counting
    /// the model's deployments from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// OpenAI-compatible base URL, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Name of the environment variable holding this deployment's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// The model name sent upstream (default: the catalog name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// The API the endpoint speaks (default OpenAI's).
    #[serde(default, skip_serializing_if = "UpstreamApi::is_openai")]
    pub api: UpstreamApi,
    /// Share of traffic relative to the model's other deployments (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// The API an upstream speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamApi {
    /// OpenAI's chat completions: `base_url` + `/chat/completions`, `Authorization: Bearer`.
    #[default]
    Openai,
    /// Anthropic's Messages API: `base_url` + `/v1/messages`, `x-api-key` and `anthropic-version`.
    Anthropic,
}

impl UpstreamApi {
    fn is_openai(&self) -> bool {
        *self == Self::Openai
    }
}

fn default_weight() -> u32 {
    1
}

fn is_false(b: &bool) -> bool {
    !b
}

impl ModelCard {
    /// The list-price cost of one call in USD.
    pub fn cost_usd(&self, input_tokens: f64, output_tokens: f64) -> f64 {
        (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6
    }

    /// Whether the gateway can call this model: it has a `base_url` or deployments.
    pub fn has_deployment(&self) -> bool {
        self.base_url.is_some() || !self.deployments.is_empty()
    }

    /// The model's deployments with their names: the shorthand `base_url` is one deployment named after the
    /// model; listed ones are named `<model>#<n>` unless they name themselves.
    pub fn endpoints(&self) -> Vec<(String, Deployment)> {
        if let Some(url) = &self.base_url {
            let d = Deployment {
                name: None,
                base_url: url.clone(),
                api_key_env: self.api_key_env.clone(),
                upstream_model: None,
                api: self.api,
                weight: 1,
            };
            return vec![(self.name.clone(), d)];
        }
        self.deployments
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone().unwrap_or_else(|| format!("{}#{}", self.name, i + 1)), d.clone()))
            .collect()
    }
}

/// A validated set of models with unique names and sane prices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// The models, in file order.
    #[serde(default)]
    pub models: Vec<ModelCard>,
}

/// What is wrong with a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read catalog {path}: {source}")]
    Io {
        /// The catalog file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has a wrong type or unknown key.
    #[error("catalog {path} is not valid TOML for a catalog: {message}")]
    Parse {
        /// The catalog file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The catalog lists no models.
    #[error("catalog {path} lists no models; add at least one [[models]] table with a name")]
    Empty {
        /// The catalog file.
        path: PathBuf,
    },
    /// A model breaks a rule.
    #[error("catalog {path}: model {model:?}: {problem}")]
    Invalid {
        /// The catalog file.
        path: PathBuf,
        /// The offending model's name (or its position when the name itself is bad).
        model: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// Logs name models the catalog does not have.
    #[error(
        "the logs name models that are not in the catalog: {}; add them to the catalog or drop their rows",
        unknown.join(", ")
    )]
    UnknownModels {
        /// The missing names, sorted.
        unknown: Vec<String>,
    },
}

impl Catalog {
    /// Reads and validates a catalog file.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| CatalogError::Io { path: path.to_path_buf(), source })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates catalog TOML; `path` is only used in error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, CatalogError> {
        let catalog: Catalog = toml::from_str(text)
            .map_err(|e| CatalogError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        catalog.validate(path)?;
        Ok(catalog)
    }

    /// Builds a catalog from cards, validating it.
    pub fn new(models: Vec<ModelCard>) -> Result<Self, CatalogError> {
        let catalog = Self { models };
        catalog.validate(Path::new("<memory>"))?;
        Ok(catalog)
    }

    /// Serialises the catalog back to TOML.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    fn validate(&self, path: &Path) -> Result<(), CatalogError> {
        if self.models.is_empty() {
            return Err(CatalogError::Empty { path: path.to_path_buf() });
        }
        let invalid = |model: &str, problem: String| CatalogError::Invalid {
            path: path.to_path_buf(),
            model: model.to_string(),
            problem,
        };
        let mut seen = HashSet::new();
        for (i, card) in self.models.iter().enumerate() {
            if card.name.trim().is_empty() {
                return Err(invalid(&format!("#{}", i + 1), "name must not be empty".to_string()));
            }
            if !seen.insert(card.name.as_str()) {
                return Err(invalid(&card.name, "duplicate name; each model must appear once".to_string()));
            }
            for (key, value) in
                [("input_usd_per_mtok", card.input_usd_per_mtok), ("output_usd_per_mtok", card.output_usd_per_mtok)]
            {
                if !value.is_finite() || value < 0.0 {
                    return Err(invalid(&card.name, format!("{key} must be a number >= 0, got {value}")));
                }
            }
            if card.context_window == Some(0) {
                return Err(invalid(&card.name, "context_window must be > 0 when given".to_string()));
            }
            if let Some(url) = &card.base_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(
                        &card.name,
                        format!("base_url must start with http:// or https://, got {url:?}"),
                    ));
                }
            }
            self.validate_deployments(card).map_err(|problem| invalid(&card.name, problem))?;
        }
        let mut names = HashSet::new();
        for card in &self.models {
            for (name, _) in card.endpoints() {
                if !names.insert(name.clone()) {
                    return Err(invalid(
                        &card.name,
                        format!("deployment name {name:?} is used twice; deployment names must be unique"),
                    ));
                }
            }
        }
        for card in &self.models {
            if let Some(cycle) = self.fallback_cycle(&card.name, &mut vec![card.name.as_str()]) {
                return Err(invalid(&card.name, format!("fallbacks form a cycle: {}", cycle.join(" -> "))));
            }
        }
        Ok(())
    }

    /// A model's deployments and fallbacks, checked against the rest of the catalog.
    fn validate_deployments(&self, card: &ModelCard) -> Result<(), String> {
        if card.base_url.is_some() && !card.deployments.is_empty() {
            return Err("set base_url on the model or list [[models.deployments]], not both".into());
        }
        if card.api_key_env.is_some() && card.base_url.is_none() {
            return Err("api_key_env needs base_url on the model (or goes in each [[models.deployments]])".into());
        }
        if let Some((which, url)) = card.endpoints().into_iter().find_map(|(name, d)| {
            (d.api == UpstreamApi::Anthropic && d.base_url.trim_end_matches('/').ends_with("/v1"))
                .then_some((name, d.base_url))
        }) {
            return Err(format!(
                "deployment {which}: an Anthropic base_url is the API's root (e.g. https://api.anthropic.com), and the \
                 gateway adds /v1/messages; drop the /v1 from {url:?}"
            ));
        }
        for (i, d) in card.deployments.iter().enumerate() {
            let which = d.name.clone().unwrap_or_else(|| format!("#{}", i + 1));
            if !(d.base_url.starts_with("http://") || d.base_url.starts_with("https://")) {
                return Err(format!(
                    "deployment {which}: base_url must start with http:// or https://, got {:?}",
                    d.base_url
                ));
            }
            if d.weight == 0 {
                return Err(format!("deployment {which}: weight must be at least 1"));
            }
            if d.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                return Err(format!("deployment {which}: name must not be empty"));
            }
            let same = |e: &Deployment| {
                e.base_url.trim_end_matches('/') == d.base_url.trim_end_matches('/')
                    && e.api_key_env == d.api_key_env
                    && e.upstream_model == d.upstream_model
            };
            if card.deployments[..i].iter().any(same) {
                return Err(format!(
                    "deployment {which} repeats an earlier one (same base_url, api_key_env and upstream_model)"
                ));
            }
        }
        if !card.fallbacks.is_empty() && !card.has_deployment() {
            return Err("has fallbacks but no deployment; give it a base_url or [[models.deployments]]".into());
        }
        for (i, f) in card.fallbacks.iter().enumerate() {
            let Some(target) = self.get(f) else {
                return Err(format!("fallback {f:?} is not in the catalog"));
            };
            if !target.has_deployment() {
                return Err(format!("fallback {f:?} has no base_url or [[models.deployments]] to call"));
            }
            if card.fallbacks[..i].contains(f) {
                return Err(format!("fallback {f:?} is listed twice"));
            }
        }
        Ok(())
    }

    /// A chain of fallbacks from the last model in `path` that comes back to a model already in it.
    fn fallback_cycle<'a>(&'a self, model: &str, path: &mut Vec<&'a str>) -> Option<Vec<String>> {
        let card = self.get(model)?;
        for next in &card.fallbacks {
            if let Some(start) = path.iter().position(|m| m == next) {
                let mut cycle: Vec<String> = path[start..].iter().map(|m| m.to_string()).collect();
                cycle.push(next.clone());
                return Some(cycle);
            }
            path.push(next.as_str());
            if let Some(cycle) = self.fallback_cycle(next, path) {
                return Some(cycle);
            }
            path.pop();
        }
        None
    }

    /// The models to try for `model`, in order: the model itself, then its fallbacks, each followed by its own
    /// fallbacks, without repeats.
    pub fn with_fallbacks<'a>(&'a self, model: &'a str) -> Vec<&'a str> {
        let mut out = vec![model];
        let mut i = 0;
        while i < out.len() {
            let card = self.get(out[i]);
            let mut next: Vec<&str> =
                card.map(|c| c.fallbacks.iter().map(String::as_str).collect()).unwrap_or_default();
            next.retain(|n| !out.contains(n));
            // Depth first: a fallback's own fallbacks come right after it.
            for (k, n) in next.into_iter().enumerate() {
                out.insert(i + 1 + k, n);
            }
            i += 1;
        }
        out
    }

    /// The card of a model, by name.
    pub fn get(&self, name: &str) -> Option<&ModelCard> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The models' names, in catalog order.
    pub fn names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }

    /// Fails with every name in `used` that the catalog lacks.
    pub fn check_known<'a>(&self, used: impl IntoIterator<Item = &'a str>) -> Result<(), CatalogError> {
        let mut unknown: Vec<String> =
            used.into_iter().filter(|name| self.get(name).is_none()).map(str::to_string).collect();
        unknown.sort();
        unknown.dedup();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::UnknownModels { unknown })
        }
    }
}

#[cfg(test)]
mod tests;
