//! Choosing which prompts to evaluate a new model on: a few hundred that represent the traffic, so that
//! its eval rows say something about every region the router routes (UniRoute's "representative prompts").

use switchyard_core::dot;

/// Lloyd iterations of the k-means behind [`representative`].
const ITERATIONS: usize = 10;

/// `n` rows of `x` (unit-length embeddings, one per prompt) that represent the traffic: the picks follow the
/// rows' mix over `strata`, a group per row (the router's most likely domain), shared among the groups in
/// proportion to their sizes (largest remainders; every group gets one when `n` allows), and within a group
/// cover it ([`diverse`]). Every row when there are at most `n`. Deterministic for a seed.
pub fn representative(x: &[Vec<f32>], strata: &[usize], n: usize, seed: u64) -> Vec<usize> {
    let rows = x.len();
    if rows <= n {
        return (0..rows).collect();
    }
    let groups = (strata.iter().copied().max().map_or(0, |m| m + 1)).max(1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups];
    for i in 0..rows {
        members[strata.get(i).copied().unwrap_or(0)].push(i);
    }
    let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
    let shares = apportion(&sizes, n, true);
    let mut chosen = Vec::with_capacity(n);
    for (g, picks) in shares.into_iter().enumerate().filter(|(_, p)| *p > 0) {
        let points: Vec<Vec<f32>> = members[g].iter().map(|&i| x[i].clone()).collect();
        let within = diverse(&points, picks, seed.wrapping_add(g as u64));
        chosen.extend(within.into_iter().map(|i| members[g][i]));
    }
    chosen
}

/// `picks` rows of `x` that cover it: k-means with k = `picks`, then per cluster the prompt nearest its
/// centre, largest clusters first (topped up, for clusters left empty, with the prompts farthest from
/// everything chosen). Within one domain, coverage is what an eval set needs: its rows then say something
/// about every region of the domain, where proportional picks crowd into its densest part.
fn diverse(x: &[Vec<f32>], picks: usize, seed: u64) -> Vec<usize> {
    let rows = x.len();
    if rows <= picks {
        return (0..rows).collect();
    }
    let (centres, assignment) = kmeans(x, picks, seed);
    let mut sizes = vec![0usize; centres.len()];
    for &a in &assignment {
        sizes[a] += 1;
    }
    let mut order: Vec<usize> = (0..centres.len()).filter(|&c| sizes[c] > 0).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = order
        .into_iter()
        .filter_map(|c| {
            let members = (0..rows).filter(|&i| assignment[i] == c);
            members.max_by(|&i, &j| dot(&x[i], &centres[c]).total_cmp(&dot(&x[j], &centres[c])))
        })
        .collect();
    while chosen.len() < picks {
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

/// `n` shared among groups of `sizes` in proportion (largest remainders), at most a group's size each; with
/// `each`, when `n` is at least the number of non-empty groups, each gets one.
pub(crate) fn apportion(sizes: &[usize], n: usize, each: bool) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    let n = n.min(total);
    if total == 0 || n == 0 {
        return vec![0; sizes.len()];
    }
    let exact: Vec<f64> = sizes.iter().map(|&s| s as f64 * n as f64 / total as f64).collect();
    let mut shares: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let non_empty = sizes.iter().filter(|&&s| s > 0).count();
    if each && n >= non_empty {
        for (share, &size) in shares.iter_mut().zip(sizes) {
            if size > 0 && *share == 0 {
                *share = 1;
            }
        }
    }
    // Too many (the ones just given): take back from the groups whose exact share they exceed most.
    while shares.iter().sum::<usize>() > n {
        let over = (0..sizes.len())
            .filter(|&g| shares[g] > 1)
            .max_by(|&a, &b| (shares[a] as f64 - exact[a]).total_cmp(&(shares[b] as f64 - exact[b])).then(b.cmp(&a)));
        match over {
            Some(g) => shares[g] -= 1,
            None => break,
        }
    }
    // Too few: give to the largest remainders.
    while shares.iter().sum::<usize>() < n {
        let under = (0..sizes.len())
            .filter(|&g| shares[g] < sizes[g])
            .max_by(|&a, &b| (exact[a] - shares[a] as f64).total_cmp(&(exact[b] - shares[b] as f64)).then(b.cmp(&a)));
        match under {
            Some(g) => shares[g] += 1,
            None => break,
        }
    }
    shares
}

/// k-means by cosine on unit vectors: a seeded k-means++ start, then [`ITERATIONS`] Lloyd rounds. The
/// centres and each row's cluster.
fn kmeans(x: &[Vec<f32>], k: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
    let rows = x.len();
    let k = k.clamp(1, rows.max(1));
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
    while centres.len() < k {
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
        let mut sums = vec![vec![0f32; dim]; k];
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
    for (a, v) in assignment.iter_mut().zip(x) {
        *a = argmax(centres.iter().map(|c| dot(v, c)));
    }
    (centres, assignment)
}

/// Each row's most likely domain under `router`'s domain head, as an index into `router.manifest.domains`
/// (all 0 when the router has no domain head): the strata of [`representative`].
pub fn domain_strata(router: &switchyard_core::Router, x: &[Vec<f32>]) -> Vec<usize> {
    let domains = &router.manifest.domains;
    x.iter()
        .map(|v| {
            let top = router.predict(v, 0.0).domains.into_iter().next();
            top.and_then(|d| domains.iter().position(|name| *name == d.domain)).unwrap_or(0)
        })
        .collect()
}

fn argmax(values: impl Iterator<Item = f32>) -> usize {
    values.enumerate().fold((0, f32::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best }).0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector at `angle` in the plane of dimensions `plane` and `plane + 1` of 6.
    fn point(plane: usize, angle: f32) -> Vec<f32> {
        let mut v = vec![0f32; 6];
        v[plane] = angle.cos();
        v[plane + 1] = angle.sin();
        v
    }

    #[test]
    fn the_picks_follow_the_traffic_not_its_spread() {
        // One spread-out domain (code, 13% of the traffic, all over its circle) and two tight ones (47% and
        // 40%, each in a narrow arc): k-means with one centre per pick put most picks in the spread-out one.
        let mut x = Vec::new();
        let mut strata = Vec::new();
        for i in 0..260 {
            x.push(point(0, i as f32 * 0.0241));
            strata.push(0);
        }
        for i in 0..940 {
            x.push(point(2, 1.0 + i as f32 * 0.0001));
            strata.push(1);
        }
        for i in 0..800 {
            x.push(point(4, 2.0 + i as f32 * 0.0001));
            strata.push(2);
        }
        {
            let chosen = representative(&x, &strata, 200, 7);
            assert_eq!(chosen.len(), 200);
            let mut seen = std::collections::HashSet::new();
            assert!(chosen.iter().all(|i| seen.insert(*i)), "no prompt twice");
            // The domain mix of the picks, against the traffic's 13 / 47 / 40.
            let share = |lo: usize, hi: usize| chosen.iter().filter(|&&i| (lo..hi).contains(&i)).count() as f64 / 2.0;
            let mix = [share(0, 260), share(260, 1200), share(1200, 2000)];
            for (got, want) in mix.iter().zip([13.0, 47.0, 40.0]) {
                assert!((got - want).abs() <= 5.0, "mix {mix:?} against 13 / 47 / 40");
            }
            assert_eq!(representative(&x, &strata, 200, 7), chosen, "deterministic");
        }
        assert_eq!(representative(&x, &vec![0; x.len()], 5000, 7).len(), 2000);
    }

    #[test]
    fn every_group_gets_a_pick_when_there_are_enough() {
        assert_eq!(apportion(&[60, 30, 5], 3, true), vec![1, 1, 1]);
        assert_eq!(apportion(&[60, 30, 5], 3, false), vec![2, 1, 0], "clusters: in proportion only");
        assert_eq!(apportion(&[60, 30, 5], 19, true), vec![12, 6, 1]);
        assert_eq!(apportion(&[60, 30, 5], 2, true), vec![1, 1, 0], "fewer picks than groups: the largest");
        assert_eq!(apportion(&[1, 0, 1000], 10, true), vec![1, 0, 9]);
        assert_eq!(apportion(&[3, 2], 10, true), vec![3, 2], "never more than a group has");
    }
}
