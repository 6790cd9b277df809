//! Limited-memory BFGS with a backtracking (Armijo) line search: the full-batch optimiser of the linear and
//! factorised predictors and the complexity head, whose losses are smooth and (mostly) convex.

/// Settings of a minimisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lbfgs {
    /// Most iterations.
    pub max_iter: usize,
    /// Correction pairs kept.
    pub memory: usize,
    /// Stop when the loss improves by less than this (relative) over an iteration.
    pub tolerance: f64,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Self { max_iter: 200, memory: 10, tolerance: 1e-7 }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Lbfgs {
    /// Minimises `f` (returning the loss and its gradient) from `x`; returns the best point found.
    pub fn minimize<E>(
        &self,
        mut x: Vec<f64>,
        mut f: impl FnMut(&[f64]) -> Result<(f64, Vec<f64>), E>,
    ) -> Result<Vec<f64>, E> {
        let (mut loss, mut grad) = f(&x)?;
        let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = std::collections::VecDeque::new();
        for iter in 0..self.max_iter {
            // Two-loop recursion: direction = −H·grad.
            let mut q = grad.clone();
            let mut alphas = Vec::with_capacity(history.len());
            for (s, y, rho) in history.iter().rev() {
                let a = rho * dot(s, &q);
                q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
                alphas.push(a);
            }
            let gamma = history.back().map_or_else(
                || 1.0 / dot(&grad, &grad).sqrt().max(1e-12),
                |(s, y, _)| dot(s, y) / dot(y, y).max(1e-300),
            );
            q.iter_mut().for_each(|v| *v *= gamma);
            for ((s, y, rho), a) in history.iter().zip(alphas.into_iter().rev()) {
                let b = rho * dot(y, &q);
                q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
            }
            let mut direction: Vec<f64> = q.into_iter().map(|v| -v).collect();
            let mut slope = dot(&direction, &grad);
            if slope >= 0.0 {
                // Not a descent direction (curvature went wrong): restart from steepest descent.
                history.clear();
                let scale = 1.0 / dot(&grad, &grad).sqrt().max(1e-12);
                direction = grad.iter().map(|g| -g * scale).collect();
                slope = dot(&direction, &grad);
            }
            // Backtracking line search on the Armijo condition.
            let mut step = 1.0;
            let mut accepted = None;
            for _ in 0..30 {
                let candidate: Vec<f64> = x.iter().zip(&direction).map(|(xi, di)| xi + step * di).collect();
                let (l, g) = f(&candidate)?;
                if l.is_finite() && l <= loss + 1e-4 * step * slope {
                    accepted = Some((candidate, l, g));
                    break;
                }
                step *= 0.5;
            }
            let Some((next, next_loss, next_grad)) = accepted else {
                break;
            };
            let s: Vec<f64> = next.iter().zip(&x).map(|(a, b)| a - b).collect();
            let y: Vec<f64> = next_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
            let sy = dot(&s, &y);
            if sy > 1e-12 {
                if history.len() == self.memory {
                    history.pop_front();
                }
                history.push_back((s, y, 1.0 / sy));
            }
            let improvement = loss - next_loss;
            (x, loss, grad) = (next, next_loss, next_grad);
            if iter > 2 && improvement <= self.tolerance * loss.abs().max(1e-12) {
                break;
            }
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_an_ill_conditioned_quadratic_and_rosenbrock() {
        let quad = |x: &[f64]| -> Result<(f64, Vec<f64>), ()> {
            let l = 0.5 * (x[0] - 3.0).powi(2) + 50.0 * (x[1] + 1.0).powi(2);
            Ok((l, vec![x[0] - 3.0, 100.0 * (x[1] + 1.0)]))
        };
        let x = Lbfgs::default().minimize(vec![0.0, 0.0], quad).unwrap();
        assert!((x[0] - 3.0).abs() < 1e-4 && (x[1] + 1.0).abs() < 1e-4, "{x:?}");
        let rosen = |x: &[f64]| -> Result<(f64, Vec<f64>), ()> {
            let (a, b) = (1.0 - x[0], x[1] - x[0] * x[0]);
            Ok((a * a + 100.0 * b * b, vec![-2.0 * a - 400.0 * x[0] * b, 200.0 * b]))
        };
        let options = Lbfgs { max_iter: 500, tolerance: 0.0, ..Lbfgs::default() };
        let x = options.minimize(vec![-1.2, 1.0], rosen).unwrap();
        assert!((x[0] - 1.0).abs() < 1e-3 && (x[1] - 1.0).abs() < 1e-3, "{x:?}");
    }
}
