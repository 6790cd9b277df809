//! Choosing which prompts to evaluate a new model on: a few hundred that represent the traffic, so that
//! its eval rows say something about every region the router routes, in the proportions it routes them.

/// Where one prompt falls in the traffic: the router's most likely domain for it and its complexity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stratum {
    /// Index into the router's domains.
    pub domain: usize,
    /// The router's complexity score, in [0, 1].
    pub complexity: f64,
}

/// `n` of the prompts placed by `strata` (one per prompt) that represent the traffic: a stratified sample.
/// The picks are shared among the domains in proportion to their prompts (largest remainders; every domain
/// gets one when `n` allows), and within a domain drawn systematically along the complexity order (a seeded
/// start, then every `size / picks`-th prompt), so every complexity band gets its share too. Every prompt
/// when there are at most `n`. Deterministic for a seed.
///
/// A random draw inside each stratum, not the prompt nearest a k-means centre: "central" prompts are the
/// typical ones, and a new model's success on typical prompts is a biased estimate of its success on the
/// traffic (measured on zeroeval: o1-mini added back from k-means-central picks lost 0.0137 AIQ to
/// retraining, from random ones it matched it).
pub fn representative(strata: &[Stratum], n: usize, seed: u64) -> Vec<usize> {
    let rows = strata.len();
    if rows <= n {
        return (0..rows).collect();
    }
    let groups = strata.iter().map(|s| s.domain + 1).max().unwrap_or(1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups];
    for (i, s) in strata.iter().enumerate() {
        members[s.domain].push(i);
    }
    let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
    let shares = apportion(&sizes, n, true);
    let mut rng = Rng(seed.max(1));
    let mut chosen = Vec::with_capacity(n);
    for (mut group, picks) in members.into_iter().zip(shares).filter(|(_, p)| *p > 0) {
        group.sort_by(|&a, &b| strata[a].complexity.total_cmp(&strata[b].complexity).then(a.cmp(&b)));
        let step = group.len() as f64 / picks as f64;
        let start = rng.uniform() * step;
        chosen.extend((0..picks).map(|k| group[((start + k as f64 * step) as usize).min(group.len() - 1)]));
    }
    chosen
}

/// A xorshift generator: the seeded starts of [`representative`].
struct Rng(u64);

impl Rng {
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
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

/// Where each prompt (`x`: its embedding) falls under `router`: its most likely domain, as an index into
/// `router.manifest.domains` (0 when the router has no domain head), and its complexity. The strata of
/// [`representative`].
pub fn strata(router: &switchyard_core::Router, x: &[Vec<f32>]) -> Vec<Stratum> {
    let domains = &router.manifest.domains;
    x.iter()
        .map(|v| {
            let prediction = router.predict(v, 0.0);
            let top = prediction.domains.into_iter().next();
            let domain = top.and_then(|d| domains.iter().position(|name| *name == d.domain)).unwrap_or(0);
            Stratum { domain, complexity: prediction.complexity }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A skewed traffic: code 13% (complexity spread over [0, 1]), then two tight domains of 47% and 40%
    /// (complexity within 0.1 of 0.3 and of 0.7).
    fn skewed() -> Vec<Stratum> {
        let mut strata = Vec::new();
        strata.extend((0..260).map(|i| Stratum { domain: 0, complexity: f64::from(i) / 260.0 }));
        strata.extend((0..940).map(|i| Stratum { domain: 1, complexity: 0.2 + f64::from(i % 200) / 1000.0 }));
        strata.extend((0..800).map(|i| Stratum { domain: 2, complexity: 0.6 + f64::from(i % 200) / 1000.0 }));
        strata
    }

    #[test]
    fn the_picks_follow_the_traffic_not_its_spread() {
        let strata = skewed();
        let chosen = representative(&strata, 200, 7);
        assert_eq!(chosen.len(), 200);
        let mut seen = std::collections::HashSet::new();
        assert!(chosen.iter().all(|i| seen.insert(*i)), "no prompt twice");
        let share = |d: usize| chosen.iter().filter(|&&i| strata[i].domain == d).count() as f64 / 2.0;
        let mix = [share(0), share(1), share(2)];
        for (got, want) in mix.iter().zip([13.0, 47.0, 40.0]) {
            assert!((got - want).abs() <= 5.0, "mix {mix:?} against 13 / 47 / 40");
        }
        // Within the spread-out domain, every quarter of its complexity range gets its quarter of the picks.
        let code: Vec<f64> = chosen.iter().filter(|&&i| strata[i].domain == 0).map(|&i| strata[i].complexity).collect();
        for q in 0..4 {
            let band = code.iter().filter(|&&c| c >= f64::from(q) / 4.0 && c < f64::from(q + 1) / 4.0).count();
            assert!(band.abs_diff(code.len() / 4) <= 1, "quarter {q}: {band} of {} picks", code.len());
        }
        assert_eq!(representative(&strata, 200, 7), chosen, "deterministic for a seed");
        assert_ne!(representative(&strata, 200, 8), chosen, "another seed, another sample");
        assert_eq!(representative(&strata, 5000, 7).len(), 2000, "every prompt when there are fewer");
    }

    #[test]
    fn fewer_picks_than_domains_go_to_the_largest() {
        let chosen = representative(&skewed(), 2, 7);
        let mut domains: Vec<usize> = chosen.iter().map(|&i| skewed()[i].domain).collect();
        domains.sort_unstable();
        assert_eq!(domains, vec![1, 2]);
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
