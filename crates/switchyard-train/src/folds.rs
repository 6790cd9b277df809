//! Grouped K-fold cross-validation: prompts are grouped by their normalised text, so a text (and every
//! spelling of it that differs only in case or spacing) is always on one side of a split.

use sha2::{Digest, Sha256};

use crate::TrainError;

/// Each prompt's fold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folds {
    /// Number of folds.
    pub k: usize,
    /// The fold of each prompt.
    pub of: Vec<usize>,
}

impl Folds {
    /// Deals the distinct texts (by `text_hashes`) into `k` folds in a seeded random order, round robin, so
    /// folds differ in size by at most one text. Fails when there are fewer distinct texts than folds.
    pub fn grouped(text_hashes: &[u64], k: usize, seed: u64) -> Result<Self, TrainError> {
        if k < 2 {
            return Err(TrainError::Fit(format!("cross-validation needs at least 2 folds, got {k}")));
        }
        let mut distinct: Vec<u64> = text_hashes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < k {
            return Err(TrainError::TooFewFolds { folds: k, prompts: distinct.len() });
        }
        let order = |h: u64| {
            let d = Sha256::digest(format!("{seed}:{h}").as_bytes());
            u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
        };
        distinct.sort_by_key(|&h| (order(h), h));
        let fold_of_text: std::collections::HashMap<u64, usize> =
            distinct.iter().enumerate().map(|(i, &h)| (h, i % k)).collect();
        Ok(Self { k, of: text_hashes.iter().map(|h| fold_of_text[h]).collect() })
    }

    /// The same folds restricted to the prompts `rows` (in that order).
    pub fn subset(&self, rows: &[usize]) -> Self {
        Self { k: self.k, of: rows.iter().map(|&r| self.of[r]).collect() }
    }

    /// (training rows, validation rows) of fold `f`.
    pub fn split(&self, f: usize) -> (Vec<usize>, Vec<usize>) {
        (0..self.of.len()).partition(|&i| self.of[i] != f)
    }
}

/// The rows of at most `cap` prompts, whole text groups at a time, chosen by a seeded hash of the
/// normalised text (so the same prompts for the same logs and seed), in row order; every row when there are
/// at most `cap`. Groups are taken in hash order while they fit; a group larger than what is left of the
/// budget is passed over, so one text repeated across many ids cannot crowd out the rest. Training
/// cross-validates on this sample when the logs are larger, so that choosing the predictor costs the same at
/// a million rows as at ten thousand; the chosen predictor is then refitted on every prompt.
pub fn sample_groups(text_hashes: &[u64], cap: usize, seed: u64) -> Vec<usize> {
    if text_hashes.len() <= cap {
        return (0..text_hashes.len()).collect();
    }
    let key =
        |h: u64| (h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(31);
    let mut sizes: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for &h in text_hashes {
        *sizes.entry(h).or_default() += 1;
    }
    let mut groups: Vec<(u64, u64, usize)> = sizes.into_iter().map(|(h, n)| (key(h), h, n)).collect();
    groups.sort_unstable();
    let mut left = cap;
    let mut chosen = std::collections::HashSet::new();
    for (_, h, n) in groups {
        if n <= left {
            left -= n;
            chosen.insert(h);
            if left == 0 {
                break;
            }
        }
    }
    (0..text_hashes.len()).filter(|&r| chosen.contains(&text_hashes[r])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_fold_and_balanced() {
        let hashes: Vec<u64> = (0..103).map(|i| i % 50).collect(); // 50 texts, most seen twice or three times
        let folds = Folds::grouped(&hashes, 5, 7).unwrap();
        for i in 0..hashes.len() {
            for j in 0..hashes.len() {
                if hashes[i] == hashes[j] {
                    assert_eq!(folds.of[i], folds.of[j]);
                }
            }
        }
        for f in 0..5 {
            let texts: std::collections::BTreeSet<u64> =
                (0..103).filter(|&i| folds.of[i] == f).map(|i| hashes[i]).collect();
            assert_eq!(texts.len(), 10, "fold {f}");
            let (train, val) = folds.split(f);
            assert_eq!(train.len() + val.len(), 103);
            assert!(val.iter().all(|&i| folds.of[i] == f) && train.iter().all(|&i| folds.of[i] != f));
        }
        assert_eq!(folds, Folds::grouped(&hashes, 5, 7).unwrap());
        assert_ne!(folds, Folds::grouped(&hashes, 5, 8).unwrap());
        let err = Folds::grouped(&[1, 2, 2], 5, 7).unwrap_err().to_string();
        assert!(err.contains("5 folds") && err.contains("2 distinct prompts"), "{err}");
    }

    #[test]
    fn a_sample_keeps_whole_text_groups_and_its_size() {
        let hashes: Vec<u64> = (0..5000).map(|i| i % 2000).collect(); // 2,000 texts, 2 or 3 rows each
        assert_eq!(sample_groups(&hashes, 5000, 3).len(), 5000);
        let sample = sample_groups(&hashes, 1000, 3);
        assert!((990..=1000).contains(&sample.len()), "{}", sample.len());
        let kept: std::collections::HashSet<u64> = sample.iter().map(|&r| hashes[r]).collect();
        for (r, h) in hashes.iter().enumerate() {
            assert_eq!(kept.contains(h), sample.contains(&r), "row {r} split from its text");
        }
        assert_eq!(sample, sample_groups(&hashes, 1000, 3));
        assert_ne!(sample, sample_groups(&hashes, 1000, 4));
        // One text on 1,500 rows (e.g. "hi" from many requests) cannot fit in a sample of 1,000, and does not
        // push the other texts out.
        let crowded: Vec<u64> = (0..3000).map(|i| if i < 1500 { 7 } else { i }).collect();
        let sample_crowded = sample_groups(&crowded, 1000, 3);
        assert_eq!(sample_crowded.len(), 1000);
        assert!(sample_crowded.iter().all(|&r| crowded[r] != 7));
        let folds = Folds::grouped(&hashes, 5, 1).unwrap();
        let sub = folds.subset(&sample);
        assert!(sample.iter().zip(&sub.of).all(|(&r, &f)| folds.of[r] == f));
    }
}
