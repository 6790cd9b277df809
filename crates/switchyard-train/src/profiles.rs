//! Model profiles: published aggregate accuracies (MMLU-Redux for broad knowledge, ZebraLogic for logic)
//! used as priors for the domains where a model has little or no per-prompt evidence.
//!
//! Aggregates are on their benchmark's scale, not the training data's, so each is mapped onto a domain by a
//! line fitted across the models that have both the aggregate and evidence in that domain (with fewer than
//! three such models, by the mean offset; with none, as is).

use std::path::Path;

use ndarray::Array2;
use serde::Deserialize;

use crate::predictors::Aggregate;
use crate::targets::Targets;
use crate::TrainError;

/// Domains that MMLU-Redux (broad knowledge across subjects) speaks for.
const KNOWLEDGE_DOMAINS: [&str; 8] =
    ["knowledge", "humanities", "science", "law", "medicine", "finance", "geography", "trivia"];
/// Domains that ZebraLogic (logic grid puzzles) speaks for.
const LOGIC_DOMAINS: [&str; 1] = ["reasoning"];
/// Evidence (outcome rows, weighted by domain probability) a model needs in a domain for the line fit.
const MIN_EVIDENCE: f32 = 20.0;

/// A benchmark as a constraint: its name, the domains it speaks for, and how to read a profile's accuracy.
type Benchmark = (&'static str, &'static [&'static str], fn(&Profile) -> Option<f64>);

/// One model's aggregate accuracies, as fractions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The catalog name.
    pub model: String,
    /// The name the benchmark reported.
    #[serde(default)]
    pub source_model: Option<String>,
    /// MMLU-Redux accuracy.
    #[serde(default)]
    pub mmlu_redux: Option<f64>,
    /// ZebraLogic puzzle accuracy.
    #[serde(default)]
    pub zebra_puzzle: Option<f64>,
    /// ZebraLogic accuracy on easy puzzles.
    #[serde(default)]
    pub zebra_easy: Option<f64>,
    /// ZebraLogic accuracy on hard puzzles.
    #[serde(default)]
    pub zebra_hard: Option<f64>,
    /// ZebraLogic cell accuracy.
    #[serde(default)]
    pub zebra_cell: Option<f64>,
    /// Where the numbers come from.
    #[serde(default)]
    pub source: Option<String>,
}

/// A profiles file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    /// One entry per model.
    #[serde(default)]
    pub profiles: Vec<Profile>,
}

impl Profiles {
    /// Reads and checks a profiles TOML file (every accuracy in [0, 1], no model twice).
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
        let bad = |message: String| TrainError::Profiles { path: path.to_path_buf(), message };
        let profiles: Profiles = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        for p in &profiles.profiles {
            if !seen.insert(p.model.as_str()) {
                return Err(bad(format!("model {:?} is listed twice", p.model)));
            }
            for (key, v) in [("mmlu_redux", p.mmlu_redux), ("zebra_puzzle", p.zebra_puzzle)] {
                if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                    return Err(bad(format!("{}: {key} must be a fraction in [0, 1], got {v:?}", p.model)));
                }
            }
        }
        Ok(profiles)
    }

    /// The profiles as soft constraints of the IRT predictor: per benchmark (MMLU-Redux over the knowledge
    /// domains, ZebraLogic puzzles over the logic domains), each prompt's membership of the benchmark's
    /// domains (`membership` is `[prompts, domains]`) and each model's accuracy. Benchmarks no model has, or
    /// whose domains no prompt belongs to, are left out.
    pub fn aggregates(&self, models: &[String], domains: &[String], membership: &Array2<f32>) -> Vec<Aggregate> {
        let benchmarks: [Benchmark; 2] = [
            ("mmlu_redux", &KNOWLEDGE_DOMAINS, |p| p.mmlu_redux),
            ("zebra_puzzle", &LOGIC_DOMAINS, |p| p.zebra_puzzle),
        ];
        benchmarks
            .into_iter()
            .filter_map(|(name, covers, value)| {
                let columns: Vec<usize> =
                    (0..domains.len()).filter(|&d| covers.contains(&domains[d].as_str())).collect();
                let anchor: Vec<f32> = (0..membership.nrows())
                    .map(|r| columns.iter().map(|&d| membership[[r, d]]).sum::<f32>().clamp(0.0, 1.0))
                    .collect();
                let scores: Vec<(usize, f32)> = models
                    .iter()
                    .enumerate()
                    .filter_map(|(m, model)| {
                        let p = self.profiles.iter().find(|p| &p.model == model)?;
                        Some((m, value(p)? as f32))
                    })
                    .collect();
                (anchor.iter().sum::<f32>() > 0.0 && !scores.is_empty()).then(|| Aggregate {
                    name: name.to_string(),
                    anchor,
                    scores,
                })
            })
            .collect()
    }

    fn aggregate(&self, model: &str, domain: &str) -> Option<f64> {
        let p = self.profiles.iter().find(|p| p.model == model)?;
        if KNOWLEDGE_DOMAINS.contains(&domain) {
            p.mmlu_redux
        } else if LOGIC_DOMAINS.contains(&domain) {
            p.zebra_puzzle
        } else {
            None
        }
    }
}

/// Each model's baseline P(success) per domain (`[models, domains]`; one column without domains): its
/// profile's aggregate mapped onto the domain where it has one; else its overall mean in `targets`, moved
/// by the domain's mean shift among the models that have an aggregate there.
/// `membership` (`[prompts, domains]`) weighs each prompt's rows into the domains, and `difficulty` (the
/// prompts' difficulty) adjusts each model's evidence for the prompts it saw (see
/// [`Targets::domain_means`]).
pub fn baselines(
    profiles: Option<&Profiles>,
    models: &[String],
    domains: &[String],
    targets: &Targets,
    membership: &Array2<f32>,
    difficulty: &[f32],
) -> Array2<f32> {
    // Without an aggregate: the model's overall mean, adjusted for the difficulty of the prompts it saw.
    let (overall, _) = targets.domain_means(&Array2::ones((targets.value.nrows(), 1)), difficulty);
    let columns = domains.len().max(1);
    let mut out = Array2::from_shape_fn((models.len(), columns), |(m, _)| overall[[m, 0]]);
    let Some(profiles) = profiles else {
        return out;
    };
    let (domain_means, evidence) = targets.domain_means(membership, difficulty);
    for (d, domain) in domains.iter().enumerate() {
        let both: Vec<(f64, f64)> = (0..models.len())
            .filter(|&m| evidence[[m, d]] >= MIN_EVIDENCE)
            .filter_map(|m| Some((profiles.aggregate(&models[m], domain)?, f64::from(domain_means[[m, d]]))))
            .collect();
        let (a, b) = line(&both);
        let mut shifts = Vec::new();
        for (m, name) in models.iter().enumerate() {
            if let Some(agg) = profiles.aggregate(name, domain) {
                out[[m, d]] = (a + b * agg).clamp(0.02, 0.98) as f32;
                shifts.push(out[[m, d]] - overall[[m, 0]]);
            }
        }
        // A model without an aggregate here: its overall mean, moved by how far this domain sits from the
        // other models' overall means (so that it is not ranked above them in a hard domain by default).
        if !shifts.is_empty() {
            let shift = shifts.iter().sum::<f32>() / shifts.len() as f32;
            for (m, name) in models.iter().enumerate() {
                if profiles.aggregate(name, domain).is_none() {
                    out[[m, d]] = (overall[[m, 0]] + shift).clamp(0.02, 0.98);
                }
            }
        }
    }
    out
}

/// Least-squares y = a + b·x over the points; with fewer than three points (or no spread in x), slope 1
/// and the mean offset; with none, the identity. A slope outside [0.5, 3] is not believed (a flat or
/// inverted line from a few models would erase the aggregates' ordering): the mean offset again.
fn line(points: &[(f64, f64)]) -> (f64, f64) {
    if points.is_empty() {
        return (0.0, 1.0);
    }
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 1e-9 { sxy / sxx } else { 0.0 };
    if points.len() >= 3 && (0.5..=3.0).contains(&b) {
        (my - b * mx, b)
    } else {
        (my - mx, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Model `m{m}` with an MMLU-Redux accuracy only.
    fn profile(m: usize, acc: f64) -> Profile {
        Profile {
            model: format!("m{m}"),
            source_model: None,
            mmlu_redux: Some(acc),
            zebra_puzzle: None,
            zebra_easy: None,
            zebra_hard: None,
            zebra_cell: None,
            source: None,
        }
    }

    #[test]
    fn aggregates_are_mapped_onto_the_domain_by_the_models_with_evidence() {
        // Four models; models 0-2 have knowledge evidence at 0.3, 0.5, 0.7 with MMLU 0.6, 0.7, 0.8;
        // model 3 has no knowledge evidence and MMLU 0.9: the line predicts 0.9.
        let models: Vec<String> = (0..4).map(|m| format!("m{m}")).collect();
        let domains = vec!["knowledge".to_string(), "math".to_string()];
        let n = 60;
        let value = Array2::from_shape_fn((n, 4), |(r, m)| match m {
            0 => f32::from(u8::from(r % 10 < 3)),
            1 => f32::from(u8::from(r % 10 < 5)),
            2 => f32::from(u8::from(r % 10 < 7)),
            _ => 0.0,
        });
        // Rows 0-39 are knowledge, 40-59 math; model 3 only answered math.
        let weight = Array2::from_shape_fn((n, 4), |(r, m)| f32::from(u8::from(m < 3 || r >= 40)));
        let membership = Array2::from_shape_fn((n, 2), |(r, d)| f32::from(u8::from((r >= 40) == (d == 1))));
        let targets = Targets { value, weight, pairs: Vec::new() };
        let profiles =
            Profiles { profiles: [0.6, 0.7, 0.8, 0.9].iter().enumerate().map(|(m, &acc)| profile(m, acc)).collect() };
        let b = baselines(Some(&profiles), &models, &domains, &targets, &membership, &vec![0.0; targets.value.nrows()]);
        assert!((b[[3, 0]] - 0.9).abs() < 0.02, "{b:?}");
        assert!((b[[0, 0]] - 0.3).abs() < 0.02, "{b:?}");
        assert!((b[[2, 0]] - 0.7).abs() < 0.02, "{b:?}");
        // No aggregate for math: the model's overall mean.
        assert!((b[[3, 1]] - targets.model_means()[3]).abs() < 1e-5);
        let (a, slope) = line(&[(0.5, 0.4)]);
        assert!((a + 0.1).abs() < 1e-12 && slope == 1.0);
    }

    #[test]
    fn a_model_without_a_profile_moves_with_the_domain() {
        // Math only; m0 and m1 have MMLU 0.5 and 0.6 against math means 0.8 and 0.9 (knowledge sits 0.3
        // below math for them); m2 has no profile and a math mean of 0.7: its knowledge baseline is 0.4.
        let models: Vec<String> = (0..3).map(|m| format!("m{m}")).collect();
        let domains = vec!["knowledge".to_string(), "math".to_string()];
        let n = 10;
        let value = Array2::from_shape_fn((n, 3), |(r, m)| f32::from(u8::from(r < [8, 9, 7][m])));
        let targets = Targets { value, weight: Array2::ones((n, 3)), pairs: Vec::new() };
        let membership = Array2::from_shape_fn((n, 2), |(_, d)| f32::from(u8::from(d == 1)));
        let profiles = Profiles { profiles: vec![profile(0, 0.5), profile(1, 0.6)] };
        let b = baselines(Some(&profiles), &models, &domains, &targets, &membership, &[0.0; 10]);
        assert!((b[[0, 0]] - 0.5).abs() < 1e-5 && (b[[1, 0]] - 0.6).abs() < 1e-5, "{b:?}");
        assert!((b[[2, 0]] - 0.4).abs() < 1e-5, "{b:?}");
        assert!((b[[2, 1]] - 0.7).abs() < 1e-5, "{b:?}");
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[[profiles]]\nmodel = \"a\"\nmmlu_redux = 88.2\n").unwrap();
        let err = Profiles::load(&path).unwrap_err().to_string();
        assert!(err.contains("fraction") && err.contains("p.toml"), "{err}");
        std::fs::write(&path, "[[profiles]]\nmodel = \"a\"\n[[profiles]]\nmodel = \"a\"\n").unwrap();
        assert!(Profiles::load(&path).unwrap_err().to_string().contains("twice"));
        std::fs::write(&path, "[[profiles]]\nmodel = \"a\"\nmmlu = 0.5\n").unwrap();
        assert!(Profiles::load(&path).unwrap_err().to_string().contains("unknown field"));
    }
}
