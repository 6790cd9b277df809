//! What a trained router computes from an embedding: the domain and complexity heads, and the per-model
//! success predictor (logistic regression, a small MLP, or k nearest neighbours), all as plain f32 math.

use serde::{Deserialize, Serialize};

/// A dense layer: `y = W x + b`, with `W` stored row-major as `[outputs, inputs]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Output size.
    pub outputs: usize,
    /// Input size.
    pub inputs: usize,
    /// Row-major weights, `outputs × inputs`.
    pub weight: Vec<f32>,
    /// Bias, `outputs`.
    pub bias: Vec<f32>,
}

impl Dense {
    /// A layer from its weights; `None` if the sizes disagree.
    pub fn new(outputs: usize, inputs: usize, weight: Vec<f32>, bias: Vec<f32>) -> Option<Self> {
        (weight.len() == outputs * inputs && bias.len() == outputs).then_some(Self { outputs, inputs, weight, bias })
    }

    /// `W x + b`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.weight.chunks_exact(self.inputs).zip(&self.bias).map(|(row, b)| dot(row, x) + b).collect()
    }
}

/// The dot product of two slices (over the shorter one's length), summed in eight lanes so that it
/// compiles to SIMD: the scans over a kNN memory and over centroids are most of a decision's work after
/// the encoder.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The logistic function.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Softmax of logits, in place.
pub fn softmax(z: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// The prompt-level heads: a softmax over domain labels and a difficulty score in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Heads {
    /// Domain labels, in the order of the domain head's outputs (empty: no domain head).
    pub domains: Vec<String>,
    /// Embedding → domain logits (absent when there are no domain labels).
    pub domain: Option<Dense>,
    /// Embedding → difficulty logit (one output).
    pub complexity: Dense,
}

impl Heads {
    /// Domain probabilities, in [`Heads::domains`] order.
    pub fn domain_probs(&self, embedding: &[f32]) -> Vec<f32> {
        match &self.domain {
            Some(layer) => {
                let mut z = layer.forward(embedding);
                softmax(&mut z);
                z
            }
            None => Vec::new(),
        }
    }

    /// Difficulty in [0, 1]: high when models tend to fail prompts like this one.
    pub fn complexity(&self, embedding: &[f32]) -> f32 {
        sigmoid(self.complexity.forward(embedding)[0])
    }

    /// The predictor's input: the embedding, the domain probabilities, then the complexity.
    pub fn features(&self, embedding: &[f32]) -> Vec<f32> {
        let mut f = Vec::with_capacity(embedding.len() + self.domains.len() + 1);
        f.extend_from_slice(embedding);
        f.extend(self.domain_probs(embedding));
        f.push(self.complexity(embedding));
        f
    }
}

/// Which kind of success predictor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictorKind {
    /// One logistic regression per model over the features.
    Logistic,
    /// A one-hidden-layer network with one output per model, trained on all models at once.
    Mlp,
    /// Smoothed mean score of each model over the k most similar training prompts.
    Knn,
    /// Matrix factorisation / item response theory: a latent vector per prompt and per model.
    Mf,
    /// Multidimensional item response theory on one scale for every model: per-prompt difficulty,
    /// discrimination and skill mix, per-model abilities (see [`ItemResponse`]).
    Irt,
    /// The mean of several of the above.
    Ensemble,
}

impl std::fmt::Display for PredictorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Logistic => "logistic",
            Self::Mlp => "mlp",
            Self::Knn => "knn",
            Self::Mf => "mf",
            Self::Irt => "irt",
            Self::Ensemble => "ensemble",
        })
    }
}

/// The k-nearest-neighbour predictor's memory: training prompts' embeddings and per-model scores.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnMemory {
    /// Embedding dimension.
    pub dim: usize,
    /// Unit-length training embeddings, row-major `[prompts, dim]`.
    pub embeddings: Vec<f32>,
    /// Per-prompt, per-model mean score, row-major `[prompts, models]`; NaN where the model was not observed.
    pub scores: Vec<f32>,
    /// Each model's overall mean score, the prior neighbours are shrunk towards.
    pub prior: Vec<f32>,
    /// Neighbours consulted.
    pub k: usize,
    /// Prior strength, in pseudo-observations: each model's estimate starts from a Beta prior with mean
    /// `prior[m]` and this many observations.
    pub alpha: f32,
    /// Similarity weighting: a neighbour counts max(cosine, 0)^power (0: every neighbour counts 1, the
    /// plain kNN of RouterBench).
    pub power: f32,
}

impl KnnMemory {
    /// Number of stored prompts.
    pub fn len(&self) -> usize {
        self.embeddings.len() / self.dim.max(1)
    }

    /// Whether no prompt is stored.
    pub fn is_empty(&self) -> bool {
        self.embeddings.is_empty()
    }

    /// The `k` stored prompts most similar (cosine) to `embedding` as (similarity, index), best first.
    pub fn neighbours(&self, embedding: &[f32], k: usize) -> Vec<(f32, usize)> {
        let mut sims: Vec<(f32, usize)> =
            self.embeddings.chunks_exact(self.dim).enumerate().map(|(i, row)| (dot(row, embedding), i)).collect();
        let k = k.min(sims.len());
        if k == 0 {
            return Vec::new();
        }
        sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        sims.truncate(k);
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));
        sims
    }

    /// Success estimate per model from the nearest neighbours: the posterior mean of a Beta prior (mean
    /// `prior[m]`, strength `alpha`) updated with the neighbours' scores, each weighted by its similarity.
    pub fn predict(&self, embedding: &[f32]) -> Vec<f32> {
        self.predict_from(&self.neighbours(embedding, self.k))
    }

    /// [`KnnMemory::predict`] from neighbours already found (similarity, index), e.g. the first k of a
    /// longer list.
    pub fn predict_from(&self, neighbours: &[(f32, usize)]) -> Vec<f32> {
        let models = self.prior.len();
        let mut sum = vec![0f32; models];
        let mut count = vec![0f32; models];
        for &(sim, i) in neighbours.iter().take(self.k) {
            let weight = if self.power == 0.0 { 1.0 } else { sim.max(0.0).powf(self.power) };
            for (m, &s) in self.scores[i * models..(i + 1) * models].iter().enumerate() {
                if !s.is_nan() {
                    sum[m] += weight * s;
                    count[m] += weight;
                }
            }
        }
        (0..models).map(|m| (sum[m] + self.alpha * self.prior[m]) / (count[m] + self.alpha)).collect()
    }
}

/// The matrix-factorisation / item-response-theory predictor (the shape of RouteLLM's MF router and of
/// MIRT routers): a prompt's features f are projected to a latent vector u = A f; each model m has a vector
/// v_m and a bias b_m; the prompt has a difficulty d(f) = w·f + c; P(m succeeds) = σ(v_m·u + b_m − d(f)).
/// Models share the projection, so what is learned about one model's prompts informs the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Factorized {
    /// Features → latent vector (A, no bias).
    pub project: Dense,
    /// Latent vector → one logit per model (rows v_m, bias b_m).
    pub models: Dense,
    /// Features → difficulty (one output).
    pub difficulty: Dense,
}

impl Factorized {
    /// Latent dimension.
    pub fn latent(&self) -> usize {
        self.project.outputs
    }

    /// Per-model logits for one prompt's features.
    pub fn logits(&self, features: &[f32]) -> Vec<f32> {
        let u = self.project.forward(features);
        let d = self.difficulty.forward(features)[0];
        self.models.forward(&u).into_iter().map(|z| z - d).collect()
    }
}

/// Multidimensional item response theory (the shape of IRT-Router's MIRT-BERT), with every model on one scale.
///
/// From a prompt's features f it reads a skill mix π(f) = softmax(S f + s) over K skills, a discrimination
/// α(f) = softplus(a·f + a₀) > 0 and a difficulty b(f) = w·f + c. Model m has a general ability g_m and a
/// deviation δ_m per skill, so its ability on the prompt is θ_m(f) = g_m + δ_m·π(f), and
/// P(m succeeds) = σ(α(f) θ_m(f) − b(f)).
///
/// Because α > 0 and b is shared, a prompt's difficulty and discrimination move every model the same way:
/// two models are ordered on a prompt by their abilities in the skills it needs, never by which prompts
/// they happened to be logged on. `models` holds the abilities as one row per model over the
/// representation [α π, α] (the row is (δ_m, g_m)); its bias stays 0 for trained models.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemResponse {
    /// Features → K skill logits.
    pub skills: Dense,
    /// Features → discrimination before the softplus (one output).
    pub discrimination: Dense,
    /// Features → difficulty (one output).
    pub difficulty: Dense,
    /// Representation [α π, α] (K + 1 inputs) → one logit term per model: rows (δ_m, g_m).
    pub models: Dense,
}

impl ItemResponse {
    /// Number of skills K.
    pub fn skill_count(&self) -> usize {
        self.skills.outputs
    }

    /// The prompt's skill mix π (sums to 1).
    pub fn skill_mix(&self, features: &[f32]) -> Vec<f32> {
        let mut pi = self.skills.forward(features);
        softmax(&mut pi);
        pi
    }

    /// The prompt's discrimination α > 0.
    pub fn discrimination(&self, features: &[f32]) -> f32 {
        softplus(self.discrimination.forward(features)[0])
    }

    /// What the models' rows read: [α π, α].
    pub fn representation(&self, features: &[f32]) -> Vec<f32> {
        let alpha = self.discrimination(features);
        let mut r: Vec<f32> = self.skill_mix(features).into_iter().map(|p| alpha * p).collect();
        r.push(alpha);
        r
    }

    /// Per-model logits for one prompt's features.
    pub fn logits(&self, features: &[f32]) -> Vec<f32> {
        let d = self.difficulty.forward(features)[0];
        self.models.forward(&self.representation(features)).into_iter().map(|z| z - d).collect()
    }
}

/// ln(1 + e^z), without overflow.
pub fn softplus(z: f32) -> f32 {
    if z > 20.0 {
        z
    } else {
        z.exp().ln_1p()
    }
}

/// A trained per-model success predictor.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictor {
    /// One row of weights per model over the features; P = σ(w·f + b).
    Logistic(Dense),
    /// features → ReLU hidden layer → one logit per model.
    Mlp {
        /// Features → hidden.
        hidden: Dense,
        /// Hidden → per-model logits.
        output: Dense,
    },
    /// Nearest neighbours over the raw embeddings.
    Knn(KnnMemory),
    /// Matrix factorisation / IRT over the features.
    Mf(Factorized),
    /// Multidimensional IRT, every model on one scale.
    Irt(ItemResponse),
    /// The mean of the members' probabilities.
    Ensemble(Vec<Predictor>),
}

impl Predictor {
    /// The predictor's kind.
    pub fn kind(&self) -> PredictorKind {
        match self {
            Self::Logistic(_) => PredictorKind::Logistic,
            Self::Mlp { .. } => PredictorKind::Mlp,
            Self::Knn(_) => PredictorKind::Knn,
            Self::Mf(_) => PredictorKind::Mf,
            Self::Irt(_) => PredictorKind::Irt,
            Self::Ensemble(_) => PredictorKind::Ensemble,
        }
    }

    /// Raw (uncalibrated) P(success) per model, from the head features and the embedding.
    pub fn predict(&self, features: &[f32], embedding: &[f32]) -> Vec<f32> {
        match self {
            Self::Logistic(layer) => layer.forward(features).into_iter().map(sigmoid).collect(),
            Self::Mlp { hidden, output } => {
                let h: Vec<f32> = hidden.forward(features).into_iter().map(|v| v.max(0.0)).collect();
                output.forward(&h).into_iter().map(sigmoid).collect()
            }
            Self::Knn(memory) => memory.predict(embedding),
            Self::Mf(mf) => mf.logits(features).into_iter().map(sigmoid).collect(),
            Self::Irt(irt) => irt.logits(features).into_iter().map(sigmoid).collect(),
            Self::Ensemble(members) => {
                let mut sum: Vec<f32> = Vec::new();
                for member in members {
                    let p = member.predict(features, embedding);
                    if sum.is_empty() {
                        sum = p;
                    } else {
                        sum.iter_mut().zip(p).for_each(|(s, v)| *s += v);
                    }
                }
                let n = members.len().max(1) as f32;
                sum.into_iter().map(|s| s / n).collect()
            }
        }
    }
}

/// Per-model Platt scaling fitted on validation data: P' = σ(a · logit(P) + b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    /// Slope on the logit.
    pub a: f32,
    /// Offset.
    pub b: f32,
}

impl Default for Platt {
    fn default() -> Self {
        Self { a: 1.0, b: 0.0 }
    }
}

impl Platt {
    /// Applies the scaling to a probability.
    pub fn apply(&self, p: f32) -> f32 {
        sigmoid(self.a * logit(p) + self.b)
    }
}

/// log(p / (1 − p)), with p clamped away from 0 and 1.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_layer_and_softmax() {
        let layer = Dense::new(2, 3, vec![1., 0., 0., 0., 1., 1.], vec![0.5, -1.]).unwrap();
        assert_eq!(layer.forward(&[1., 2., 3.]), vec![1.5, 4.0]);
        assert!(Dense::new(2, 3, vec![0.; 5], vec![0.; 2]).is_none());
        let mut z = vec![0., (3f32).ln()];
        softmax(&mut z);
        assert!((z[0] - 0.25).abs() < 1e-6 && (z[1] - 0.75).abs() < 1e-6);
    }

    #[test]
    fn knn_uses_the_nearest_observed_scores_and_shrinks_to_the_prior() {
        // Three prompts on the unit circle; model 1 unobserved on prompt 0.
        let memory = KnnMemory {
            dim: 2,
            embeddings: vec![1., 0., 0.8, 0.6, 0., 1.],
            scores: vec![1., f32::NAN, 1., 0., 0., 1.],
            prior: vec![0.5, 0.5],
            k: 2,
            alpha: 1.0,
            power: 0.0,
        };
        let near: Vec<usize> = memory.neighbours(&[1., 0.], 2).into_iter().map(|(_, i)| i).collect();
        assert_eq!(near, vec![0, 1]);
        let p = memory.predict(&[1., 0.]);
        assert!((p[0] - (2.0 + 0.5) / 3.0).abs() < 1e-6, "{p:?}");
        assert!((p[1] - (0.0 + 0.5) / 2.0).abs() < 1e-6, "{p:?}");
        // Weighted by similarity: prompt 0 (cosine 1) counts 1, prompt 1 (cosine 0.8) counts 0.8² = 0.64.
        let weighted = KnnMemory { power: 2.0, ..memory };
        let p = weighted.predict(&[1., 0.]);
        assert!((p[0] - (1.0 + 0.64 + 0.5) / (1.64 + 1.0)).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn factorized_logits_are_model_ability_minus_prompt_difficulty() {
        let mf = Factorized {
            project: Dense::new(1, 2, vec![1., 0.], vec![0.]).unwrap(),
            models: Dense::new(2, 1, vec![2., -1.], vec![0.5, 0.]).unwrap(),
            difficulty: Dense::new(1, 2, vec![0., 1.], vec![0.25]).unwrap(),
        };
        let z = mf.logits(&[1., 2.]);
        assert_eq!(z, vec![2.0 + 0.5 - 2.25, -1.0 - 2.25]);
        assert_eq!(mf.latent(), 1);
    }

    #[test]
    fn item_response_orders_models_by_ability_on_every_prompt() {
        // Two skills; model 0 is stronger in general, model 1 has a deviation toward skill 1.
        let irt = ItemResponse {
            skills: Dense::new(2, 2, vec![4., 0., 0., 4.], vec![0., 0.]).unwrap(),
            discrimination: Dense::new(1, 2, vec![1., 1.], vec![0.]).unwrap(),
            difficulty: Dense::new(1, 2, vec![1., 2.], vec![0.5]).unwrap(),
            models: Dense::new(2, 3, vec![0., 0., 1.5, 0., 0.5, 0.5], vec![0., 0.]).unwrap(),
        };
        let f = [1.0, 0.0];
        let (pi, alpha) = (irt.skill_mix(&f), irt.discrimination(&f));
        assert!((pi.iter().sum::<f32>() - 1.0).abs() < 1e-6 && pi[0] > 0.9);
        assert!((alpha - 1f32.exp().ln_1p()).abs() < 1e-5);
        let z = irt.logits(&f);
        let expected = [alpha * 1.5 - 1.5, alpha * (0.5 * pi[1] + 0.5) - 1.5];
        assert!((z[0] - expected[0]).abs() < 1e-5 && (z[1] - expected[1]).abs() < 1e-5, "{z:?}");
        // Model 0's ability (1.5) is above model 1's in both skills (at most 1.0): it is ahead everywhere.
        for f in [[1.0, 0.0], [0.0, 1.0], [-3.0, 2.0], [5.0, 5.0]] {
            let z = irt.logits(&f);
            assert!(z[0] > z[1], "{f:?}: {z:?}");
        }
        assert_eq!(irt.skill_count(), 2);
        assert!((softplus(30.0) - 30.0).abs() < 1e-6 && softplus(-30.0) >= 0.0);
    }

    #[test]
    fn platt_identity_and_logit_round_trip() {
        assert!((Platt::default().apply(0.3) - 0.3).abs() < 1e-6);
        assert!((sigmoid(logit(0.8)) - 0.8).abs() < 1e-6);
        assert!(logit(0.0).is_finite() && logit(1.0).is_finite());
    }
}
