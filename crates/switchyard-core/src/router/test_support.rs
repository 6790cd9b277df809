//! Routers for tests: a tiny two-model router ([`tiny`]) around each kind of predictor ([`predictors`]), shared
//! by the tests of saving and loading, and of adding and removing models.

use crate::cost::{CostSource, ModelCost};
use crate::familiarity::Familiarity;
use crate::policy::{Knob, Policy};
use crate::predictor::{Dense, Factorized, Heads, ItemResponse, KnnMemory, Platt, Predictor};
use crate::router::manifest::{EncoderInfo, Manifest, TrainingInfo, FORMAT_VERSION};
use crate::router::Router;

/// A router with two models (`cheap`, `strong`), 2-dimensional embeddings, two domains (`math`, `law`), a
/// familiarity block and output lengths, around `predictor` (`hidden` units of an MLP, 0 without one).
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
            encoder: EncoderInfo {
                id: "enc".into(),
                dim,
                max_tokens: 256,
                files_sha256: Some("f1".into()),
                precision: None,
            },
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

/// One predictor of each kind but the ensemble, for [`tiny`]'s shapes.
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

/// One predictor of each kind, with the `hidden` units [`tiny`] needs for it: the base kinds, then an ensemble
/// of them all.
pub(crate) fn predictors() -> Vec<(Predictor, usize)> {
    let mut all = base_predictors();
    let members: Vec<Predictor> = all.iter().map(|(p, _)| p.clone()).collect();
    all.push((Predictor::Ensemble(members), 3));
    all
}
