#!/usr/bin/env bash
# Step-time benchmark: one `burgers` training step (5 hidden layers, 1,280 collocation + 126
# boundary points) in modsync (Burn, pure-Rust CPU backend) and in the PyTorch reference
# (nested autograd), side by side on this machine with the same thread count. Prints ms/step
# for both and the ratio ours / PyTorch (target: <= 1.0 at every width).
#
# Usage: bench/step-time.sh [THREADS=2] [WIDTHS=50,128,512] [STEPS=30]
# PyTorch is installed into bench/.venv on the first run (pip, from PyPI); the tests never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
WIDTHS=${WIDTHS:-50,128,512}
STEPS=${STEPS:-30}
TORCH_VERSION=${TORCH_VERSION:-2.9.0}

if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c "import torch" 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q "torch==${TORCH_VERSION}"
fi
# --workspace, not -p trainer-core: per-package feature resolution would rebuild Burn.
cargo build --release -q --workspace --example step_time

ours=$(RAYON_NUM_THREADS=$THREADS target/release/examples/step_time --widths "$WIDTHS" --steps "$STEPS")
theirs=$(OMP_NUM_THREADS=$THREADS bench/.venv/bin/python bench/step_time_torch.py --widths ${WIDTHS//,/ } --steps "$STEPS" --threads "$THREADS")

echo "burgers step time, depth 5, ${THREADS} threads, $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '%-6s %12s %12s %8s\n' width ours_ms torch_ms ratio
join <(echo "$ours" | sort -n) <(echo "$theirs" | sort -n) | sort -n |
  awk '{ printf "%-6s %12.2f %12.2f %8.2f\n", $1, $2, $3, $2 / $3 }'
