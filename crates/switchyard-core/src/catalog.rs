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
    /// The model's context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Free-form labels, e.g. domains the model specialises in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Where the prices come from (a note for humans; not used by the router).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_source: Option<String>,
}

impl ModelCard {
    /// The list-price cost of one call in USD.
    pub fn cost_usd(&self, input_tokens: f64, output_tokens: f64) -> f64 {
        (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6
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
        }
        Ok(())
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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Catalog, CatalogError> {
        Catalog::from_toml(text, Path::new("c.toml"))
    }

    #[test]
    fn reads_the_contract_example() {
        let catalog = parse(
            r#"
            [[models]]
            name = "gpt-4o-mini"
            input_usd_per_mtok = 0.15
            output_usd_per_mtok = 0.60
            base_url = "https://api.example.com/v1"
            api_key_env = "EXAMPLE_API_KEY"
            context_window = 128000
            tags = ["general"]

            [[models]]
            name = "local"
            "#,
        )
        .unwrap();
        assert_eq!(catalog.names(), ["gpt-4o-mini", "local"]);
        let mini = catalog.get("gpt-4o-mini").unwrap();
        assert!((mini.cost_usd(1000.0, 500.0) - 0.00045).abs() < 1e-12);
        assert_eq!(catalog.get("local").unwrap().input_usd_per_mtok, 0.0);
        assert_eq!(parse(&catalog.to_toml().unwrap()).unwrap(), catalog);
    }

    #[test]
    fn bad_catalogs_name_the_problem() {
        let cases = [
            ("", "lists no models"),
            ("[[models]]\nname = \"a\"\n[[models]]\nname = \"a\"\n", "duplicate name"),
            ("[[models]]\nname = \"a\"\ninput_usd_per_mtok = -1.0\n", "input_usd_per_mtok must be a number >= 0"),
            ("[[models]]\nname = \"\"\n", "name must not be empty"),
            ("[[models]]\nname = \"a\"\nprice = 3\n", "unknown field `price`"),
            ("[[models]]\nname = \"a\"\ninput_usd_per_mtok = \"cheap\"\n", "invalid type"),
            ("[[models]]\nname = \"a\"\nbase_url = \"api.example.com\"\n", "base_url must start with"),
        ];
        for (text, needle) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("c.toml"), "{text:?} gave {err}");
        }
    }

    #[test]
    fn unknown_models_in_logs_are_listed() {
        let catalog = parse("[[models]]\nname = \"a\"\n").unwrap();
        let err = catalog.check_known(["a", "z", "b", "z"]).unwrap_err().to_string();
        assert!(err.contains("b, z"), "{err}");
        assert!(catalog.check_known(["a"]).is_ok());
    }
}
