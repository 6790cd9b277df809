//! The models a trained router routes between, as `switchyard profile` shows and edits them: each model's
//! prices and evidence (the logged outcomes behind its predictions, per domain), a fingerprint of each model's
//! estimates, and [`RosterError`], why the roster cannot change as asked. Adding a model without retraining the
//! others is in `add`, removing one in `remove`.

mod add;
mod remove;

use serde::Serialize;

use crate::router::manifest::AddedProfile;
use crate::router::Router;

pub use add::{ModelHead, NewModel};

/// One model of a router, for `switchyard profile list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelProfile {
    /// The model.
    pub model: String,
    /// USD per million input tokens.
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
    /// Mean output tokens per call in the training logs.
    pub mean_output_tokens: f64,
    /// Logged outcomes behind the model's predictions (`None`: the router does not record them).
    pub evidence_rows: Option<f64>,
    /// The same per domain, in the router's domain order (empty when not recorded).
    pub evidence_by_domain: Vec<(String, f64)>,
    /// The model's prior P(success) per domain, used far from the training prompts (empty without one).
    pub prior_by_domain: Vec<(String, f64)>,
    /// How the model was added without retraining (absent: it was trained with the router).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<AddedProfile>,
}

/// Why a model cannot be added to or removed from a router.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// The router has no such model.
    #[error("the router has no model {name:?}; it has {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The models it has, comma-separated.
        known: String,
    },
    /// It is the router's only model.
    #[error("{0:?} is the router's only model; a router needs at least one")]
    Last(String),
    /// The router's default policy allows only that model.
    #[error(
        "the router's default policy allows only {0:?}; change it (switchyard calibrate, or a new training) first"
    )]
    OnlyAllowed(String),
    /// Without the model, the default policy's allowed and denied lists leave no model to choose.
    #[error(
        "without {0:?}, the router's default policy (its allowed and denied models) leaves no model to choose; \
         change it first"
    )]
    NoneEligible(String),
    /// A model of that name is already in the router.
    #[error("the router already has a model {0:?}; pass --replace to refit it, or `switchyard profile update` to merge new eval rows")]
    Exists(String),
    /// The new model's parts do not fit the router.
    #[error("the new model does not fit this router: {0}")]
    Shape(String),
}

impl Router {
    /// Every model with its prices, evidence and priors, in the router's order.
    pub fn profiles(&self) -> Vec<ModelProfile> {
        let domains: Vec<String> =
            if self.manifest.domains.is_empty() { vec!["all".to_string()] } else { self.manifest.domains.clone() };
        self.manifest
            .models
            .iter()
            .enumerate()
            .map(|(m, cost)| {
                let row = |values: &[f32]| -> Vec<(String, f64)> {
                    let width = domains.len();
                    values
                        .get(m * width..(m + 1) * width)
                        .map(|r| domains.iter().cloned().zip(r.iter().map(|v| f64::from(*v))).collect())
                        .unwrap_or_default()
                };
                let evidence = self.familiarity.as_ref().map(|f| row(&f.evidence)).unwrap_or_default();
                ModelProfile {
                    model: cost.model.clone(),
                    input_usd_per_mtok: cost.input_usd_per_mtok,
                    output_usd_per_mtok: cost.output_usd_per_mtok,
                    mean_output_tokens: cost.mean_output_tokens,
                    evidence_rows: (!evidence.is_empty()).then(|| evidence.iter().map(|(_, v)| v).sum()),
                    evidence_by_domain: evidence,
                    prior_by_domain: self.familiarity.as_ref().map(|f| row(&f.priors)).unwrap_or_default(),
                    added: self.added_profile(&cost.model).cloned(),
                }
            })
            .collect()
    }

    /// A fingerprint of each model's estimates: a digest of what the router predicts for it (P(success) and
    /// expected cost) on a fixed set of probe embeddings. It changes when anything behind the model's
    /// estimates changes (its own weights, or the heads and layers it shares) and not when another model is
    /// added or removed, so online posteriors learned against it stay valid exactly as long as it does.
    pub fn model_fingerprints(&self) -> std::collections::BTreeMap<String, String> {
        use sha2::{Digest, Sha256};
        let dim = self.manifest.encoder.dim.max(1);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let probes: Vec<Vec<f32>> = (0..8)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect();
        let predictions: Vec<_> = probes.iter().map(|p| self.predict(p, 100.0)).collect();
        self.manifest
            .models
            .iter()
            .enumerate()
            .map(|(m, cost)| {
                let mut hasher = Sha256::new();
                for prediction in &predictions {
                    if let Some(e) = prediction.models.get(m) {
                        hasher.update(e.p_success.to_bits().to_le_bytes());
                        hasher.update(e.expected_cost_usd.to_bits().to_le_bytes());
                    }
                }
                let digest = hasher.finalize();
                (cost.model.clone(), digest[..8].iter().map(|b| format!("{b:02x}")).collect())
            })
            .collect()
    }
}
