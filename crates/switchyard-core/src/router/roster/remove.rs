//! Removing a model from every per-model part of a trained router (predictor outputs, calibration, priors and
//! evidence, output lengths, costs, the default policy's lists) without retraining the others: the other
//! models' predictions do not change.

use crate::predictor::{Dense, KnnMemory, Predictor};
use crate::router::Router;

use super::RosterError;

impl Router {
    /// Removes `name` from every per-model part of the router; the other models' predictions are unchanged.
    pub fn remove_model(&mut self, name: &str) -> Result<(), RosterError> {
        let models = &self.manifest.models;
        let Some(m) = models.iter().position(|c| c.model == name) else {
            let known = models.iter().map(|c| c.model.as_str()).collect::<Vec<_>>().join(", ");
            return Err(RosterError::Unknown { name: name.to_string(), known });
        };
        if models.len() == 1 {
            return Err(RosterError::Last(name.to_string()));
        }
        // The default policy's lists without the model, checked before anything changes: some remaining model
        // must stay eligible.
        let policy = &self.manifest.default_policy;
        let allowed: Option<Vec<String>> =
            policy.allowed.as_ref().map(|a| a.iter().filter(|m| *m != name).cloned().collect());
        let denied: Vec<String> = policy.denied.iter().filter(|m| *m != name).cloned().collect();
        if allowed.as_ref().is_some_and(Vec::is_empty) {
            return Err(RosterError::OnlyAllowed(name.to_string()));
        }
        let eligible = models.iter().any(|c| {
            c.model != name && !denied.contains(&c.model) && allowed.as_ref().is_none_or(|a| a.contains(&c.model))
        });
        if !eligible {
            return Err(RosterError::NoneEligible(name.to_string()));
        }
        let count = models.len();
        self.manifest.default_policy.allowed = allowed;
        self.manifest.default_policy.denied = denied;
        self.manifest.models.remove(m);
        self.manifest.profiles.retain(|p| p.model != name);
        remove_from_predictor(&mut self.predictor, m, count);
        prune_unused(&mut self.predictor);
        self.manifest.hidden = super::add::find_width(&self.predictor, |p| match p {
            Predictor::Mlp { hidden, .. } => Some(hidden.outputs),
            _ => None,
        });
        self.manifest.latent = super::add::find_width(&self.predictor, |p| match p {
            Predictor::Mf(mf) => Some(mf.latent()),
            _ => None,
        });
        if m < self.calibration.len() {
            self.calibration.remove(m);
        }
        if let Some(f) = &mut self.familiarity {
            remove_row(&mut f.priors, m, f.domains);
            if !f.evidence.is_empty() {
                remove_row(&mut f.evidence, m, f.domains);
            }
            if m < f.length_slopes.len() {
                f.length_slopes.remove(m);
            }
        }
        if let Some(lengths) = &mut self.lengths {
            remove_output(lengths, m);
        }
        Ok(())
    }
}

/// Drops model `m` (of `count`) from a predictor's outputs.
fn remove_from_predictor(predictor: &mut Predictor, m: usize, count: usize) {
    match predictor {
        Predictor::Logistic(dense) => remove_output(dense, m),
        Predictor::Mlp { output, .. } => remove_output(output, m),
        Predictor::Mf(f) => remove_output(&mut f.models, m),
        Predictor::Irt(irt) => remove_output(&mut irt.models, m),
        Predictor::Knn(memory) => remove_from_memory(memory, m, count),
        Predictor::Ensemble(members) => {
            for member in members {
                remove_from_predictor(member, m, count);
            }
        }
    }
}

/// Drops the MF latent units and MLP hidden units on which no model weighs anything (those a widened model
/// brought, once it is removed): they add nothing to any estimate, so no estimate changes.
fn prune_unused(predictor: &mut Predictor) {
    match predictor {
        Predictor::Mf(f) if f.models.outputs > 0 => {
            let used = used_inputs(&f.models);
            if used.iter().any(|u| !u) {
                f.models = keep_inputs(&f.models, &used);
                f.project = keep_outputs(&f.project, &used);
            }
        }
        Predictor::Mlp { hidden, output } if output.outputs > 0 => {
            let used = used_inputs(output);
            if used.iter().any(|u| !u) {
                *output = keep_inputs(output, &used);
                *hidden = keep_outputs(hidden, &used);
            }
        }
        Predictor::Ensemble(members) => members.iter_mut().for_each(prune_unused),
        _ => {}
    }
}

/// For each input of `layer`, whether any output weighs it.
fn used_inputs(layer: &Dense) -> Vec<bool> {
    let mut used = vec![false; layer.inputs];
    for row in layer.weight.chunks_exact(layer.inputs.max(1)) {
        used.iter_mut().zip(row).for_each(|(u, w)| *u |= *w != 0.0);
    }
    used
}

/// `layer` with only the inputs marked in `keep`.
fn keep_inputs(layer: &Dense, keep: &[bool]) -> Dense {
    let inputs = keep.iter().filter(|k| **k).count();
    let weight = layer
        .weight
        .chunks_exact(layer.inputs.max(1))
        .flat_map(|row| row.iter().zip(keep).filter(|(_, k)| **k).map(|(w, _)| *w))
        .collect();
    Dense { outputs: layer.outputs, inputs, weight, bias: layer.bias.clone() }
}

/// `layer` with only the outputs marked in `keep`.
fn keep_outputs(layer: &Dense, keep: &[bool]) -> Dense {
    let rows = layer.weight.chunks_exact(layer.inputs.max(1)).zip(&layer.bias).zip(keep).filter(|(_, k)| **k);
    let (mut weight, mut bias) = (Vec::new(), Vec::new());
    for ((row, b), _) in rows {
        weight.extend_from_slice(row);
        bias.push(*b);
    }
    Dense { outputs: bias.len(), inputs: layer.inputs, weight, bias }
}

/// Drops output `m` of a layer (its weight row and bias).
fn remove_output(dense: &mut Dense, m: usize) {
    if m >= dense.outputs {
        return;
    }
    dense.weight.drain(m * dense.inputs..(m + 1) * dense.inputs);
    dense.bias.remove(m);
    dense.outputs -= 1;
}

/// Drops row `m` of a row-major matrix `width` wide.
fn remove_row(values: &mut Vec<f32>, m: usize, width: usize) {
    if (m + 1) * width <= values.len() {
        values.drain(m * width..(m + 1) * width);
    }
}

/// Drops model `m` (of `count`) from a kNN memory's score columns and priors.
fn remove_from_memory(memory: &mut KnnMemory, m: usize, count: usize) {
    if count > 0 && memory.scores.len().is_multiple_of(count) {
        memory.scores = memory
            .scores
            .chunks_exact(count)
            .flat_map(|row| row.iter().enumerate().filter(|(i, _)| *i != m).map(|(_, v)| *v))
            .collect();
    }
    if m < memory.prior.len() {
        memory.prior.remove(m);
    }
}
