#!/usr/bin/env bash
# Step-time benchmark: one `burgers` training step (5 hidden layers, 1,280 collocation + 126
# boundary points) in modsync (Burn) and in the PyTorch reference (nested autograd), side by
# side on this machine with the same thread count. Prints ms/step for each modsync device and
# PyTorch, and the ratio ours / PyTorch (target: <= 1.0 at every width).
#
# Usage: [THREADS=2] [WIDTHS=50,128,512] [STEPS=30] [DEVICES=cpu] bench/step-time.sh
#   DEVICES: comma-separated modsync devices: cpu (burn-flex, default), cpu-tch (LibTorch on the
#   CPU), cuda:N (then PyTorch also runs on cuda:N). A LibTorch device builds the step_time
#   example with --features tch in target/tch against bench/.venv's PyTorch.
# PyTorch is installed into bench/.venv on the first run (pip, from PyPI); the tests never need it.
set -euo pipefail
export LC_ALL=C # join needs its inputs sorted the way it compares
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
WIDTHS=${WIDTHS:-50,128,512}
STEPS=${STEPS:-30}
DEVICES=${DEVICES:-cpu}
source bench/lib/torch-venv.sh
torch_device=cpu
case ",$DEVICES," in
  *,cpu-tch,* | *,cuda*)
    # --workspace, not -p trainer-core: per-package feature resolution would rebuild Burn.
    PATH="$PWD/bench/.venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1 CARGO_TARGET_DIR="$PWD/target/tch" \
      cargo build --release -q --workspace --features modsync/tch --example step_time
    step_time=target/tch/release/examples/step_time
    torch_lib=$(bench/.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)/lib
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ;;
  *)
    cargo build --release -q --workspace --example step_time
    step_time=target/release/examples/step_time
    ;;
esac
case ",$DEVICES," in *,cuda*) torch_device=$(tr ',' '\n' <<<"$DEVICES" | grep -m1 '^cuda') ;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
header="width"
i=0
for dev in ${DEVICES//,/ }; do
  RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS \
    "$step_time" --device "$dev" --widths "$WIDTHS" --steps "$STEPS" | sort >"$tmp/ours$i"
  header+=" $dev"
  i=$((i + 1))
done
OMP_NUM_THREADS=$THREADS bench/.venv/bin/python bench/step_time_torch.py --widths ${WIDTHS//,/ } \
  --steps "$STEPS" --threads "$THREADS" --device "$torch_device" 2>/dev/null | sort >"$tmp/torch"

cp "$tmp/ours0" "$tmp/table"
for ((j = 1; j < i; j++)); do join "$tmp/table" "$tmp/ours$j" >"$tmp/t" && mv "$tmp/t" "$tmp/table"; done
join "$tmp/table" "$tmp/torch" >"$tmp/t" && mv "$tmp/t" "$tmp/table"

echo "burgers step time (ms), depth 5, ${THREADS} threads, $(nproc) cores, $(date -u +%Y-%m-%d); ratio = ours / torch ($torch_device)"
for dev in ${DEVICES//,/ }; do header+=" ratio_$dev"; done
echo "$header torch" | awk -v n="$i" '{ printf "%-6s", $1; for (k = 2; k <= n + 1; k++) printf " %10s", $k; printf " %10s", "torch"; for (k = n + 2; k <= 2 * n + 1; k++) printf " %14s", $k; print "" }'
sort -n "$tmp/table" | awk -v n="$i" '{ printf "%-6s", $1; for (k = 2; k <= n + 1; k++) printf " %10.2f", $k; printf " %10.2f", $(n + 2); for (k = 2; k <= n + 1; k++) printf " %14.2f", $k / $(n + 2); print "" }'
