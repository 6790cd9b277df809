//! The per-model success predictors and their hyper-parameter settings: per-model logistic regression and
//! the matrix-factorisation / IRT predictor (full batch, L-BFGS), a small MLP (minibatch AdamW), and a
//! similarity-weighted kNN with a Beta prior, and multidimensional IRT fitted across sources (full batch,
//! L-BFGS). All learn from soft targets with observation weights;
//! the parametric ones read pairwise rows through a Bradley–Terry likelihood.

mod irt;
mod knn;
mod linear;
mod loss;
mod mlp;

use ndarray::Array2;
use switchyard_core::{Predictor, PredictorKind};

pub use irt::{fit_irt, Aggregate, IrtConfig, Linking};
pub use knn::{fit_knn, knn_grid, knn_memory, memory_rows, nearest, KnnConfig, MAX_KNN_MEMORY};
pub use linear::{fit_logistic, fit_mf};
pub use loss::soft_bce_elements;
pub(crate) use loss::{squared, tensor, Params};
pub use mlp::{fit_mlp, MlpConfig};

/// One candidate: a predictor kind with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Config {
    /// Logistic regression with L2 penalty `lambda` on the mean loss.
    Logistic {
        /// The penalty.
        lambda: f64,
    },
    /// Matrix factorisation with a `latent`-dimensional projection and L2 penalty `lambda`.
    Mf {
        /// Latent dimension.
        latent: usize,
        /// The penalty.
        lambda: f64,
    },
    /// The MLP (early-stopped inside each fold; the refit runs the folds' median epoch count).
    Mlp(MlpConfig),
    /// kNN.
    Knn(KnnConfig),
    /// Multidimensional IRT over every source at once.
    Irt(IrtConfig),
}

impl Config {
    /// The predictor kind.
    pub fn kind(&self) -> PredictorKind {
        match self {
            Self::Logistic { .. } => PredictorKind::Logistic,
            Self::Mf { .. } => PredictorKind::Mf,
            Self::Mlp(_) => PredictorKind::Mlp,
            Self::Knn(_) => PredictorKind::Knn,
            Self::Irt(_) => PredictorKind::Irt,
        }
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Logistic { lambda } => write!(f, "lambda={lambda:e}"),
            Self::Mf { latent, lambda } => write!(f, "latent={latent} lambda={lambda:e}"),
            Self::Mlp(c) => write!(f, "hidden={} lr={} weight_decay={}", c.hidden, c.lr, c.weight_decay),
            Self::Knn(c) => c.fmt(f),
            Self::Irt(c) => write!(f, "skills={} lambda={:e} deviation={:e}", c.skills, c.lambda, c.deviation),
        }
    }
}

/// Every setting cross-validation tries for these kinds.
pub fn grid(kinds: &[PredictorKind], mlp: MlpConfig) -> Vec<Config> {
    let mut out = Vec::new();
    for kind in kinds {
        match kind {
            PredictorKind::Logistic => out.extend([1e-5, 1e-4, 1e-3].map(|lambda| Config::Logistic { lambda })),
            PredictorKind::Mf => {
                out.extend([(16, 1e-4), (16, 1e-3), (48, 1e-4)].map(|(latent, lambda)| Config::Mf { latent, lambda }))
            }
            PredictorKind::Mlp => out.push(Config::Mlp(mlp)),
            PredictorKind::Knn => out.extend(knn_grid().into_iter().map(Config::Knn)),
            PredictorKind::Irt => out.extend(irt_grid().into_iter().map(Config::Irt)),
            PredictorKind::Ensemble => {}
        }
    }
    out
}

/// The IRT settings cross-validation tries: 8 or 16 skills and two prompt-side penalties, with the models'
/// skill deviations always penalised at 1e-3 (a hundred times the lower prompt-side penalty), which keeps each
/// model near its general ability where its own evidence is thin. Weaker deviation penalties were tried on
/// the default data: cross-validated AIQ within noise, and the MMLU-Pro per-category ranking worse.
fn irt_grid() -> Vec<IrtConfig> {
    [(8, 1e-5, 1e-3), (16, 1e-5, 1e-3), (8, 1e-4, 1e-3)]
        .map(|(skills, lambda, deviation)| IrtConfig { skills, lambda, deviation })
        .to_vec()
}

/// Some rows of a matrix, in that order.
pub(crate) fn select_rows(a: &Array2<f32>, idx: &[usize]) -> Array2<f32> {
    Array2::from_shape_fn((idx.len(), a.ncols()), |(r, c)| a[[idx[r], c]])
}

/// Raw predictions for every row: `features` feed the parametric predictors, `embeddings` feed kNN.
pub fn predict_rows(predictor: &Predictor, features: &Array2<f32>, embeddings: &Array2<f32>) -> Array2<f32> {
    let rows: Vec<Vec<f32>> = features
        .rows()
        .into_iter()
        .zip(embeddings.rows())
        .map(|(f, e)| predictor.predict(&f.to_vec(), &e.to_vec()))
        .collect();
    let models = rows.first().map_or(0, Vec::len);
    Array2::from_shape_fn((rows.len(), models), |(r, m)| rows[r][m])
}
