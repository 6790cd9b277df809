//! A trained router: its artifact on disk (`manifest.json` + `router.safetensors`) and what it predicts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::cost::ModelCost;
use crate::policy::{Decision, ModelEstimate, Policy, PolicyError};
use crate::predictor::{Dense, Heads, KnnMemory, Platt, Predictor, PredictorKind};

/// The artifact format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name inside a router folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The weights' file name inside a router folder.
pub const WEIGHTS_FILE: &str = "router.safetensors";

/// The encoder a router was trained with; embeddings from any other encoder are meaningless to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderInfo {
    /// The encoder's id (model and weights digest).
    pub id: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Truncation used when embedding training prompts.
    pub max_tokens: usize,
}

/// One input file of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileFingerprint {
    /// The path as given.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
}

/// Where a router's knowledge comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The log files.
    pub files: Vec<FileFingerprint>,
    /// SHA-256 over the files' digests: one value naming the training data.
    pub fingerprint: String,
    /// Rows used (training and validation).
    pub rows: usize,
    /// Distinct prompts used.
    pub prompts: usize,
    /// Bad rows skipped.
    pub skipped_rows: usize,
    /// Rows left out because their split is "test".
    pub test_rows_excluded: usize,
}

/// Validation metrics of one candidate predictor (on the held-out validation prompts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateMetrics {
    /// The predictor kind.
    pub kind: PredictorKind,
    /// Mean binary cross-entropy against the scores (lower is better); the selection criterion.
    pub log_loss: f64,
    /// Mean squared error of P against the scores.
    pub brier: f64,
    /// Expected calibration error over 10 equal-width bins, before Platt scaling.
    pub ece_raw: f64,
    /// Expected calibration error after Platt scaling.
    pub ece: f64,
    /// Area under the ROC curve, successes (score >= 0.5) against failures.
    pub auc: f64,
}

/// Everything about a router that is not a weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Artifact format version.
    pub format_version: u32,
    /// The encoder it was trained with.
    pub encoder: EncoderInfo,
    /// The models it routes between, with their costs, in predictor output order.
    pub models: Vec<ModelCost>,
    /// Domain labels of the domain head (empty: no domain head).
    pub domains: Vec<String>,
    /// The predictor in use and its hyper-parameters.
    pub predictor: PredictorKind,
    /// Hidden units (MLP only).
    #[serde(default)]
    pub hidden: usize,
    /// The policy used when a request names none.
    pub default_policy: Policy,
    /// The training data.
    pub training: TrainingInfo,
    /// Validation metrics of every candidate predictor; the chosen one is `predictor`.
    pub validation: Vec<CandidateMetrics>,
    /// The switchyard version that wrote it.
    pub created_by: String,
}

/// Why a router cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A file cannot be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid JSON for a manifest.
    #[error("router manifest {path} is not valid: {message}; retrain the router with `switchyard train`")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The artifact was written by an incompatible version.
    #[error("router {path} has format version {found}, this switchyard reads version {FORMAT_VERSION}; retrain it with this version")]
    Version {
        /// The router folder.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The weights file is unreadable or lacks a tensor of the right size.
    #[error("router weights {path}: {message}; retrain the router with `switchyard train`")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The router expects a different encoder than the one running.
    #[error("router was trained with encoder {expected} (dim {expected_dim}) but the running encoder is {found} (dim {found_dim}); retrain the router or use its encoder")]
    EncoderMismatch {
        /// The router's encoder id.
        expected: String,
        /// The router's embedding dimension.
        expected_dim: usize,
        /// The running encoder's id.
        found: String,
        /// The running encoder's dimension.
        found_dim: usize,
    },
}

/// A domain label with its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainScore {
    /// The label.
    pub domain: String,
    /// Its probability.
    pub p: f64,
}

/// What a router predicts for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Difficulty in [0, 1].
    pub complexity: f64,
    /// Domain probabilities, most likely first.
    pub domains: Vec<DomainScore>,
    /// Per-model P(success) and expected cost, in the router's model order.
    pub models: Vec<ModelEstimate>,
}

/// A trained router: heads, success predictor, per-model calibration and costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    /// Everything that is not a weight.
    pub manifest: Manifest,
    /// Domain and complexity heads.
    pub heads: Heads,
    /// The success predictor.
    pub predictor: Predictor,
    /// Per-model Platt scaling, in model order.
    pub calibration: Vec<Platt>,
}

impl Router {
    /// Predicts domains, complexity and each model's P(success) and expected cost for one embedding.
    /// `input_tokens` is the prompt's (estimated) LLM input tokens, for price-based costs.
    pub fn predict(&self, embedding: &[f32], input_tokens: f64) -> Prediction {
        let features = self.heads.features(embedding);
        let raw = self.predictor.predict(&features, embedding);
        let models = self
            .manifest
            .models
            .iter()
            .zip(raw)
            .zip(&self.calibration)
            .map(|((cost, p), platt)| ModelEstimate {
                model: cost.model.clone(),
                p_success: f64::from(platt.apply(p)),
                expected_cost_usd: cost.expected_cost_usd(input_tokens),
            })
            .collect();
        let mut domains: Vec<DomainScore> = self
            .heads
            .domains
            .iter()
            .zip(self.heads.domain_probs(embedding))
            .map(|(d, p)| DomainScore {
                domain: d.clone(),
                p: f64::from(p),
            })
            .collect();
        domains.sort_by(|a, b| b.p.total_cmp(&a.p));
        Prediction {
            complexity: f64::from(self.heads.complexity(embedding)),
            domains,
            models,
        }
    }

    /// Predicts and decides under `policy`.
    pub fn route(
        &self,
        embedding: &[f32],
        input_tokens: f64,
        policy: &Policy,
    ) -> Result<(Prediction, Decision), PolicyError> {
        let prediction = self.predict(embedding, input_tokens);
        let decision = policy.decide(&prediction.models)?;
        Ok((prediction, decision))
    }

    /// Fails unless embeddings from `encoder_id` with `dim` dimensions are what this router was trained on.
    pub fn check_encoder(&self, encoder_id: &str, dim: usize) -> Result<(), RouterError> {
        let e = &self.manifest.encoder;
        if e.id != encoder_id || e.dim != dim {
            return Err(RouterError::EncoderMismatch {
                expected: e.id.clone(),
                expected_dim: e.dim,
                found: encoder_id.to_string(),
                found_dim: dim,
            });
        }
        Ok(())
    }

    /// Writes `manifest.json` and `router.safetensors` into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), RouterError> {
        std::fs::create_dir_all(dir).map_err(|source| RouterError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let weights_err = |e: candle_core::Error| RouterError::Weights {
            path: weights_path.clone(),
            message: e.to_string(),
        };
        let mut tensors = HashMap::new();
        let mut put =
            |name: &str, data: &[f32], shape: (usize, usize)| -> Result<(), candle_core::Error> {
                tensors.insert(
                    name.to_string(),
                    Tensor::from_slice(data, shape, &Device::Cpu)?,
                );
                Ok(())
            };
        let mut put_dense = |name: &str, d: &Dense| -> Result<(), candle_core::Error> {
            put(&format!("{name}.weight"), &d.weight, (d.outputs, d.inputs))?;
            put(&format!("{name}.bias"), &d.bias, (1, d.outputs))
        };
        if let Some(domain) = &self.heads.domain {
            put_dense("domain", domain).map_err(weights_err)?;
        }
        put_dense("complexity", &self.heads.complexity).map_err(weights_err)?;
        match &self.predictor {
            Predictor::Logistic(layer) => put_dense("logistic", layer).map_err(weights_err)?,
            Predictor::Mlp { hidden, output } => {
                put_dense("mlp.hidden", hidden).map_err(weights_err)?;
                put_dense("mlp.output", output).map_err(weights_err)?;
            }
            Predictor::Knn(m) => {
                let models = m.prior.len();
                put("knn.embeddings", &m.embeddings, (m.len(), m.dim)).map_err(weights_err)?;
                put("knn.scores", &m.scores, (m.len(), models)).map_err(weights_err)?;
                put("knn.prior", &m.prior, (1, models)).map_err(weights_err)?;
                put("knn.params", &[m.k as f32, m.alpha], (1, 2)).map_err(weights_err)?;
            }
        }
        let platt: Vec<f32> = self.calibration.iter().flat_map(|p| [p.a, p.b]).collect();
        put("calibration", &platt, (self.calibration.len(), 2)).map_err(weights_err)?;
        candle_core::safetensors::save(&tensors, &weights_path).map_err(weights_err)?;

        let manifest_path = dir.join(MANIFEST_FILE);
        let json =
            serde_json::to_string_pretty(&self.manifest).map_err(|e| RouterError::Manifest {
                path: manifest_path.clone(),
                message: e.to_string(),
            })?;
        std::fs::write(&manifest_path, json + "\n").map_err(|source| RouterError::Io {
            path: manifest_path,
            source,
        })
    }

    /// Reads a router folder written by [`Router::save`], checking the format version and every tensor's size.
    pub fn load(dir: &Path) -> Result<Self, RouterError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path).map_err(|source| RouterError::Io {
            path: manifest_path.clone(),
            source,
        })?;
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("format_version").and_then(serde_json::Value::as_u64));
        if let Some(found) = version.filter(|v| *v != u64::from(FORMAT_VERSION)) {
            return Err(RouterError::Version {
                path: dir.to_path_buf(),
                found: found as u32,
            });
        }
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| RouterError::Manifest {
                path: manifest_path.clone(),
                message: e.to_string(),
            })?;

        let weights_path = dir.join(WEIGHTS_FILE);
        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu).map_err(|e| {
            RouterError::Weights {
                path: weights_path.clone(),
                message: e.to_string(),
            }
        })?;
        let weights = Weights {
            tensors,
            path: &weights_path,
        };
        let models = manifest.models.len();
        let dim = manifest.encoder.dim;
        let features = dim + manifest.domains.len() + 1;
        let domain = if manifest.domains.is_empty() {
            None
        } else {
            Some(weights.dense("domain", manifest.domains.len(), dim)?)
        };
        let heads = Heads {
            domains: manifest.domains.clone(),
            domain,
            complexity: weights.dense("complexity", 1, dim)?,
        };
        let predictor = match manifest.predictor {
            PredictorKind::Logistic => {
                Predictor::Logistic(weights.dense("logistic", models, features)?)
            }
            PredictorKind::Mlp => Predictor::Mlp {
                hidden: weights.dense("mlp.hidden", manifest.hidden, features)?,
                output: weights.dense("mlp.output", models, manifest.hidden)?,
            },
            PredictorKind::Knn => {
                let embeddings = weights.vec("knn.embeddings", None)?;
                let prompts = embeddings.len() / dim.max(1);
                let params = weights.vec("knn.params", Some(2))?;
                Predictor::Knn(KnnMemory {
                    dim,
                    embeddings,
                    scores: weights.vec("knn.scores", Some(prompts * models))?,
                    prior: weights.vec("knn.prior", Some(models))?,
                    k: params[0] as usize,
                    alpha: params[1],
                })
            }
        };
        let calibration = weights
            .vec("calibration", Some(models * 2))?
            .chunks_exact(2)
            .map(|c| Platt { a: c[0], b: c[1] })
            .collect();
        Ok(Self {
            manifest,
            heads,
            predictor,
            calibration,
        })
    }
}

struct Weights<'a> {
    tensors: HashMap<String, Tensor>,
    path: &'a Path,
}

impl Weights<'_> {
    fn vec(&self, name: &str, len: Option<usize>) -> Result<Vec<f32>, RouterError> {
        let err = |message: String| RouterError::Weights {
            path: self.path.to_path_buf(),
            message,
        };
        let tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| err(format!("tensor {name:?} is missing")))?;
        let data = tensor
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| err(format!("{name}: {e}")))?;
        match len {
            Some(len) if data.len() != len => Err(err(format!(
                "tensor {name:?} has {} values, expected {len}",
                data.len()
            ))),
            _ => Ok(data),
        }
    }

    fn dense(&self, name: &str, outputs: usize, inputs: usize) -> Result<Dense, RouterError> {
        let weight = self.vec(&format!("{name}.weight"), Some(outputs * inputs))?;
        let bias = self.vec(&format!("{name}.bias"), Some(outputs))?;
        Dense::new(outputs, inputs, weight, bias).ok_or_else(|| RouterError::Weights {
            path: self.path.to_path_buf(),
            message: format!("{name} has inconsistent sizes"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::CostSource;
    use crate::policy::Knob;

    fn tiny(predictor: Predictor, hidden: usize) -> Router {
        let dim = 2;
        let models = ["cheap", "strong"].map(|m| ModelCost {
            model: m.to_string(),
            input_usd_per_mtok: if m == "cheap" { 0.1 } else { 10.0 },
            output_usd_per_mtok: 1.0,
            mean_output_tokens: 100.0,
            mean_cost_usd: None,
            source: CostSource::Prices,
        });
        Router {
            manifest: Manifest {
                format_version: FORMAT_VERSION,
                encoder: EncoderInfo {
                    id: "enc".into(),
                    dim,
                    max_tokens: 256,
                },
                models: models.to_vec(),
                domains: vec!["math".into(), "law".into()],
                predictor: predictor.kind(),
                hidden,
                default_policy: Policy::new(Knob::MinQuality(0.7)),
                training: TrainingInfo::default(),
                validation: Vec::new(),
                created_by: "test".into(),
            },
            heads: Heads {
                domains: vec!["math".into(), "law".into()],
                domain: Dense::new(2, dim, vec![3., 0., 0., 3.], vec![0., 0.]),
                complexity: Dense::new(1, dim, vec![2., -2.], vec![0.]).unwrap(),
            },
            predictor,
            calibration: vec![Platt::default(), Platt { a: 1.5, b: 0.1 }],
        }
    }

    fn predictors() -> Vec<(Predictor, usize)> {
        let features = 2 + 2 + 1;
        vec![
            (
                Predictor::Logistic(
                    Dense::new(
                        2,
                        features,
                        (0..10).map(|i| i as f32 / 10.0).collect(),
                        vec![0.1, -0.2],
                    )
                    .unwrap(),
                ),
                0,
            ),
            (
                Predictor::Mlp {
                    hidden: Dense::new(
                        3,
                        features,
                        (0..15).map(|i| (i as f32 - 7.0) / 7.0).collect(),
                        vec![0.; 3],
                    )
                    .unwrap(),
                    output: Dense::new(2, 3, vec![1., -1., 0.5, 0.2, 0.3, -0.4], vec![0., 0.])
                        .unwrap(),
                },
                3,
            ),
            (
                Predictor::Knn(KnnMemory {
                    dim: 2,
                    embeddings: vec![1., 0., 0., 1.],
                    scores: vec![1., 0., f32::NAN, 1.],
                    prior: vec![0.5, 0.5],
                    k: 1,
                    alpha: 1.0,
                }),
                0,
            ),
        ]
    }

    #[test]
    fn every_predictor_round_trips_with_identical_decisions() {
        for (predictor, hidden) in predictors() {
            let router = tiny(predictor, hidden);
            let dir = tempfile::tempdir().unwrap();
            router.save(dir.path()).unwrap();
            let loaded = Router::load(dir.path()).unwrap();
            for x in [[1f32, 0.], [0., 1.], [0.6, 0.8]] {
                let policy = &router.manifest.default_policy;
                let (a, da) = router.route(&x, 500.0, policy).unwrap();
                let (b, db) = loaded.route(&x, 500.0, policy).unwrap();
                assert_eq!(da, db);
                for (ma, mb) in a.models.iter().zip(&b.models) {
                    assert_eq!(
                        ma.p_success.to_bits(),
                        mb.p_success.to_bits(),
                        "{:?}",
                        router.predictor.kind()
                    );
                }
                assert_eq!(a.domains, b.domains);
            }
            let p = router.predict(&[1., 0.], 500.0);
            assert_eq!(p.domains[0].domain, "math");
            assert!(p.complexity > 0.5);
            assert!(p.models[1].expected_cost_usd > p.models[0].expected_cost_usd);
        }
    }

    #[test]
    fn incompatible_or_damaged_artifacts_are_refused() {
        let (predictor, hidden) = predictors().remove(0);
        let router = tiny(predictor, hidden);
        let dir = tempfile::tempdir().unwrap();
        router.save(dir.path()).unwrap();
        assert!(matches!(
            router.check_encoder("other", 2),
            Err(RouterError::EncoderMismatch { .. })
        ));
        router.check_encoder("enc", 2).unwrap();

        let manifest = dir.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(
            &manifest,
            text.replace("\"format_version\": 1", "\"format_version\": 99"),
        )
        .unwrap();
        let err = Router::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format version 99"), "{err}");

        std::fs::write(
            &manifest,
            text.replace("\"hidden\": 0,", "\"hidden\": \"x\","),
        )
        .unwrap();
        assert!(matches!(
            Router::load(dir.path()),
            Err(RouterError::Manifest { .. })
        ));

        std::fs::write(&manifest, &text).unwrap();
        std::fs::write(dir.path().join(WEIGHTS_FILE), b"garbage").unwrap();
        let err = Router::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("router.safetensors") && err.contains("retrain"),
            "{err}"
        );
        std::fs::remove_dir_all(dir.path()).unwrap();
        assert!(matches!(
            Router::load(dir.path()),
            Err(RouterError::Io { .. })
        ));
    }
}
