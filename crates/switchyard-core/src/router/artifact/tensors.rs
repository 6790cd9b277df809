//! The weights file's layout, both ways: each part of a router as named tensors (`domain.weight`,
//! `mlp.hidden.bias`, `familiarity.priors`, an ensemble's members under `ensemble.<i>.`), written from a
//! [`Router`] ([`Tensors`]) and read back into one with every tensor's size checked against the manifest
//! ([`Weights`]). Tensors added by later versions are optional when read, so older routers still load.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::familiarity::Familiarity;
use crate::predictor::{Dense, Factorized, Heads, ItemResponse, KnnMemory, Platt, Predictor, PredictorKind};
use crate::router::manifest::{Manifest, RouterError};
use crate::router::Router;

/// A weights file's tensors, being read.
pub(super) struct Weights<'a> {
    /// The tensors, by name.
    pub(super) tensors: HashMap<String, Tensor>,
    /// The file, for errors.
    pub(super) path: &'a Path,
}

impl Weights<'_> {
    /// The router `manifest` describes, with these weights.
    pub(super) fn router(&self, manifest: Manifest) -> Result<Router, RouterError> {
        let models = manifest.models.len();
        let dim = manifest.encoder.dim;
        let features = dim + manifest.domains.len() + 1;
        let domain =
            if manifest.domains.is_empty() { None } else { Some(self.dense("domain", manifest.domains.len(), dim)?) };
        let heads = Heads { domains: manifest.domains.clone(), domain, complexity: self.dense("complexity", 1, dim)? };
        let shape = Shape { models, features, dim, hidden: manifest.hidden, latent: manifest.latent };
        let predictor = self.predictor("", manifest.predictor, &manifest.members, &shape)?;
        let calibration =
            self.vec("calibration", Some(models * 2))?.chunks_exact(2).map(|c| Platt { a: c[0], b: c[1] }).collect();
        let familiarity = if self.tensors.contains_key("familiarity.centroids") {
            Some(self.familiarity(models, dim, manifest.domains.len().max(1))?)
        } else {
            None
        };
        let lengths = if self.tensors.contains_key("lengths.weight") {
            Some(self.dense("lengths", models, features)?)
        } else {
            None
        };
        Ok(Router { manifest, heads, predictor, calibration, familiarity, lengths })
    }

    /// The familiarity block of a router with `models` models, `dim`-dimensional embeddings and `domains`
    /// familiarity columns.
    fn familiarity(&self, models: usize, dim: usize, domains: usize) -> Result<Familiarity, RouterError> {
        let centroids = self.vec("familiarity.centroids", None)?;
        if centroids.is_empty() || centroids.len() % dim.max(1) != 0 {
            return Err(RouterError::Weights {
                path: self.path.to_path_buf(),
                message: format!("familiarity.centroids has {} values, not a multiple of {dim}", centroids.len()),
            });
        }
        let complexity = self.vec("familiarity.complexity", Some(3))?;
        let labelled = match self.optional("familiarity.labelled", None)? {
            Some(c) if c.len() % dim.max(1) != 0 => {
                return Err(RouterError::Weights {
                    path: self.path.to_path_buf(),
                    message: format!("familiarity.labelled has {} values, not a multiple of {dim}", c.len()),
                })
            }
            found => found.unwrap_or_default(),
        };
        let labelled_complexity =
            self.optional("familiarity.labelled_complexity", Some(labelled.len() / dim.max(1)))?.unwrap_or_default();
        Ok(Familiarity {
            dim,
            centroids,
            quantiles: self.vec("familiarity.quantiles", None)?,
            priors: self.vec("familiarity.priors", Some(models * domains))?,
            domains,
            base_complexity: complexity[0],
            length_mean: complexity[1],
            complexity_slope: complexity[2],
            length_slopes: self.vec("familiarity.length_slopes", Some(models))?,
            difficulty_slope: self.optional("familiarity.difficulty_slope", Some(1))?.map_or(0.0, |v| v[0]),
            evidence: self.optional("familiarity.evidence", Some(models * domains))?.unwrap_or_default(),
            domain_complexity: self.optional("familiarity.domain_complexity", Some(domains))?.unwrap_or_default(),
            labelled,
            labelled_complexity,
        })
    }

    /// Tensor `name`'s values, `len` of them when given.
    fn vec(&self, name: &str, len: Option<usize>) -> Result<Vec<f32>, RouterError> {
        let err = |message: String| RouterError::Weights { path: self.path.to_path_buf(), message };
        let tensor = self.tensors.get(name).ok_or_else(|| err(format!("tensor {name:?} is missing")))?;
        let data = tensor.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| err(format!("{name}: {e}")))?;
        match len {
            Some(len) if data.len() != len => {
                Err(err(format!("tensor {name:?} has {} values, expected {len}", data.len())))
            }
            _ => Ok(data),
        }
    }

    /// Like [`Self::vec`], but `None` when the tensor is absent (written by an older switchyard).
    fn optional(&self, name: &str, len: Option<usize>) -> Result<Option<Vec<f32>>, RouterError> {
        if self.tensors.contains_key(name) {
            self.vec(name, len).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A `kind` predictor under `prefix` (an ensemble's `members` under `ensemble.<i>.`).
    fn predictor(
        &self,
        prefix: &str,
        kind: PredictorKind,
        members: &[PredictorKind],
        shape: &Shape,
    ) -> Result<Predictor, RouterError> {
        let Shape { models, features, dim, hidden, latent } = *shape;
        Ok(match kind {
            PredictorKind::Logistic => {
                Predictor::Logistic(self.dense(&format!("{prefix}logistic"), models, features)?)
            }
            PredictorKind::Mlp => Predictor::Mlp {
                hidden: self.dense(&format!("{prefix}mlp.hidden"), hidden, features)?,
                output: self.dense(&format!("{prefix}mlp.output"), models, hidden)?,
            },
            PredictorKind::Knn => Predictor::Knn(self.knn(&format!("{prefix}knn"), dim, models)?),
            PredictorKind::Mf => Predictor::Mf(Factorized {
                project: self.dense(&format!("{prefix}mf.project"), latent, features)?,
                models: self.dense(&format!("{prefix}mf.models"), models, latent)?,
                difficulty: self.dense(&format!("{prefix}mf.difficulty"), 1, features)?,
            }),
            PredictorKind::Irt => {
                let name = format!("{prefix}irt");
                let skills = self.vec(&format!("{name}.skills.bias"), None)?.len();
                Predictor::Irt(ItemResponse {
                    skills: self.dense(&format!("{name}.skills"), skills, features)?,
                    discrimination: self.dense(&format!("{name}.discrimination"), 1, features)?,
                    difficulty: self.dense(&format!("{name}.difficulty"), 1, features)?,
                    models: self.dense(&format!("{name}.models"), models, skills + 1)?,
                })
            }
            PredictorKind::Ensemble => {
                if members.is_empty() || members.contains(&PredictorKind::Ensemble) {
                    return Err(RouterError::Weights {
                        path: self.path.to_path_buf(),
                        message: format!("an ensemble needs member predictors that are not ensembles, got {members:?}"),
                    });
                }
                let loaded = members
                    .iter()
                    .enumerate()
                    .map(|(i, &m)| self.predictor(&format!("{prefix}ensemble.{i}."), m, &[], shape))
                    .collect::<Result<Vec<_>, _>>()?;
                Predictor::Ensemble(loaded)
            }
        })
    }

    /// A kNN memory of `dim`-dimensional prompts with `models` score columns.
    fn knn(&self, name: &str, dim: usize, models: usize) -> Result<KnnMemory, RouterError> {
        let embeddings = self.vec(&format!("{name}.embeddings"), None)?;
        let prompts = embeddings.len() / dim.max(1);
        let params = self.vec(&format!("{name}.params"), Some(3))?;
        Ok(KnnMemory {
            dim,
            embeddings,
            scores: self.vec(&format!("{name}.scores"), Some(prompts * models))?,
            prior: self.vec(&format!("{name}.prior"), Some(models))?,
            k: params[0] as usize,
            alpha: params[1],
            power: params[2],
        })
    }

    /// Layer `name`, `outputs` × `inputs`.
    fn dense(&self, name: &str, outputs: usize, inputs: usize) -> Result<Dense, RouterError> {
        let weight = self.vec(&format!("{name}.weight"), Some(outputs * inputs))?;
        let bias = self.vec(&format!("{name}.bias"), Some(outputs))?;
        Dense::new(outputs, inputs, weight, bias).ok_or_else(|| RouterError::Weights {
            path: self.path.to_path_buf(),
            message: format!("{name} has inconsistent sizes"),
        })
    }
}

/// Tensors being written, by name.
#[derive(Default)]
pub(super) struct Tensors(HashMap<String, Tensor>);

impl Tensors {
    /// Every tensor of `router`, by name.
    pub(super) fn of(router: &Router) -> Result<HashMap<String, Tensor>, candle_core::Error> {
        let mut tensors = Self::default();
        if let Some(domain) = &router.heads.domain {
            tensors.dense("domain", domain)?;
        }
        tensors.dense("complexity", &router.heads.complexity)?;
        tensors.predictor("", &router.predictor)?;
        let platt: Vec<f32> = router.calibration.iter().flat_map(|p| [p.a, p.b]).collect();
        tensors.put("calibration", &platt, (router.calibration.len(), 2))?;
        if let Some(lengths) = &router.lengths {
            tensors.dense("lengths", lengths)?;
        }
        if let Some(f) = &router.familiarity {
            tensors.familiarity(f)?;
        }
        Ok(tensors.0)
    }

    /// The familiarity block's tensors (`familiarity.*`); the optional ones only when not empty.
    fn familiarity(&mut self, f: &Familiarity) -> Result<(), candle_core::Error> {
        self.put("familiarity.centroids", &f.centroids, (f.centroids.len() / f.dim.max(1), f.dim))?;
        self.put("familiarity.quantiles", &f.quantiles, (1, f.quantiles.len()))?;
        self.put("familiarity.priors", &f.priors, (f.priors.len() / f.domains.max(1), f.domains))?;
        let length = [f.base_complexity, f.length_mean, f.complexity_slope];
        self.put("familiarity.complexity", &length, (1, 3))?;
        self.put("familiarity.length_slopes", &f.length_slopes, (1, f.length_slopes.len()))?;
        self.put("familiarity.difficulty_slope", &[f.difficulty_slope], (1, 1))?;
        if !f.evidence.is_empty() {
            self.put("familiarity.evidence", &f.evidence, (f.evidence.len() / f.domains.max(1), f.domains))?;
        }
        if !f.domain_complexity.is_empty() {
            self.put("familiarity.domain_complexity", &f.domain_complexity, (1, f.domain_complexity.len()))?;
        }
        if !f.labelled.is_empty() {
            let rows = f.labelled.len() / f.dim.max(1);
            self.put("familiarity.labelled", &f.labelled, (rows, f.dim))?;
            self.put("familiarity.labelled_complexity", &f.labelled_complexity, (1, rows))?;
        }
        Ok(())
    }

    /// One tensor, `shape` (rows, columns).
    fn put(&mut self, name: &str, data: &[f32], shape: (usize, usize)) -> Result<(), candle_core::Error> {
        self.0.insert(name.to_string(), Tensor::from_slice(data, shape, &Device::Cpu)?);
        Ok(())
    }

    /// A layer's `<name>.weight` and `<name>.bias`.
    fn dense(&mut self, name: &str, d: &Dense) -> Result<(), candle_core::Error> {
        self.put(&format!("{name}.weight"), &d.weight, (d.outputs, d.inputs))?;
        self.put(&format!("{name}.bias"), &d.bias, (1, d.outputs))
    }

    /// A kNN memory's prompts, scores, priors and parameters.
    fn knn(&mut self, name: &str, m: &KnnMemory) -> Result<(), candle_core::Error> {
        let models = m.prior.len();
        self.put(&format!("{name}.embeddings"), &m.embeddings, (m.len(), m.dim))?;
        self.put(&format!("{name}.scores"), &m.scores, (m.len(), models))?;
        self.put(&format!("{name}.prior"), &m.prior, (1, models))?;
        self.put(&format!("{name}.params"), &[m.k as f32, m.alpha, m.power], (1, 3))
    }

    /// A predictor's tensors under `prefix` (ensemble members under `ensemble.<i>.`).
    fn predictor(&mut self, prefix: &str, predictor: &Predictor) -> Result<(), candle_core::Error> {
        match predictor {
            Predictor::Logistic(layer) => self.dense(&format!("{prefix}logistic"), layer),
            Predictor::Mlp { hidden, output } => {
                self.dense(&format!("{prefix}mlp.hidden"), hidden)?;
                self.dense(&format!("{prefix}mlp.output"), output)
            }
            Predictor::Knn(m) => self.knn(&format!("{prefix}knn"), m),
            Predictor::Mf(mf) => {
                self.dense(&format!("{prefix}mf.project"), &mf.project)?;
                self.dense(&format!("{prefix}mf.models"), &mf.models)?;
                self.dense(&format!("{prefix}mf.difficulty"), &mf.difficulty)
            }
            Predictor::Irt(irt) => {
                self.dense(&format!("{prefix}irt.skills"), &irt.skills)?;
                self.dense(&format!("{prefix}irt.discrimination"), &irt.discrimination)?;
                self.dense(&format!("{prefix}irt.difficulty"), &irt.difficulty)?;
                self.dense(&format!("{prefix}irt.models"), &irt.models)
            }
            Predictor::Ensemble(members) => {
                for (i, member) in members.iter().enumerate() {
                    self.predictor(&format!("{prefix}ensemble.{i}."), member)?;
                }
                Ok(())
            }
        }
    }
}

/// The sizes a predictor's tensors must have.
struct Shape {
    models: usize,
    features: usize,
    dim: usize,
    hidden: usize,
    latent: usize,
}
