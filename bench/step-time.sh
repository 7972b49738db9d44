#!/usr/bin/env bash
# Step-time benchmark: one `burgers` training step (5 hidden layers, 1,280 collocation + 126
# boundary points) in modsync (Burn) and in the PyTorch reference (nested autograd), side by
# side on this machine with the same thread count. Prints ms/step (median over ROUNDS) for each
# modsync device, for the baseline build if asked, and PyTorch, with the ratios ours / PyTorch
# (target: <= 1.0 at every width) and baseline / ours (the speed-up of this tree).
#
# Usage: [THREADS=2] [WIDTHS=50,128,512] [STEPS=30] [DEVICES=cpu] [METHODS=adam] [ROUNDS=1]
#        [BASELINE=<git rev>] [BACKWARD=explicit] [VARIANTS='name=flags;...'] bench/step-time.sh
#   THREADS: one count or a list (1,2): every table is run for each.
#   DEVICES: comma-separated modsync devices: cpu (burn-flex, default), cpu-tch (LibTorch on the
#   CPU), cuda:N (then PyTorch also runs on cuda:N). A LibTorch device builds the step_time
#   example with --features tch in target/tch against bench/.venv's PyTorch.
#   METHODS: modsync methods to time (adam, dcgd, modsync+dcgd, ...); PyTorch runs plain Adam, so
#   the ratio to it is printed for adam only.
#   ROUNDS: the binaries run alternately (baseline, ours, PyTorch), ROUNDS times; medians shown.
#   BASELINE: a git revision whose step_time example is built too (first device only), e.g.
#   BASELINE=ccfd9b1 for the autodiff step before the explicit reverse pass. Its source goes to
#   target/step-time-baseline/<rev>; its artifacts share target/ (only the workspace crates are
#   built again), and the binary is copied out at once.
#   BACKWARD: explicit (default) or autodiff: how this tree's step computes its gradients.
#   VARIANTS: more columns from this tree's binary on the first device, each with its own flags,
#   e.g. VARIANTS='autodiff=--backward autodiff;one-chunk=--max-chunks 1' (what each change gave).
# PyTorch is installed into bench/.venv on the first run (pip, from PyPI); the tests never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
WIDTHS=${WIDTHS:-50,128,512}
STEPS=${STEPS:-30}
DEVICES=${DEVICES:-cpu}
METHODS=${METHODS:-adam}
ROUNDS=${ROUNDS:-1}
BASELINE=${BASELINE:-}
BACKWARD=${BACKWARD:-explicit}
VARIANTS=${VARIANTS:-}
source bench/lib/torch-venv.sh
torch_device=cpu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The same cargo invocation for this tree and for the baseline's source tree.
build_step_time() { # <manifest dir> <tch: 0|1>
  if [ "$2" = 1 ]; then
    # --workspace, not -p trainer-core: per-package feature resolution would rebuild Burn.
    PATH="$PWD/bench/.venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1 \
      cargo build --release -q --workspace --features modsync/tch --example step_time \
      --manifest-path "$1/Cargo.toml" --target-dir "$PWD/target/tch"
    echo "$PWD/target/tch/release/examples/step_time"
  else
    cargo build --release -q --workspace --example step_time \
      --manifest-path "$1/Cargo.toml" --target-dir "$PWD/target"
    echo "$PWD/target/release/examples/step_time"
  fi
}

tch=0
case ",$DEVICES," in
  *,cpu-tch,* | *,cuda*)
    tch=1
    torch_lib=$(bench/.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)/lib
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ;;
esac
case ",$DEVICES," in *,cuda*) torch_device=$(tr ',' '\n' <<<"$DEVICES" | grep -m1 '^cuda') ;; esac
first_device=${DEVICES%%,*}
first_tch=0
case "$first_device" in cpu-tch | cuda*) first_tch=1 ;; esac

if [ -n "$BASELINE" ]; then
  # A fixed source path per revision (under the ignored target/), so a rerun rebuilds nothing.
  rev=$(git rev-parse --short "$BASELINE^{commit}")
  src="$PWD/target/step-time-baseline/$rev"
  if [ ! -f "$src/Cargo.toml" ]; then
    mkdir -p "$src"
    git archive "$rev" | tar -x -C "$src"
  fi
  cp "$(build_step_time "$src" "$first_tch")" "$tmp/step_time_baseline"
fi
step_time=$(build_step_time "$PWD" "$tch")
cp "$step_time" "$tmp/step_time"

# Rows "<threads> <method> <column> <width> <ms>" in $tmp/rows.
record() { # <threads> <method> <column> then "width ms" lines on stdin
  awk -v t="$1" -v m="$2" -v c="$3" '{ print t, m, c, $1, $2 }' >>"$tmp/rows"
}
for threads in ${THREADS//,/ }; do
  export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
  for ((round = 1; round <= ROUNDS; round++)); do
    for method in ${METHODS//,/ }; do
      if [ -n "$BASELINE" ]; then
        "$tmp/step_time_baseline" --device "$first_device" --widths "$WIDTHS" --steps "$STEPS" \
          --method "$method" | record "$threads" "$method" baseline
      fi
      IFS=';' read -ra variants <<<"$VARIANTS"
      for variant in "${variants[@]}"; do
        # shellcheck disable=SC2086 # the flags are meant to split
        "$tmp/step_time" --device "$first_device" --widths "$WIDTHS" --steps "$STEPS" \
          --method "$method" ${variant#*=} | record "$threads" "$method" "${variant%%=*}"
      done
      for dev in ${DEVICES//,/ }; do
        "$tmp/step_time" --device "$dev" --widths "$WIDTHS" --steps "$STEPS" --method "$method" \
          --backward "$BACKWARD" | record "$threads" "$method" "$dev"
      done
    done
    bench/.venv/bin/python bench/step_time_torch.py --widths ${WIDTHS//,/ } --steps "$STEPS" \
      --threads "$threads" --device "$torch_device" 2>/dev/null | record "$threads" adam torch
  done
done

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "burgers step time (ms, median of $ROUNDS), depth 5, $(nproc --all) cores, load $load, $(date -u +%Y-%m-%d)"
echo "columns: ${BASELINE:+baseline = $BASELINE on $first_device, }ours = this tree (--backward $BACKWARD), torch = PyTorch on $torch_device"
variant_names=$(tr ';' '\n' <<<"$VARIANTS" | sed -n 's/=.*//p' | paste -sd, -)
bench/.venv/bin/python - "$tmp/rows" "$DEVICES" "${BASELINE:+1}" "$variant_names" <<'EOF'
import collections, statistics, sys
rows, devices, has_base = sys.argv[1], sys.argv[2].split(","), sys.argv[3] == "1"
variants = [v for v in sys.argv[4].split(",") if v]
ms = collections.defaultdict(list)
for line in open(rows):
    t, m, c, w, v = line.split()
    ms[int(t), m, c, int(w)].append(float(v))
med = {k: statistics.median(v) for k, v in ms.items()}
cols = (["baseline"] if has_base else []) + variants + devices
for t in sorted({k[0] for k in med}):
    for m in sorted({k[1] for k in med if k[1] != "adam"} | {"adam"}, key=lambda s: (s != "adam", s)):
        if not any(k[0] == t and k[1] == m and k[2] != "torch" for k in med):
            continue
        head = ["width"] + cols + (["torch"] if m == "adam" else [])
        if m == "adam":
            head += [f"{c}/torch" for c in cols]
        if has_base:
            head += [f"baseline/{d}" for d in devices]
        print(f"\n{t} thread(s), {m}")
        print(" ".join(f"{h:>14}" for h in head))
        for w in sorted({k[3] for k in med if k[0] == t and k[1] == m}):
            get = lambda c, mm=m: med.get((t, mm, c, w), float("nan"))
            vals = [get(c) for c in cols] + ([get("torch")] if m == "adam" else [])
            if m == "adam":
                vals += [get(c) / get("torch") for c in cols]
            if has_base:
                vals += [get("baseline") / get(d) for d in devices]
            print(f"{w:>14} " + " ".join(f"{v:>14.2f}" for v in vals))
EOF
