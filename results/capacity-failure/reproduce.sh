#!/usr/bin/env bash
# Reproduces everything in this directory with one command (issue 16): the capacity-failure
# sweep (examples/capacity-failure.toml, ~80 min on 2 idle cores), the width-512 ablation
# (~75 min) and the exported curves, per-job errors, histories and masks. Each step resumes
# after a stop: the sweep from its store and checkpoints, the ablation row by row, so running
# the same command again continues where it stopped.
# Usage: results/capacity-failure/reproduce.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q --workspace --bin modsync
target/release/modsync sweep run examples/capacity-failure.toml
results/capacity-failure/ablation.sh
results/capacity-failure/export.sh
