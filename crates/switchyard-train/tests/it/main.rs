//! switchyard-train's tests, one binary: training on the shipped routing data (held-out quality, shuffled
//! labels, round trips, reproducibility of every predictor, sparse and pairwise logs) and unbiased retraining
//! on logged-bandit data. Embeddings are cached in a folder of this run's own (`switchyard_testkit`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ips;
mod train_route;
