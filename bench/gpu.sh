#!/usr/bin/env bash
# GPU benchmark of modsync's LibTorch backend against PyTorch eager, on one GPU, in < 9 minutes.
#
# Runs on a machine with PyTorch (python3 -c 'import torch' works) and no Rust toolchain: the
# modsync binary and the step_time example are built elsewhere with the `tch` feature
# (deploy/gpu/build-worker.sh; against the PyTorch version this machine has, e.g.
# TORCH_VERSION=2.11.0 BYPASS_VERSION_CHECK=1) and carried here with this repository's bench/.
#
#   (a) step time, burgers, 5 hidden layers, widths 50/128/512/1024: ours (step_time example)
#       vs PyTorch eager with nested autograd (bench/step_time_torch.py), and the ratio;
#   (b) sweep throughput: the same 16 short jobs (widths 50-512 x 4 seeds) one after another in
#       PyTorch (bench/gpu/torch_sweep.py) vs ours (coordinator + one `modsync worker` with
#       --slots 1, 4, 8): jobs/hour and the ratio;
#   (c) the same short training run on the CPU (burn-flex) and on the GPU: relative L2 agrees
#       (run before (b), which is the longest part).
# Every part is time-boxed; everything goes to OUT_DIR, and the script ends with a summary.
#
# Usage: bench/gpu.sh [OUT_DIR] [MODSYNC_BIN]
#   OUT_DIR      default: $OUT, else bench/gpu-out
#   MODSYNC_BIN  default: $MODSYNC_BIN, else target/tch/release/modsync (or the stripped copy
#                deploy/gpu/build-worker.sh leaves in target/tch*/dist/, with step_time beside it)
# Environment: DEVICE=cuda:0 (cpu-tch: a quick dry run with tiny sizes on the CPU),
#   STEP_TIME_BIN (default: examples/step_time next to MODSYNC_BIN), PYTHON=python3,
#   and the sizes below (STEP_WIDTHS, SWEEP_WIDTHS, SWEEP_SEEDS, SWEEP_ITERS, SLOTS, ...).
set -uo pipefail # not -e: a failed part is reported and the other parts still run

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${1:-${OUT:-$ROOT/bench/gpu-out}}
BIN=${2:-${MODSYNC_BIN:-$ROOT/target/tch/release/modsync}}
if [ -z "${STEP_TIME_BIN:-}" ]; then
  STEP_TIME_BIN=$(dirname "$BIN")/examples/step_time # a cargo target dir
  [ -x "$STEP_TIME_BIN" ] || STEP_TIME_BIN=$(dirname "$BIN")/step_time # build-worker.sh's dist/
fi
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda:0}

case "$DEVICE" in
  cuda*) # the real run
    TORCH_DEVICE=${DEVICE}
    STEP_WIDTHS=${STEP_WIDTHS:-50,128,512,1024}
    STEP_STEPS=${STEP_STEPS:-100}
    SWEEP_WIDTHS=${SWEEP_WIDTHS:-50,128,256,512}
    SWEEP_SEEDS=${SWEEP_SEEDS:-0,1,2,3}
    SWEEP_ITERS=${SWEEP_ITERS:-600}
    SLOTS=${SLOTS:-1,4,8}
    C_ITERS=${C_ITERS:-500}
    THREADS=${THREADS:-0} # PyTorch's default
    # Time limits (s) per command: their sum, with the preflight's 60, stays under 9 minutes
    # even if every part runs into its limit.
    T_STEP=${T_STEP:-40} T_TORCH_SWEEP=${T_TORCH_SWEEP:-100} T_SWEEP=${T_SWEEP:-65} T_C=${T_C:-30}
    ;;
  cpu-tch) # a dry run of the whole script on the CPU, in about two minutes
    TORCH_DEVICE=cpu
    STEP_WIDTHS=${STEP_WIDTHS:-16,32}
    STEP_STEPS=${STEP_STEPS:-10}
    SWEEP_WIDTHS=${SWEEP_WIDTHS:-8,16}
    SWEEP_SEEDS=${SWEEP_SEEDS:-0,1}
    SWEEP_ITERS=${SWEEP_ITERS:-100}
    SLOTS=${SLOTS:-1,2}
    C_ITERS=${C_ITERS:-200}
    THREADS=${THREADS:-2}
    T_STEP=${T_STEP:-60} T_TORCH_SWEEP=${T_TORCH_SWEEP:-60} T_SWEEP=${T_SWEEP:-60} T_C=${T_C:-60}
    ;;
  *) echo "error: DEVICE must be cuda:N or cpu-tch, got $DEVICE" >&2; exit 2 ;;
esac
DEPTH=5
# (c): relative-L2 agreement CPU vs GPU. f32 on both, but different kernels (summation order,
# tanh), so they agree to rounding, not bit for bit; on cpu vs cpu-tch 500 iterations agreed to
# 1e-7 relative (deploy/README.md, "GPU workers"). 1e-3 leaves room for GPU kernels.
C_TOL=${C_TOL:-1e-3}

mkdir -p "$OUT_DIR" || { echo "error: cannot create $OUT_DIR" >&2; exit 2; }
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG="$OUT_DIR/gpu.log"
SUMMARY="$OUT_DIR/summary.txt"
: >"$LOG"
T0=$SECONDS
log() { printf '[gpu.sh %3ds] %s\n' $((SECONDS - T0)) "$*" | tee -a "$LOG" >&2; }
die() { log "error: $*"; exit 1; }

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Preflight: python + torch, the library path, the binaries, the device.
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=...)"
TORCH_INFO=$("$PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__), torch.__version__, torch.version.cuda, torch.cuda.is_available())' 2>>"$LOG") ||
  die "$PYTHON cannot import torch"
read -r TORCH_DIR TORCH_VERSION TORCH_CUDA CUDA_OK <<<"$TORCH_INFO"
export LD_LIBRARY_PATH="$TORCH_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -x "$BIN" ] || die "no modsync binary at $BIN (build it with deploy/gpu/build-worker.sh and pass its path)"
[ -x "$STEP_TIME_BIN" ] || die "no step_time example at $STEP_TIME_BIN (set STEP_TIME_BIN=...)"
if [ "${DEVICE%%:*}" = cuda ] && [ "$CUDA_OK" != True ]; then
  die "PyTorch $TORCH_VERSION sees no CUDA device"
fi
log "torch $TORCH_VERSION (CUDA $TORCH_CUDA) from $TORCH_DIR; device $DEVICE; out $OUT_DIR"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname) $(getconf _NPROCESSORS_ONLN) cores"
  echo "torch: $TORCH_VERSION CUDA $TORCH_CUDA at $TORCH_DIR"
  echo "modsync: $BIN ($("$BIN" --version 2>&1))"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} >"$OUT_DIR/env.txt" 2>&1
if ! "$BIN" --version >>"$LOG" 2>&1; then
  die "$BIN does not start with torch $TORCH_VERSION's libraries (undefined symbol? rebuild it against this version: TORCH_VERSION=$TORCH_VERSION BYPASS_VERSION_CHECK=1 deploy/gpu/build-worker.sh); see $LOG"
fi
# build-worker.sh leaves the PyTorch version it built against beside the binaries (dist/) and in
# the target dir. A binary built against another version can load and then fail at run time
# (2.9.0 build on 2.11.0 libraries: "Cannot access data pointer of Tensor that doesn't have
# storage"), so say so before anything else.
for stamp in "$(dirname "$BIN")/torch-version" "$(dirname "$BIN")/../torch-version"; do
  if [ -f "$stamp" ]; then
    built=$(cat "$stamp")
    if [ "$built" != "${TORCH_VERSION%%+*}" ]; then
      die "$BIN was built against torch $built but this machine has $TORCH_VERSION: rebuild with TORCH_VERSION=${TORCH_VERSION%%+*} BYPASS_VERSION_CHECK=1 deploy/gpu/build-worker.sh"
    fi
    break
  fi
done
if ! timeout 60 "$BIN" train --device "$DEVICE" --width 8 --depth 2 --iters 3 --eval-every 1 \
  --test-grid 4 >>"$LOG" 2>&1; then
  tail -5 "$LOG" >&2
  die "modsync cannot train on $DEVICE (built without --features tch, against another PyTorch version, or a LibTorch without CUDA?); see $LOG"
fi
log "preflight ok"

# The whole run's time budget: no command may run past BUDGET seconds from the start (a part
# that would start later is skipped), so the summary always gets written in time.
BUDGET=${BUDGET:-500}
# limit CAP: CAP, or less if the budget ends sooner (0: no time left).
limit() {
  local left=$((BUDGET - (SECONDS - T0)))
  ((left < 0)) && left=0
  echo $(($1 < left ? $1 : left))
}
py_list() { echo "${1//,/ }"; }
now() { date +%s.%N; }
# Arithmetic without bc (not on every machine): calc 'EXPR' prints awk's value of EXPR.
calc() { awk "BEGIN { x = $1; print x }"; }
TORCH_THREADS=$THREADS
[ "$TORCH_THREADS" = 0 ] && TORCH_THREADS=$(getconf _NPROCESSORS_ONLN)
# Runs a command with a time limit, stdout to $1; returns its status (124 = time limit).
boxed() {
  local secs out=$2
  secs=$(limit "$1")
  shift 2
  if ((secs < 3)); then
    log "skipped (time budget spent): $*"
    : >"$out"
    return 125
  fi
  timeout --kill-after=5 "$secs" "$@" >"$out" 2>>"$LOG"
}

# ---------------------------------------------------------------------------------------------
# (a) step time.
log "(a) step time, widths $STEP_WIDTHS, $STEP_STEPS steps (cap ${T_STEP}s each)"
boxed "$T_STEP" "$OUT_DIR/a_ours.txt" "$STEP_TIME_BIN" --device "$DEVICE" --widths "$STEP_WIDTHS" \
  --depth "$DEPTH" --steps "$STEP_STEPS" --warmup 10 || log "(a) ours: failed or timed out (status $?)"
boxed "$T_STEP" "$OUT_DIR/a_torch.txt" "$PYTHON" "$ROOT/bench/step_time_torch.py" --device "$TORCH_DEVICE" \
  --widths $(py_list "$STEP_WIDTHS") --depth "$DEPTH" --steps "$STEP_STEPS" --warmup 10 \
  --threads "$TORCH_THREADS" || log "(a) torch: failed or timed out (status $?)"
A_TABLE=$(awk 'NR == FNR { t[$1] = $2; next }
  { if ($1 in t) printf "%-6s %10.2f %10.2f %8.2f\n", $1, $2, t[$1], $2 / t[$1];
    else printf "%-6s %10.2f %10s %8s\n", $1, $2, "-", "-" }' "$OUT_DIR/a_torch.txt" "$OUT_DIR/a_ours.txt" | sort -n)
log "(a) done"

# ---------------------------------------------------------------------------------------------
# (c) the same short run on the CPU (burn-flex) and on $DEVICE.
log "(c) burgers w=50 d=$DEPTH, $C_ITERS iters on cpu and on $DEVICE (cap ${T_C}s each)"
C_ROWS=""
for dev in cpu "$DEVICE"; do
  d="$OUT_DIR/c_${dev//:/}"
  RAYON_NUM_THREADS=$(getconf _NPROCESSORS_ONLN) boxed "$T_C" "$d.txt" "$BIN" train --device "$dev" --width 50 \
    --depth "$DEPTH" --iters "$C_ITERS" --eval-every 50 --no-lr-decay --seed 0 --out "$d" ||
    log "(c) $dev: failed or timed out"
done
C_LINE=$("$PYTHON" - "$OUT_DIR/c_cpu/result.json" "$OUT_DIR/c_${DEVICE//:/}/result.json" "$C_TOL" "$DEVICE" <<'PY' 2>>"$LOG"
import json, sys
try:
    a, b = (json.load(open(p)) for p in sys.argv[1:3])
except OSError as e:
    print(f"missing result: {e}"); sys.exit(0)
tol = float(sys.argv[3])
worst = 0.0
for k in ("rel_l2_best", "rel_l2_last"):
    worst = max(worst, abs(a[k] - b[k]) / a[k])
verdict = "PASS" if worst <= tol else "FAIL"
dev = sys.argv[4]
print(f"rel_l2_best cpu {a['rel_l2_best']:.6f} {dev} {b['rel_l2_best']:.6f} | rel_l2_last cpu {a['rel_l2_last']:.6f} {dev} {b['rel_l2_last']:.6f} | max rel diff {worst:.2e} (tol {tol}) {verdict} | it/s cpu {a['iters_per_s']:.0f} {dev} {b['iters_per_s']:.0f}")
PY
)
log "(c) done"

# ---------------------------------------------------------------------------------------------
# (b) sweep throughput.
NJOBS=$(($(tr ',' '\n' <<<"$SWEEP_WIDTHS" | wc -l) * $(tr ',' '\n' <<<"$SWEEP_SEEDS" | wc -l)))
EVAL_EVERY=$((SWEEP_ITERS / 3 > 0 ? SWEEP_ITERS / 3 : 1))
B="$OUT_DIR/b"
mkdir -p "$B"
"$BIN" reference --pde burgers --out "$B/burgers_reference.csv" >>"$LOG" 2>&1 || die "modsync reference failed"

log "(b) PyTorch: $NJOBS jobs x $SWEEP_ITERS iters, sequential (cap ${T_TORCH_SWEEP}s)"
start=$(now)
boxed "$T_TORCH_SWEEP" "$B/torch_jobs.jsonl" "$PYTHON" "$ROOT/bench/gpu/torch_sweep.py" \
  --reference "$B/burgers_reference.csv" --widths $(py_list "$SWEEP_WIDTHS") \
  --seeds $(py_list "$SWEEP_SEEDS") --depth "$DEPTH" --iters "$SWEEP_ITERS" \
  --eval-every "$EVAL_EVERY" --device "$TORCH_DEVICE" --threads "$THREADS"
status=$?
wall=$(calc "$(now) - $start")
done_torch=$(grep -c '"width"' "$B/torch_jobs.jsonl" || true)
[ "$status" = 0 ] || log "(b) PyTorch stopped with status $status after $done_torch jobs"
# jobs/hour over the whole process (startup included), partial runs counted by finished jobs.
JPH_TORCH=$(calc "$done_torch * 3600 / $wall")
B_ROWS=$(printf '%-12s %5s/%-3s %8.1f %10.0f %8s\n' "pytorch" "$done_torch" "$NJOBS" "$wall" "$JPH_TORCH" "1.00")
log "(b) PyTorch: $done_torch jobs in ${wall}s"

# One coordinator for all slot counts; each slot count gets its own sweep of the same jobs.
"$BIN" coordinator --db "$B/sweeps.db" --listen 127.0.0.1:0 >"$B/coordinator.out" 2>>"$LOG" &
PIDS+=($!)
URL=""
for _ in $(seq 100); do
  URL=$(sed -n 's/^modsync coordinator listening on //p' "$B/coordinator.out" | head -1)
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "$URL" ] || die "the coordinator did not start; see $LOG"
sql() { "$BIN" sql --csv "$1" --coordinator "$URL" 2>>"$LOG" | tail -n +2; }
for _ in $(seq 50); do sql "SELECT 1" >/dev/null && break; sleep 0.1; done

for k in $(py_list "$SLOTS"); do
  name="slots$k"
  cat >"$B/$name.toml" <<TOML
name = "$name"
max_attempts = 1

[grid]
pdes = ["burgers"]
methods = ["adam"]
widths = [$SWEEP_WIDTHS]
seeds = [$SWEEP_SEEDS]

[train]
depth = $DEPTH
iters = $SWEEP_ITERS
eval_every = $EVAL_EVERY
lr = 1e-3
lr_decay = false
TOML
  "$BIN" submit "$B/$name.toml" --coordinator "$URL" >>"$LOG" 2>&1 || die "submit $name failed"
  cap=$(limit "$T_SWEEP")
  if ((cap < 10)); then
    log "(b) ours, --slots $k: skipped (time budget spent)"
    continue
  fi
  log "(b) ours, --slots $k: $NJOBS jobs (cap ${cap}s)"
  start=$(now)
  RUST_LOG=warn "$BIN" worker --coordinator "$URL" --device "$DEVICE" --slots "$k" \
    --worker-id "$name" >>"$B/worker-$name.log" 2>&1 &
  wpid=$!
  PIDS+=($wpid)
  n=0
  while :; do
    n=$(sql "SELECT COUNT(*) FROM jobs WHERE sweep_id = '$name' AND state = 'done'")
    failed=$(sql "SELECT COUNT(*) FROM jobs WHERE sweep_id = '$name' AND state = 'failed'")
    [ "${n:-0}" -ge "$NJOBS" ] && break
    if [ "${failed:-0}" -gt 0 ]; then log "(b) $name: $failed failed jobs, see $B/worker-$name.log"; break; fi
    if ! kill -0 "$wpid" 2>/dev/null; then log "(b) $name: the worker exited, see $B/worker-$name.log"; break; fi
    if [ "$(calc "$(now) - $start > $cap")" = 1 ]; then
      log "(b) $name: time limit, $n of $NJOBS jobs done"
      break
    fi
    sleep 0.2
  done
  wall=$(calc "$(now) - $start")
  kill -TERM "$wpid" 2>/dev/null
  wait "$wpid" 2>/dev/null
  jph=$(calc "${n:-0} * 3600 / $wall")
  ratio=$(calc "$JPH_TORCH > 0 ? $jph / $JPH_TORCH : 0")
  B_ROWS+=$'\n'$(printf '%-12s %5s/%-3s %8.1f %10.0f %8.2f\n' "ours slots=$k" "${n:-0}" "$NJOBS" "$wall" "$jph" "$ratio")
  log "(b) $name: ${n:-0} jobs in ${wall}s"
done
sql "SELECT j.sweep_id, j.width, j.seed, r.rel_l2_best, r.rel_l2_last, r.wall_s, r.iters_per_s FROM results r JOIN jobs j ON j.id = r.job_id ORDER BY j.sweep_id, j.width, j.seed" >"$B/ours_results.csv"
# Sanity: the packed runs train the same networks as --slots 1 (same seeds, same device).
B_CHECK=$(sql "SELECT COUNT(*), MAX(ABS(a.rel_l2_last - b.rel_l2_last) / b.rel_l2_last) FROM results a JOIN jobs ja ON ja.id = a.job_id JOIN jobs jb ON jb.config_hash = ja.config_hash AND jb.sweep_id = 'slots$(py_list "$SLOTS" | awk '{print $1}')' JOIN results b ON b.job_id = jb.id WHERE ja.sweep_id != jb.sweep_id")
log "(b) done"

# ---------------------------------------------------------------------------------------------
{
  echo "modsync GPU benchmark — $(date -u +%Y-%m-%d), device $DEVICE, torch $TORCH_VERSION"
  cat "$OUT_DIR/env.txt" | sed 's/^/  /'
  echo
  echo "(a) burgers step time, depth $DEPTH (1280 residual + 126 boundary points), ms/step"
  printf '%-6s %10s %10s %8s\n' width ours torch ratio
  echo "${A_TABLE:-  (no data, see gpu.log)}"
  echo
  echo "(b) $NJOBS jobs (widths $SWEEP_WIDTHS x seeds $SWEEP_SEEDS, $SWEEP_ITERS iters, eval every $EVAL_EVERY), one GPU"
  printf '%-12s %9s %8s %10s %8s\n' run done wall_s jobs/hour vs_torch
  echo "$B_ROWS"
  echo "  packed vs first slot count, same jobs: count, max rel diff of rel_l2_last: ${B_CHECK:-n/a}"
  echo
  echo "(c) same run on cpu and $DEVICE, $C_ITERS iters: ${C_LINE:-n/a}"
  echo
  echo "total ${SECONDS}s; files in $OUT_DIR"
} | tee "$SUMMARY"
