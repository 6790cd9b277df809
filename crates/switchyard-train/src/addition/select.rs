//! Choosing which prompts to evaluate a new model on: a few hundred that represent the traffic, so that
//! its eval rows say something about every region the router routes (UniRoute's "representative prompts").

use switchyard_core::dot;

/// Lloyd iterations of the k-means behind [`representative`].
const ITERATIONS: usize = 10;

/// `n` rows of `embeddings` (unit-length, one per prompt) that represent them: k-means with k = `n`
/// (seeded k-means++ start, [`ITERATIONS`] rounds by cosine), then per cluster the prompt nearest its centre,
/// largest clusters first. Every row when there are at most `n`. Deterministic for a seed.
pub fn representative(x: &[Vec<f32>], n: usize, seed: u64) -> Vec<usize> {
    let rows = x.len();
    if rows <= n {
        return (0..rows).collect();
    }
    let mut rng = seed.max(1);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    // k-means++: each next centre drawn with probability ∝ its distance (1 − cosine) to the nearest chosen.
    let mut centres: Vec<Vec<f32>> = vec![x[(next() * rows as f64) as usize % rows].clone()];
    let mut nearest: Vec<f32> = x.iter().map(|v| 1.0 - dot(v, &centres[0])).collect();
    while centres.len() < n {
        let total: f64 = nearest.iter().map(|&d| f64::from(d.max(0.0))).sum();
        let mut target = next() * total;
        let mut pick = rows - 1;
        for (i, &d) in nearest.iter().enumerate() {
            target -= f64::from(d.max(0.0));
            if target <= 0.0 {
                pick = i;
                break;
            }
        }
        centres.push(x[pick].clone());
        let c = centres.last().cloned().unwrap_or_default();
        nearest.iter_mut().zip(x).for_each(|(d, v)| *d = d.min(1.0 - dot(v, &c)));
    }
    let mut assignment = vec![0usize; rows];
    for _ in 0..ITERATIONS {
        for (a, v) in assignment.iter_mut().zip(x) {
            *a = argmax(centres.iter().map(|c| dot(v, c)));
        }
        let dim = x[0].len();
        let mut sums = vec![vec![0f32; dim]; n];
        for (a, v) in assignment.iter().zip(x) {
            sums[*a].iter_mut().zip(v).for_each(|(s, x)| *s += x);
        }
        for (c, s) in centres.iter_mut().zip(sums) {
            let norm = s.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                *c = s.into_iter().map(|v| v / norm).collect();
            }
        }
    }
    // Per cluster, its member nearest the centre; largest clusters first; a cluster left empty gives none.
    let mut sizes = vec![0usize; n];
    for &a in &assignment {
        sizes[a] += 1;
    }
    let mut order: Vec<usize> = (0..n).filter(|&c| sizes[c] > 0).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = order
        .into_iter()
        .filter_map(|c| {
            let members = (0..rows).filter(|&i| assignment[i] == c);
            members.max_by(|&i, &j| dot(&x[i], &centres[c]).total_cmp(&dot(&x[j], &centres[c])))
        })
        .collect();
    // Top up (empty clusters) with the prompts farthest from everything chosen.
    while chosen.len() < n {
        let far = (0..rows).filter(|i| !chosen.contains(i)).min_by(|&i, &j| {
            let near = |k: usize| chosen.iter().map(|&c| dot(&x[k], &x[c])).fold(f32::NEG_INFINITY, f32::max);
            near(i).total_cmp(&near(j))
        });
        match far {
            Some(i) => chosen.push(i),
            None => break,
        }
    }
    chosen
}

fn argmax(values: impl Iterator<Item = f32>) -> usize {
    values.enumerate().fold((0, f32::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best }).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn representatives_cover_every_cluster() {
        // Three tight groups of very different sizes on the unit circle: 60, 30 and 5 prompts.
        let angles: Vec<f32> = (0..60)
            .map(|i| 0.0 + i as f32 * 0.001)
            .chain((0..30).map(|i| 2.0 + i as f32 * 0.001))
            .chain((0..5).map(|i| 4.0 + i as f32 * 0.001))
            .collect();
        let x =
            Array2::from_shape_fn((angles.len(), 2), |(r, c)| if c == 0 { angles[r].cos() } else { angles[r].sin() });
        let x: Vec<Vec<f32>> = x.rows().into_iter().map(|r| r.to_vec()).collect();
        let chosen = representative(&x, 3, 7);
        let mut groups: Vec<usize> = chosen
            .iter()
            .map(|&i| {
                if i < 60 {
                    0
                } else if i < 90 {
                    1
                } else {
                    2
                }
            })
            .collect();
        groups.sort_unstable();
        assert_eq!(groups, vec![0, 1, 2], "{chosen:?}");
        assert_eq!(representative(&x, 3, 7), chosen, "deterministic");
        assert_eq!(representative(&x, 500, 7).len(), 95);
    }
}
