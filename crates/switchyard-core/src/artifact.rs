//! A router on disk: `manifest.json` (everything that is not a weight) and `router.safetensors`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::familiarity::Familiarity;
use crate::predictor::{Dense, Factorized, Heads, ItemResponse, KnnMemory, Platt, Predictor, PredictorKind};
use crate::router::{Manifest, Router, RouterError, FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE};

impl Router {
    /// Writes the router into `dir` atomically: `manifest.json` and `router.safetensors` go into a new folder
    /// beside `dir` (with any other files `dir` holds), which then takes `dir`'s place by rename. A server
    /// reloading `dir` meanwhile reads the old router or the new one, never half of each (for an instant
    /// there may be no folder: that reload fails, and a server keeps the router it has).
    pub fn save(&self, dir: &Path) -> Result<(), RouterError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RouterError::Io { path, source }
        };
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "router".into());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let stamp = format!("{}-{nanos}", std::process::id());
        let fresh = parent.join(format!(".{name}.writing-{stamp}"));
        std::fs::create_dir(&fresh).map_err(io(&fresh))?;
        let written = self.write_files(&fresh).and_then(|()| carry_other_files(dir, &fresh));
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e);
        }
        if dir.exists() {
            let old = parent.join(format!(".{name}.old-{stamp}"));
            std::fs::rename(dir, &old).map_err(io(dir))?;
            if let Err(source) = std::fs::rename(&fresh, dir) {
                let _ = std::fs::rename(&old, dir);
                let _ = std::fs::remove_dir_all(&fresh);
                return Err(RouterError::Io { path: dir.to_path_buf(), source });
            }
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&fresh, dir).map_err(io(dir))?;
        }
        Ok(())
    }

    /// Writes `manifest.json` and `router.safetensors` into an existing folder, each synced to disk.
    fn write_files(&self, dir: &Path) -> Result<(), RouterError> {
        let weights_path = dir.join(WEIGHTS_FILE);
        let weights_err =
            |e: candle_core::Error| RouterError::Weights { path: weights_path.clone(), message: e.to_string() };
        let mut tensors = Tensors::default();
        (|| -> Result<(), candle_core::Error> {
            if let Some(domain) = &self.heads.domain {
                tensors.dense("domain", domain)?;
            }
            tensors.dense("complexity", &self.heads.complexity)?;
            tensors.predictor("", &self.predictor)?;
            let platt: Vec<f32> = self.calibration.iter().flat_map(|p| [p.a, p.b]).collect();
            tensors.put("calibration", &platt, (self.calibration.len(), 2))?;
            if let Some(lengths) = &self.lengths {
                tensors.dense("lengths", lengths)?;
            }
            if let Some(f) = &self.familiarity {
                tensors.put("familiarity.centroids", &f.centroids, (f.centroids.len() / f.dim.max(1), f.dim))?;
                tensors.put("familiarity.quantiles", &f.quantiles, (1, f.quantiles.len()))?;
                tensors.put("familiarity.priors", &f.priors, (f.priors.len() / f.domains.max(1), f.domains))?;
                let length = [f.base_complexity, f.length_mean, f.complexity_slope];
                tensors.put("familiarity.complexity", &length, (1, 3))?;
                tensors.put("familiarity.length_slopes", &f.length_slopes, (1, f.length_slopes.len()))?;
                tensors.put("familiarity.difficulty_slope", &[f.difficulty_slope], (1, 1))?;
                if !f.evidence.is_empty() {
                    tensors.put(
                        "familiarity.evidence",
                        &f.evidence,
                        (f.evidence.len() / f.domains.max(1), f.domains),
                    )?;
                }
                if !f.domain_complexity.is_empty() {
                    tensors.put(
                        "familiarity.domain_complexity",
                        &f.domain_complexity,
                        (1, f.domain_complexity.len()),
                    )?;
                }
                if !f.labelled.is_empty() {
                    let rows = f.labelled.len() / f.dim.max(1);
                    tensors.put("familiarity.labelled", &f.labelled, (rows, f.dim))?;
                    tensors.put("familiarity.labelled_complexity", &f.labelled_complexity, (1, rows))?;
                }
            }
            Ok(())
        })()
        .map_err(weights_err)?;
        let tensors = tensors.0;
        candle_core::safetensors::save(&tensors, &weights_path).map_err(weights_err)?;

        let weights =
            std::fs::read(&weights_path).map_err(|source| RouterError::Io { path: weights_path.clone(), source })?;
        let mut manifest = self.manifest.clone();
        manifest.weights_sha256 = Some(sha256_hex(&weights));
        let manifest_path = dir.join(MANIFEST_FILE);
        let json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| RouterError::Manifest { path: manifest_path.clone(), message: e.to_string() })?;
        std::fs::write(&manifest_path, json + "\n")
            .map_err(|source| RouterError::Io { path: manifest_path.clone(), source })?;
        // The safetensors writer makes its file readable by its owner only; the weights get the manifest's
        // permissions (the umask's), so a service user can read a router another user trained.
        std::fs::metadata(&manifest_path)
            .and_then(|m| std::fs::set_permissions(&weights_path, m.permissions()))
            .map_err(|source| RouterError::Io { path: weights_path.clone(), source })?;
        for path in [&manifest_path, &weights_path] {
            std::fs::File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|source| RouterError::Io { path: path.clone(), source })?;
        }
        Ok(())
    }

    /// Reads a router folder written by [`Router::save`], checking the format version, that the weights are
    /// the ones the manifest was saved with, and every tensor's size. A folder replaced while it was read (a
    /// save elsewhere) is read again, a few times.
    pub fn load(dir: &Path) -> Result<Self, RouterError> {
        let mut attempt = 0;
        loop {
            match Self::load_once(dir) {
                Err(RouterError::Torn { .. }) if attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn load_once(dir: &Path) -> Result<Self, RouterError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|source| RouterError::Io { path: manifest_path.clone(), source })?;
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("format_version").and_then(serde_json::Value::as_u64));
        if let Some(found) = version.filter(|v| *v != u64::from(FORMAT_VERSION)) {
            return Err(RouterError::Version { path: dir.to_path_buf(), found: found as u32 });
        }
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| RouterError::Manifest { path: manifest_path.clone(), message: e.to_string() })?;

        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes =
            std::fs::read(&weights_path).map_err(|source| RouterError::Io { path: weights_path.clone(), source })?;
        if manifest.weights_sha256.as_ref().is_some_and(|want| *want != sha256_hex(&bytes)) {
            return Err(RouterError::Torn { path: dir.to_path_buf() });
        }
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| RouterError::Weights { path: weights_path.clone(), message: e.to_string() })?;
        let weights = Weights { tensors, path: &weights_path };
        let models = manifest.models.len();
        let dim = manifest.encoder.dim;
        let features = dim + manifest.domains.len() + 1;
        let domain = if manifest.domains.is_empty() {
            None
        } else {
            Some(weights.dense("domain", manifest.domains.len(), dim)?)
        };
        let heads =
            Heads { domains: manifest.domains.clone(), domain, complexity: weights.dense("complexity", 1, dim)? };
        let shape = Shape { models, features, dim, hidden: manifest.hidden, latent: manifest.latent };
        let predictor = weights.predictor("", manifest.predictor, &manifest.members, &shape)?;
        let calibration =
            weights.vec("calibration", Some(models * 2))?.chunks_exact(2).map(|c| Platt { a: c[0], b: c[1] }).collect();
        let familiarity = if weights.tensors.contains_key("familiarity.centroids") {
            let domains = manifest.domains.len().max(1);
            let centroids = weights.vec("familiarity.centroids", None)?;
            if centroids.is_empty() || centroids.len() % dim.max(1) != 0 {
                return Err(RouterError::Weights {
                    path: weights_path.clone(),
                    message: format!("familiarity.centroids has {} values, not a multiple of {dim}", centroids.len()),
                });
            }
            let complexity = weights.vec("familiarity.complexity", Some(3))?;
            let labelled = match weights.optional("familiarity.labelled", None)? {
                Some(c) if c.len() % dim.max(1) != 0 => {
                    return Err(RouterError::Weights {
                        path: weights_path.clone(),
                        message: format!("familiarity.labelled has {} values, not a multiple of {dim}", c.len()),
                    })
                }
                found => found.unwrap_or_default(),
            };
            let labelled_complexity = weights
                .optional("familiarity.labelled_complexity", Some(labelled.len() / dim.max(1)))?
                .unwrap_or_default();
            Some(Familiarity {
                dim,
                centroids,
                quantiles: weights.vec("familiarity.quantiles", None)?,
                priors: weights.vec("familiarity.priors", Some(models * domains))?,
                domains,
                base_complexity: complexity[0],
                length_mean: complexity[1],
                complexity_slope: complexity[2],
                length_slopes: weights.vec("familiarity.length_slopes", Some(models))?,
                difficulty_slope: weights.optional("familiarity.difficulty_slope", Some(1))?.map_or(0.0, |v| v[0]),
                evidence: weights.optional("familiarity.evidence", Some(models * domains))?.unwrap_or_default(),
                domain_complexity: weights
                    .optional("familiarity.domain_complexity", Some(domains))?
                    .unwrap_or_default(),
                labelled,
                labelled_complexity,
            })
        } else {
            None
        };
        let lengths = if weights.tensors.contains_key("lengths.weight") {
            Some(weights.dense("lengths", models, features)?)
        } else {
            None
        };
        Ok(Self { manifest, heads, predictor, calibration, familiarity, lengths })
    }
}

struct Weights<'a> {
    tensors: HashMap<String, Tensor>,
    path: &'a Path,
}

impl Weights<'_> {
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
struct Tensors(HashMap<String, Tensor>);

impl Tensors {
    fn put(&mut self, name: &str, data: &[f32], shape: (usize, usize)) -> Result<(), candle_core::Error> {
        self.0.insert(name.to_string(), Tensor::from_slice(data, shape, &Device::Cpu)?);
        Ok(())
    }

    fn dense(&mut self, name: &str, d: &Dense) -> Result<(), candle_core::Error> {
        self.put(&format!("{name}.weight"), &d.weight, (d.outputs, d.inputs))?;
        self.put(&format!("{name}.bias"), &d.bias, (1, d.outputs))
    }

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

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies what `from` holds besides the router's own two files into `to` (folders too), so that a save
/// does not lose a user's notes beside the router. A missing `from` holds nothing.
fn carry_other_files(from: &Path, to: &Path) -> Result<(), RouterError> {
    copy_tree(from, to, true)
}

fn copy_tree(from: &Path, to: &Path, top: bool) -> Result<(), RouterError> {
    let io = |path: &Path, source| RouterError::Io { path: path.to_path_buf(), source };
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    for entry in entries {
        let entry = entry.map_err(|e| io(from, e))?;
        let name = entry.file_name();
        if top && (name == MANIFEST_FILE || name == WEIGHTS_FILE) {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        if entry.file_type().map_err(|e| io(&source, e))?.is_dir() {
            std::fs::create_dir(&target).map_err(|e| io(&target, e))?;
            copy_tree(&source, &target, false)?;
        } else {
            std::fs::copy(&source, &target).map_err(|e| io(&source, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cost::{CostSource, ModelCost};
    use crate::policy::{Knob, Policy};
    use crate::router::{EncoderInfo, TrainingInfo};

    pub(crate) fn tiny(predictor: Predictor, hidden: usize) -> Router {
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
                profiles: Vec::new(),
                weights_sha256: None,
                format_version: FORMAT_VERSION,
                encoder: EncoderInfo { id: "enc".into(), dim, max_tokens: 256, files_sha256: Some("f1".into()) },
                models: models.to_vec(),
                domains: vec!["math".into(), "law".into()],
                predictor: predictor.kind(),
                hidden,
                latent: match &predictor {
                    Predictor::Mf(mf) => mf.latent(),
                    Predictor::Ensemble(m) => m
                        .iter()
                        .find_map(|p| match p {
                            Predictor::Mf(mf) => Some(mf.latent()),
                            _ => None,
                        })
                        .unwrap_or(0),
                    _ => 0,
                },
                members: match &predictor {
                    Predictor::Ensemble(m) => m.iter().map(Predictor::kind).collect(),
                    _ => Vec::new(),
                },
                default_policy: Policy::new(Knob::MinQuality(0.7)),
                training: TrainingInfo::default(),
                validation: Vec::new(),
                output_lengths: None,
                created_by: "test".into(),
            },
            heads: Heads {
                domains: vec!["math".into(), "law".into()],
                domain: Dense::new(2, dim, vec![3., 0., 0., 3.], vec![0., 0.]),
                complexity: Dense::new(1, dim, vec![2., -2.], vec![0.]).unwrap(),
            },
            predictor,
            calibration: vec![Platt::default(), Platt { a: 1.5, b: 0.1 }],
            lengths: Dense::new(2, 5, vec![0.1, 0.0, 0.2, 0.0, 0.3, 0.0, 0.1, 0.0, 0.5, 0.0], vec![4.0, 5.0]),
            familiarity: Some(Familiarity {
                dim,
                centroids: vec![1.0, 0.0, 0.6, 0.8],
                quantiles: vec![0.7, 0.9, 0.99],
                priors: vec![0.5, 0.6, 0.8, 0.7],
                domains: 2,
                base_complexity: 0.3,
                length_mean: 0.0,
                complexity_slope: 0.0,
                length_slopes: vec![0.0, 0.0],
                difficulty_slope: -2.5,
                evidence: vec![30.0, 0.0, 10.0, 5.0],
                labelled: vec![0.0, 1.0],
                labelled_complexity: vec![0.8],
                domain_complexity: vec![0.2, 0.5],
            }),
        }
    }

    fn base_predictors() -> Vec<(Predictor, usize)> {
        let features = 2 + 2 + 1;
        vec![
            (
                Predictor::Logistic(
                    Dense::new(2, features, (0..10).map(|i| i as f32 / 10.0).collect(), vec![0.1, -0.2]).unwrap(),
                ),
                0,
            ),
            (
                Predictor::Mlp {
                    hidden: Dense::new(3, features, (0..15).map(|i| (i as f32 - 7.0) / 7.0).collect(), vec![0.; 3])
                        .unwrap(),
                    output: Dense::new(2, 3, vec![1., -1., 0.5, 0.2, 0.3, -0.4], vec![0., 0.]).unwrap(),
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
                    power: 2.0,
                }),
                0,
            ),
            (
                Predictor::Mf(Factorized {
                    project: Dense::new(2, features, (0..10).map(|i| (i as f32 - 4.0) / 5.0).collect(), vec![0.; 2])
                        .unwrap(),
                    models: Dense::new(2, 2, vec![1., -0.5, 0.3, 0.8], vec![0.2, -0.1]).unwrap(),
                    difficulty: Dense::new(1, features, vec![0.1, -0.2, 0.3, 0.0, 0.5], vec![0.05]).unwrap(),
                }),
                0,
            ),
            (
                Predictor::Irt(ItemResponse {
                    skills: Dense::new(3, features, (0..15).map(|i| (i as f32 - 7.0) / 4.0).collect(), vec![0.1; 3])
                        .unwrap(),
                    discrimination: Dense::new(1, features, vec![0.2, 0.1, -0.1, 0.0, 0.3], vec![0.5]).unwrap(),
                    difficulty: Dense::new(1, features, vec![0.1, -0.2, 0.3, 0.0, 0.5], vec![0.05]).unwrap(),
                    models: Dense::new(2, 4, vec![0.5, -0.5, 0.2, 1.0, -0.3, 0.4, 0.1, 0.2], vec![0.0, 0.0]).unwrap(),
                }),
                0,
            ),
        ]
    }

    pub(crate) fn predictors() -> Vec<(Predictor, usize)> {
        let mut all = base_predictors();
        let members: Vec<Predictor> = all.iter().map(|(p, _)| p.clone()).collect();
        all.push((Predictor::Ensemble(members), 3));
        all
    }

    #[test]
    fn every_predictor_round_trips_with_identical_decisions() {
        for (predictor, hidden) in predictors() {
            let router = tiny(predictor, hidden);
            let dir = tempfile::tempdir().unwrap();
            router.save(dir.path()).unwrap();
            let mode = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().permissions();
            assert_eq!(mode(WEIGHTS_FILE), mode(MANIFEST_FILE), "the weights are as readable as the manifest");
            let loaded = Router::load(dir.path()).unwrap();
            for x in [[1f32, 0.], [0., 1.], [0.6, 0.8], [-1., 0.]] {
                let policy = &router.manifest.default_policy;
                let (a, da) = router.route(&x, 500.0, policy).unwrap();
                let (b, db) = loaded.route(&x, 500.0, policy).unwrap();
                assert_eq!(da, db);
                for (ma, mb) in a.models.iter().zip(&b.models) {
                    assert_eq!(ma.p_success.to_bits(), mb.p_success.to_bits(), "{:?}", router.predictor.kind());
                }
                assert_eq!(a.domains, b.domains);
            }
            let p = router.predict(&[1., 0.], 500.0);
            assert_eq!(p.domains[0].domain, "math");
            assert!(p.complexity > 0.5);
            assert_eq!((p.ood, p.shrink), (0.0, 0.0));
            // Opposite every centroid: fully shrunk to the priors (math-heavy domain mix) and base complexity.
            let far = router.predict(&[-1., 0.], 500.0);
            assert_eq!((far.ood, far.shrink), (1.0, 1.0));
            assert!((far.complexity - 0.3).abs() < 1e-6);
            let probs = router.heads.domain_probs(&[-1., 0.]);
            // The domain prior, moved by the difficulty slope (−2.5) for the complexity (0.3) against the
            // domains' typical complexity (0.2 and 0.5).
            let typical = 0.2 * probs[0] + 0.5 * probs[1];
            let prior = crate::predictor::sigmoid(
                crate::predictor::logit(0.5 * probs[0] + 0.6 * probs[1]) - 2.5 * (0.3 - typical),
            );
            assert!((far.models[0].p_success - f64::from(prior)).abs() < 1e-6, "{far:?}");
            assert!(p.models[1].expected_cost_usd > p.models[0].expected_cost_usd);
        }
    }

    #[test]
    fn incompatible_or_damaged_artifacts_are_refused() {
        let (predictor, hidden) = predictors().remove(0);
        let router = tiny(predictor, hidden);
        let dir = tempfile::tempdir().unwrap();
        router.save(dir.path()).unwrap();
        let running = |id: &str, max_tokens, files: Option<&str>| EncoderInfo {
            id: id.into(),
            dim: 2,
            max_tokens,
            files_sha256: files.map(str::to_string),
        };
        assert!(matches!(
            router.check_encoder(&running("other", 256, Some("f1"))),
            Err(RouterError::EncoderMismatch { .. })
        ));
        router.check_encoder(&running("enc", 256, Some("f1"))).unwrap();
        // Another truncation, or another tokenizer/config, is another encoder: the error names both.
        let err = router.check_encoder(&running("enc", 128, Some("f1"))).unwrap_err().to_string();
        assert!(err.contains("max_tokens 256") && err.contains("max_tokens 128"), "{err}");
        let err = router.check_encoder(&running("enc", 256, Some("f2"))).unwrap_err().to_string();
        assert!(err.contains("f1") && err.contains("f2"), "{err}");

        let manifest = dir.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(
            &manifest,
            text.replace(&format!("\"format_version\": {FORMAT_VERSION}"), "\"format_version\": 99"),
        )
        .unwrap();
        let err = Router::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format version 99"), "{err}");

        std::fs::write(&manifest, text.replace("\"hidden\": 0,", "\"hidden\": \"x\",")).unwrap();
        assert!(matches!(Router::load(dir.path()), Err(RouterError::Manifest { .. })));

        std::fs::write(&manifest, &text).unwrap();
        std::fs::write(dir.path().join(WEIGHTS_FILE), b"garbage").unwrap();
        // The manifest's digest tells the replaced file apart before it is parsed.
        let err = Router::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not match manifest.json"), "{err}");
        let unchecked: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut unchecked = unchecked.as_object().unwrap().clone();
        unchecked.remove("weights_sha256");
        std::fs::write(&manifest, serde_json::to_string(&unchecked).unwrap()).unwrap();
        let err = Router::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("router.safetensors") && err.contains("retrain"), "{err}");
        std::fs::remove_dir_all(dir.path()).unwrap();
        assert!(matches!(Router::load(dir.path()), Err(RouterError::Io { .. })));
    }

    #[test]
    fn a_save_replaces_the_folder_whole_while_readers_load_it() {
        let mut all = predictors();
        let (a, b) = (tiny(all.remove(0).0, 0), tiny(all.pop().unwrap().0, 3));
        let (kind_a, kind_b) = (a.manifest.predictor, b.manifest.predictor);
        assert_ne!(kind_a, kind_b);
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("router");
        a.save(&dir).unwrap();
        std::fs::write(dir.join("NOTES.md"), "trained on the March logs").unwrap();
        std::fs::create_dir(dir.join("reports")).unwrap();
        std::fs::write(dir.join("reports/bench.json"), "{}").unwrap();

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut whole, mut missing) = (0, 0);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match Router::load(&dir) {
                        Ok(r) => {
                            assert!(r.manifest.predictor == kind_a || r.manifest.predictor == kind_b);
                            whole += 1;
                        }
                        // Between the two renames there is, for an instant, no folder at all; and a reader
                        // overtaken by several saves in a row is told, never handed a mix.
                        Err(RouterError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                            missing += 1;
                        }
                        Err(RouterError::Torn { .. }) => missing += 1,
                        Err(e) => panic!("a reader saw half a router: {e}"),
                    }
                }
                (whole, missing)
            })
        };
        for i in 0..40 {
            if i % 2 == 0 {
                b.save(&dir).unwrap()
            } else {
                a.save(&dir).unwrap()
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (whole, _) = reader.join().unwrap();
        assert!(whole > 0);
        assert_eq!(Router::load(&dir).unwrap().manifest.predictor, kind_a);
        assert_eq!(std::fs::read_to_string(dir.join("NOTES.md")).unwrap(), "trained on the March logs");
        assert!(dir.join("reports/bench.json").is_file());
        let left: Vec<String> = std::fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["router"], "temporary folders left behind");
    }
}
