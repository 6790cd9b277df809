#!/usr/bin/env bash
# Trains the bundled default router (models/default/) on training-data/default/, reproducibly.
#   scripts/train-default-router.sh            # uses the embedding cache, so a rerun takes seconds
# The predictor is chosen between logistic regression and the MLP by validation log loss; kNN is left out
# so that the committed artifact stays small (it would store every training embedding).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p switchyard -- train \
  --logs training-data/default/logs.jsonl.gz \
  --catalog training-data/default/catalog.toml \
  --predictor logistic,mlp \
  --min-quality 0.7 \
  --out models/default "$@"
