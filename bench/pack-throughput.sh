#!/usr/bin/env bash
# Pack throughput: network-steps per second of K `burgers` networks (depth 5, 1,280 collocation +
# 126 boundary points each) trained in one batched step, against one network trained alone (K
# separate trainers) and against PyTorch's strongest form, a `torch.func` ensemble (vmap +
# functional_call, nested autograd), side by side on this machine with the same thread count.
# Prints per width and K: ours packed, ours alone, pack/alone (target at K = 8: >= 2 at widths
# 20 and 50), PyTorch ensemble, ours/PyTorch (target >= 1 at every width); medians over ROUNDS.
#
# Usage: [THREADS=2] [WIDTHS=20,50,128,512] [KS=1,2,4,8,16] [STEPS=20] [ROUNDS=1] [DEVICE=cpu]
#        [METHOD=adam] [EXTRA='--networks-per-chunk 2'] bench/pack-throughput.sh
#   DEVICE: cpu (burn-flex), cpu-tch or cuda:N (LibTorch: builds with --features tch into
#   target/tch against bench/.venv's PyTorch; PyTorch then runs on the same device).
# PyTorch is installed into bench/.venv on the first run (pip, from PyPI); the tests never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
WIDTHS=${WIDTHS:-20,50,128,512}
KS=${KS:-1,2,4,8,16}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-1}
DEVICE=${DEVICE:-cpu}
METHOD=${METHOD:-adam}
EXTRA=${EXTRA:-}
source bench/lib/torch-venv.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

torch_device=cpu
if [ "$DEVICE" = cpu ]; then
  cargo build --release -q --workspace --example pack_throughput
  bin=target/release/examples/pack_throughput
else
  case "$DEVICE" in cuda*) torch_device=$DEVICE ;; esac
  torch_lib=$(bench/.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # --workspace, not -p trainer-core: per-package feature resolution would rebuild Burn.
  PATH="$PWD/bench/.venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1 \
    cargo build --release -q --workspace --features modsync/tch --example pack_throughput \
    --target-dir target/tch
  bin=target/tch/release/examples/pack_throughput
fi

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "THREADS=$THREADS DEVICE=$DEVICE METHOD=$METHOD STEPS=$STEPS ROUNDS=$ROUNDS $EXTRA"
for round in $(seq "$ROUNDS"); do
  # shellcheck disable=SC2086
  RAYON_NUM_THREADS=$THREADS "$bin" --widths "$WIDTHS" --ks "$KS" --steps "$STEPS" \
    --method "$METHOD" --device "$DEVICE" $EXTRA >>"$tmp/ours.txt"
  (cd bench && OMP_NUM_THREADS=$THREADS .venv/bin/python pack_torch.py --widths ${WIDTHS//,/ } \
    --ks ${KS//,/ } --steps "$STEPS" --threads "$THREADS" --device "$torch_device") >>"$tmp/torch.txt"
done

bench/.venv/bin/python - "$tmp/ours.txt" "$tmp/torch.txt" <<'PY'
import statistics, sys
from collections import defaultdict
ours, alone, torch = defaultdict(list), defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    w, k, p, a = line.split()
    ours[int(w), int(k)].append(float(p)); alone[int(w)].append(float(a))
for line in open(sys.argv[2]):
    w, k, ms = line.split()
    torch[int(w), int(k)].append(int(k) * 1e3 / float(ms))
med = statistics.median
print(f"{'width':>5} {'K':>3} {'packed':>9} {'alone':>9} {'pack/alone':>10} {'torch.func':>10} {'ours/torch':>10}")
print("      (network-steps per second; ratios > 1: ours faster)")
for (w, k) in sorted(ours):
    p, a, t = med(ours[w, k]), med(alone[w]), med(torch[w, k])
    print(f"{w:>5} {k:>3} {p:>9.1f} {a:>9.1f} {p / a:>10.2f} {t:>10.1f} {p / t:>10.2f}")
PY
