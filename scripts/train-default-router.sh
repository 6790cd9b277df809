#!/usr/bin/env bash
# Trains the bundled default router (models/default/) on training-data/default/, reproducibly.
#   scripts/train-default-router.sh            # uses the embedding cache, so a rerun only refits
# Candidates: logistic regression, matrix factorisation and the MLP (each over its grid of settings) and
# their ensemble, chosen by cross-validated AIQ. kNN is left out so that the committed artifact stays small
# (it would store every training embedding). Model profiles (published MMLU-Redux and ZebraLogic accuracies)
# give the priors a prompt far from the training data falls back on, and for the models the logs test in few
# domains. Hand-labelled everyday prompts (training-data/complexity/) teach complexity what the benchmark
# logs lack; they never feed the per-model predictors.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p switchyard -- train \
  --logs training-data/default/logs.jsonl.gz \
  --catalog training-data/default/catalog.toml \
  --profiles training-data/default/profiles.toml \
  --complexity-labels training-data/complexity/prompts.jsonl \
  --predictor logistic,mf,mlp \
  --min-quality 0.55 \
  --out models/default "$@"
