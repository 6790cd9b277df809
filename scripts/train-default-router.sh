#!/usr/bin/env bash
# Trains the bundled default router (models/default/) on training-data/default/, reproducibly.
#   scripts/train-default-router.sh            # uses the embedding cache, so a rerun only refits
#   OUT=DIR scripts/train-default-router.sh --precision int8   # a router for an int8 encoder, elsewhere
# The predictor is the joint item-response model (irt) alone: the default data is stitched from four sources in
# which different models answered prompts of different difficulty, and only a model fitted over all of them at
# once puts every model on one scale (README, "The default router"). Its grid of settings is chosen by
# cross-validated AIQ. Model profiles (published MMLU-Redux and ZebraLogic accuracies) are soft constraints on the
# abilities of the models with little item-level evidence. Hand-labelled everyday prompts (training-data/complexity/)
# teach complexity what the benchmark logs lack; they never feed the per-model predictor.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p switchyard -- train \
  --logs training-data/default/logs.jsonl.gz \
  --catalog training-data/default/catalog.toml \
  --profiles training-data/default/profiles.toml \
  --complexity-labels training-data/complexity/prompts.jsonl \
  --predictor irt \
  --min-quality 0.55 \
  --out "${OUT:-models/default}" "$@"
