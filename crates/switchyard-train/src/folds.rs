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

    /// (training rows, validation rows) of fold `f`.
    pub fn split(&self, f: usize) -> (Vec<usize>, Vec<usize>) {
        (0..self.of.len()).partition(|&i| self.of[i] != f)
    }
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
}
