//! Adding a model to a trained router without retraining the others (`switchyard profile add`): the new
//! model's part of every per-model structure (a predictor output in the router's shared representation, its
//! calibration, domain priors and evidence, output length, cost) is appended, and the manifest records where
//! it came from (an eval set, published priors, or both). The other models' estimates do not change, bit for
//! bit. The fitting itself belongs to training (`switchyard_train::fit_profile`); this module only checks the
//! shapes and splices.

use crate::cost::ModelCost;
use crate::predictor::{Dense, KnnMemory, Platt, Predictor};
use crate::router::manifest::{AddedProfile, ProfileBasis};
use crate::router::Router;

use super::RosterError;

/// The new model's output in one predictor (an ensemble has one per member, in member order).
#[derive(Debug, Clone, PartialEq)]
pub enum ModelHead {
    /// A row of the predictor's last layer: logistic weights over the features, the MLP's output weights over
    /// its hidden units, or the factorised model vector over the latent space.
    Row {
        /// One weight per input of the last layer.
        weight: Vec<f32>,
        /// The bias.
        bias: f32,
    },
    /// A kNN memory's column: the model's estimated score on each stored prompt, and its overall mean.
    Knn {
        /// One score in [0, 1] per stored prompt.
        scores: Vec<f32>,
        /// The model's mean score (the Beta prior's mean).
        prior: f32,
    },
    /// A row of a factorised predictor's model layer (or an MLP's output layer) plus a direction of its own
    /// over the features: P = σ(weight·rep + bias + direction·f + the layer's offset). The direction is spliced
    /// in as one more latent unit (MF) or as a pair of hidden units ReLU(d·f) − ReLU(−d·f) (MLP), on which
    /// every existing model weighs 0, so their estimates do not change. This lets eval rows say what the
    /// shared representation, learned without the model, cannot.
    Widened {
        /// One weight per input of the last layer as trained.
        weight: Vec<f32>,
        /// The bias.
        bias: f32,
        /// One weight per feature.
        direction: Vec<f32>,
    },
    /// One head per ensemble member.
    Ensemble(Vec<ModelHead>),
}

/// Everything a router needs to route to one more model.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModel {
    /// The model's name and prices.
    pub cost: ModelCost,
    /// Its predictor output.
    pub head: ModelHead,
    /// Its Platt scaling.
    pub calibration: Platt,
    /// Its prior P(success) per familiarity column (the router's domains, or one column).
    pub priors: Vec<f32>,
    /// Its logged observations per familiarity column (0 everywhere for a prior-only model).
    pub evidence: Vec<f32>,
    /// Its row of the output-length layer (weights over the features, bias), when the router predicts lengths.
    pub length: Option<(Vec<f32>, f32)>,
    /// The manifest's record.
    pub profile: AddedProfile,
}

impl Router {
    /// Appends `model` to every per-model part of the router. A model of the same name is an error unless
    /// `replace`, which removes it first. Every shape is checked before anything changes; on error the router
    /// is left as it was.
    pub fn add_model(&mut self, model: NewModel, replace: bool) -> Result<(), RosterError> {
        let name = model.cost.model.clone();
        let mut next = self.clone();
        if next.manifest.models.iter().any(|c| c.model == name) {
            if !replace {
                return Err(RosterError::Exists(name));
            }
            next.remove_model(&name)?;
        }
        next.manifest.profiles.retain(|p| p.model != name);
        let count = next.manifest.models.len();
        append_head(&mut next.predictor, &model.head, count)?;
        // A widened head grows the MF latent space or the MLP's hidden layer, which the manifest records.
        next.manifest.hidden = find_width(&next.predictor, |p| match p {
            Predictor::Mlp { hidden, .. } => Some(hidden.outputs),
            _ => None,
        });
        next.manifest.latent = find_width(&next.predictor, |p| match p {
            Predictor::Mf(mf) => Some(mf.latent()),
            _ => None,
        });
        if let Some(f) = &mut next.familiarity {
            let width = f.domains;
            if model.priors.len() != width || model.evidence.len() != width {
                return Err(shape(format!(
                    "priors and evidence need {width} values (one per domain), got {} and {}",
                    model.priors.len(),
                    model.evidence.len()
                )));
            }
            if let Some(bad) = model.priors.iter().find(|p| !(0.0..=1.0).contains(*p)) {
                return Err(shape(format!("a prior P(success) of {bad} is outside [0, 1]")));
            }
            f.priors.extend_from_slice(&model.priors);
            if !f.evidence.is_empty() {
                f.evidence.extend_from_slice(&model.evidence);
            }
            if f.length_slopes.len() == count {
                f.length_slopes.push(0.0);
            }
        } else if model.profile.basis != ProfileBasis::Eval {
            return Err(shape(
                "this router keeps no per-domain priors (it has no familiarity block), so a model cannot be added \
                 from priors; add it from eval rows, or retrain the router with this version"
                    .into(),
            ));
        }
        match (&mut next.lengths, &model.length) {
            (Some(layer), Some((weight, bias))) => append_row(layer, weight, *bias)?,
            (Some(_), None) => {
                return Err(shape("the router predicts output lengths: the new model needs a row".into()))
            }
            (None, _) => {}
        }
        next.calibration.push(model.calibration);
        next.manifest.models.push(model.cost);
        next.manifest.profiles.push(model.profile);
        *self = next;
        Ok(())
    }
}

/// The first width `f` reads in `predictor` or its members (0 when none has it), as training records it.
pub(super) fn find_width(predictor: &Predictor, f: fn(&Predictor) -> Option<usize>) -> usize {
    match predictor {
        Predictor::Ensemble(members) => members.iter().find_map(f).unwrap_or(0),
        single => f(single).unwrap_or(0),
    }
}

fn shape(detail: String) -> RosterError {
    RosterError::Shape(detail)
}

/// Appends the new model's output (model `count`, the last) to a predictor.
fn append_head(predictor: &mut Predictor, head: &ModelHead, count: usize) -> Result<(), RosterError> {
    match (predictor, head) {
        (Predictor::Logistic(layer), ModelHead::Row { weight, bias }) => append_row(layer, weight, *bias),
        (Predictor::Mlp { output, .. }, ModelHead::Row { weight, bias }) => append_row(output, weight, *bias),
        (Predictor::Mf(mf), ModelHead::Row { weight, bias }) => append_row(&mut mf.models, weight, *bias),
        (Predictor::Irt(irt), ModelHead::Row { weight, bias }) => append_row(&mut irt.models, weight, *bias),
        (Predictor::Mf(mf), ModelHead::Widened { weight, bias, direction }) => {
            check_row(&mf.models, weight, *bias)?;
            check_direction(direction)?;
            let mut project = mf.project.clone();
            append_row(&mut project, direction, 0.0)?;
            let mut models = widen(&mf.models, 1)?;
            append_row(&mut models, &[weight.as_slice(), &[1.0]].concat(), *bias)?;
            (mf.project, mf.models) = (project, models);
            Ok(())
        }
        (Predictor::Mlp { hidden, output }, ModelHead::Widened { weight, bias, direction }) => {
            check_row(output, weight, *bias)?;
            check_direction(direction)?;
            let mut wider = hidden.clone();
            append_row(&mut wider, direction, 0.0)?;
            append_row(&mut wider, &direction.iter().map(|d| -d).collect::<Vec<_>>(), 0.0)?;
            let mut out = widen(output, 2)?;
            append_row(&mut out, &[weight.as_slice(), &[1.0, -1.0]].concat(), *bias)?;
            (*hidden, *output) = (wider, out);
            Ok(())
        }
        (Predictor::Knn(memory), ModelHead::Knn { scores, prior }) => append_column(memory, scores, *prior, count),
        (Predictor::Ensemble(members), ModelHead::Ensemble(heads)) if members.len() == heads.len() => {
            // Check every member before changing any.
            let mut updated = members.clone();
            for (member, head) in updated.iter_mut().zip(heads) {
                append_head(member, head, count)?;
            }
            *members = updated;
            Ok(())
        }
        (predictor, _) => {
            Err(shape(format!("the new model's predictor output does not fit a {} predictor", predictor.kind())))
        }
    }
}

fn check_row(layer: &Dense, weight: &[f32], bias: f32) -> Result<(), RosterError> {
    if weight.len() != layer.inputs {
        return Err(shape(format!("a layer row needs {} weights, got {}", layer.inputs, weight.len())));
    }
    if !bias.is_finite() || weight.iter().any(|w| !w.is_finite()) {
        return Err(shape("a layer row has a weight that is not a finite number".into()));
    }
    Ok(())
}

/// Most weight a widened head's direction may put on one feature: far beyond any fitted one, and small enough
/// that the unit it becomes stays finite (an infinite unit times an existing model's 0 weight would be NaN).
const MAX_DIRECTION_WEIGHT: f32 = 1e4;

fn check_direction(direction: &[f32]) -> Result<(), RosterError> {
    match direction.iter().find(|d| !d.is_finite() || d.abs() > MAX_DIRECTION_WEIGHT) {
        Some(d) => {
            Err(shape(format!("a direction weight of {d} is not a finite number within ±{MAX_DIRECTION_WEIGHT}")))
        }
        None => Ok(()),
    }
}

/// `layer` with `extra` more inputs, on which every existing output weighs 0.
fn widen(layer: &Dense, extra: usize) -> Result<Dense, RosterError> {
    let inputs = layer.inputs + extra;
    let mut weight = Vec::with_capacity(layer.outputs * inputs);
    for row in layer.weight.chunks_exact(layer.inputs.max(1)).take(layer.outputs) {
        weight.extend_from_slice(row);
        weight.extend(std::iter::repeat_n(0.0, extra));
    }
    if layer.inputs == 0 {
        weight = vec![0.0; layer.outputs * inputs];
    }
    Dense::new(layer.outputs, inputs, weight, layer.bias.clone())
        .ok_or_else(|| shape(format!("a layer of {} outputs has {} weights", layer.outputs, layer.weight.len())))
}

fn append_row(layer: &mut Dense, weight: &[f32], bias: f32) -> Result<(), RosterError> {
    check_row(layer, weight, bias)?;
    layer.weight.extend_from_slice(weight);
    layer.bias.push(bias);
    layer.outputs += 1;
    Ok(())
}

fn append_column(memory: &mut KnnMemory, scores: &[f32], prior: f32, count: usize) -> Result<(), RosterError> {
    let prompts = memory.len();
    if scores.len() != prompts || memory.scores.len() != prompts * count {
        return Err(shape(format!("a kNN column needs {prompts} scores, got {}", scores.len())));
    }
    if !(0.0..=1.0).contains(&prior) || scores.iter().any(|s| !(0.0..=1.0).contains(s)) {
        return Err(shape("kNN scores must lie in [0, 1]".into()));
    }
    let mut table = Vec::with_capacity(prompts * (count + 1));
    for (row, &s) in memory.scores.chunks_exact(count.max(1)).zip(scores) {
        table.extend_from_slice(row);
        table.push(s);
    }
    memory.scores = table;
    memory.prior.push(prior);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::CostSource;
    use crate::router::test_support::{predictors, tiny};

    /// A head of the right shape for `predictor`, with distinct values.
    fn head_for(predictor: &Predictor) -> ModelHead {
        let row = |layer: &Dense| ModelHead::Row {
            weight: (0..layer.inputs).map(|i| 0.3 - i as f32 * 0.1).collect(),
            bias: 0.25,
        };
        match predictor {
            Predictor::Logistic(layer) => row(layer),
            Predictor::Mlp { output, .. } => row(output),
            Predictor::Mf(mf) => row(&mf.models),
            Predictor::Irt(irt) => row(&irt.models),
            Predictor::Knn(memory) => ModelHead::Knn { scores: vec![0.9; memory.len()], prior: 0.7 },
            Predictor::Ensemble(members) => ModelHead::Ensemble(members.iter().map(head_for).collect()),
        }
    }

    fn new_model(router: &Router, name: &str) -> NewModel {
        NewModel {
            cost: ModelCost {
                model: name.into(),
                input_usd_per_mtok: 0.05,
                output_usd_per_mtok: 0.1,
                mean_output_tokens: 80.0,
                mean_cost_usd: None,
                source: CostSource::Prices,
            },
            head: head_for(&router.predictor),
            calibration: Platt::default(),
            priors: vec![0.9, 0.2],
            evidence: vec![40.0, 3.0],
            length: router.lengths.as_ref().map(|l| (vec![0.0; l.inputs], 4.0)),
            profile: AddedProfile {
                model: name.into(),
                basis: ProfileBasis::Eval,
                rows: 60,
                prompts: 60,
                files: Vec::new(),
                priors: Vec::new(),
                cv_log_loss: None,
                constant_log_loss: None,
                widened: Vec::new(),
                added_unix: 0,
            },
        }
    }

    #[test]
    fn an_added_model_leaves_the_others_bit_for_bit_and_survives_a_save() {
        for (predictor, hidden) in predictors() {
            let kind = predictor.kind();
            let before = tiny(predictor, hidden);
            let mut router = before.clone();
            router.add_model(new_model(&before, "newcomer"), false).unwrap();
            assert_eq!(router.manifest.models.len(), 3);
            let dir = tempfile::tempdir().unwrap();
            router.save(dir.path()).unwrap();
            let loaded = Router::load(dir.path()).unwrap();
            assert_eq!(loaded.added_profile("newcomer"), router.added_profile("newcomer"));
            for x in [[1f32, 0.], [0., 1.], [0.6, 0.8]] {
                let (old, new) = (before.predict(&x, 100.0), loaded.predict(&x, 100.0));
                for (a, b) in old.models.iter().zip(&new.models) {
                    assert_eq!((&a.model, a.p_success.to_bits()), (&b.model, b.p_success.to_bits()), "{kind}");
                }
                let mine = &new.models[2];
                assert!(mine.model == "newcomer" && (0.0..=1.0).contains(&mine.p_success), "{kind}: {mine:?}");
                assert_eq!(router.predict(&x, 100.0), new, "{kind}: the saved router predicts the same");
            }
            // Removing it again gives back the router's predictions exactly.
            router.remove_model("newcomer").unwrap();
            assert!(router.manifest.profiles.is_empty());
            assert_eq!(router.predict(&[0.6, 0.8], 10.0), before.predict(&[0.6, 0.8], 10.0), "{kind}");
        }
    }

    /// The representation an MF or MLP predictor's last layer reads, and the MF's offset (−difficulty).
    fn representation(predictor: &Predictor, f: &[f32]) -> (Vec<f32>, f32) {
        match predictor {
            Predictor::Mf(mf) => (mf.project.forward(f), -mf.difficulty.forward(f)[0]),
            Predictor::Mlp { hidden, .. } => (hidden.forward(f).into_iter().map(|v| v.max(0.0)).collect(), 0.0),
            _ => (Vec::new(), 0.0),
        }
    }

    #[test]
    fn a_widened_model_adds_its_own_direction_and_leaves_the_others_bit_for_bit() {
        for (predictor, hidden) in predictors() {
            let inputs = match &predictor {
                Predictor::Mf(mf) => mf.models.inputs,
                Predictor::Mlp { output, .. } => output.inputs,
                _ => continue,
            };
            let kind = predictor.kind();
            let before = tiny(predictor, hidden);
            let weight: Vec<f32> = (0..inputs).map(|i| 0.2 - i as f32 * 0.05).collect();
            let width = before.heads.features(&[1.0, 0.0]).len();
            let direction: Vec<f32> = (0..width).map(|i| 1.5 - i as f32 * 0.7).collect();
            let mut model = new_model(&before, "newcomer");
            model.head = ModelHead::Widened { weight: weight.clone(), bias: 0.1, direction: direction.clone() };
            let mut router = before.clone();
            router.add_model(model, false).unwrap();
            let dir = tempfile::tempdir().unwrap();
            router.save(dir.path()).unwrap();
            let loaded = Router::load(dir.path()).unwrap();
            assert_eq!(loaded.predictor, router.predictor, "{kind}");
            assert_eq!(loaded.predict(&[0.6, 0.8], 10.0), router.predict(&[0.6, 0.8], 10.0), "{kind}: after a save");
            for x in [[1f32, 0.], [0., 1.], [0.6, 0.8]] {
                let f = before.heads.features(&x);
                let (old, new) = (before.predictor.predict(&f, &x), loaded.predictor.predict(&f, &x));
                assert_eq!(
                    old.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
                    new[..2].iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
                    "{kind}"
                );
                let (rep, off) = representation(&before.predictor, &f);
                let want = crate::sigmoid(crate::dot(&weight, &rep) + 0.1 + crate::dot(&direction, &f) + off);
                assert!((new[2] - want).abs() < 1e-5, "{kind}: {} against {want}", new[2]);
            }
            // Removing it drops the units it brought: the router is as it was.
            router.remove_model("newcomer").unwrap();
            assert_eq!(router.predictor, before.predictor, "{kind}");
            assert_eq!(
                (router.manifest.latent, router.manifest.hidden),
                (before.manifest.latent, before.manifest.hidden)
            );
        }
    }

    #[test]
    fn a_direction_too_large_to_stay_finite_is_refused() {
        let (predictor, hidden) = predictors().remove(1);
        let Predictor::Mlp { output, .. } = &predictor else { panic!("the second test predictor is the MLP") };
        let inputs = output.inputs;
        let router = tiny(predictor, hidden);
        let mut target = router.clone();
        let mut bad = new_model(&router, "newcomer");
        let width = router.heads.features(&[1.0, 0.0]).len();
        bad.head = ModelHead::Widened { weight: vec![0.0; inputs], bias: 0.0, direction: vec![1e9; width] };
        assert!(matches!(target.add_model(bad, false), Err(RosterError::Shape(m)) if m.contains("direction")));
        assert_eq!(target, router);
    }

    #[test]
    fn a_model_that_does_not_fit_changes_nothing() {
        let (predictor, hidden) = predictors().remove(0);
        let router = tiny(predictor, hidden);
        let mut target = router.clone();
        let mut bad = new_model(&router, "newcomer");
        bad.head = ModelHead::Row { weight: vec![0.0; 2], bias: 0.0 };
        assert!(matches!(target.add_model(bad, false), Err(RosterError::Shape(_))));
        let mut bad = new_model(&router, "newcomer");
        bad.priors = vec![1.5, 0.2];
        assert!(matches!(target.add_model(bad, false), Err(RosterError::Shape(m)) if m.contains("outside [0, 1]")));
        let mut bad = new_model(&router, "newcomer");
        bad.head = ModelHead::Knn { scores: vec![0.5; 2], prior: 0.5 };
        assert!(matches!(target.add_model(bad, false), Err(RosterError::Shape(_))));

        assert_eq!(target, router);
        let taken = new_model(&router, "strong");
        assert_eq!(target.add_model(taken.clone(), false), Err(RosterError::Exists("strong".into())));
        assert_eq!(target, router);
        // With replace, the old "strong" goes and the new one is last.
        target.add_model(taken, true).unwrap();
        assert_eq!(target.manifest.models.iter().map(|m| m.model.as_str()).collect::<Vec<_>>(), ["cheap", "strong"]);
        assert_eq!(target.manifest.models[1].input_usd_per_mtok, 0.05);
    }
}
