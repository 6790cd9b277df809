//! switchyard-core's tests, one binary: the shipped training data read with the labelled-log reader and the
//! catalog (clean splits, within and across sets), and the bundled default router's decisions (its `Router`
//! and `Policy`) on everyday prompts and on MMLU-Pro's test split, with the real encoder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod everyday;
mod mmlu_pro;
mod training_data;
