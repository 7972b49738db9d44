#!/usr/bin/env bash
# Sweep throughput: one fixed job set (burgers, depth 5, widths 20/50/128, methods adam and dcgd,
# SEEDS seeds each, ITERS iterations) trained start to finish by four contenders, one width at a
# time, side by side on this machine, at most 2 cores each:
#   1 torch-jobs   PyTorch as users run sweeps today: one process per job, 2 at a time, 1 thread
#                  each (nested autograd; bench/sweep_torch.py job)
#   2 torch-func   PyTorch's strongest form: one torch.func ensemble per (width, method), 2 threads
#                  (bench/sweep_torch.py ensemble)
#   3 ours         a coordinator and two `modsync worker --slots 1 --pack 1` processes,
#                  RAYON_NUM_THREADS=1 each
#   4 ours-packs   the same with `--pack PACK` (default 4)
# Prints jobs/hour per width for each, the ratios against the targets of issue 15 ((4) >= 3x (1)
# at widths 20 and 50 and >= 1.5x at 128; (4) >= 2x (3) at 20 and 50; (4) >= 1x (2) everywhere),
# and each contender's median relative L2 (best evaluation) per method with the seeds' range.
# A contender's time for a width runs from its first process start to its last result.
#
# Usage: [WIDTHS=20,50,128] [SEEDS=4] [ITERS=1000] [PACK=4] [CONTENDERS=1,2,3,4]
#        bench/sweep-throughput.sh
# PyTorch is installed into bench/.venv on the first run (pip, from PyPI); tests never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
WIDTHS=${WIDTHS:-20,50,128}
SEEDS=${SEEDS:-4}
ITERS=${ITERS:-1000}
PACK=${PACK:-4}
CONTENDERS=${CONTENDERS:-1,2,3,4}
METHODS="adam dcgd"
source bench/lib/torch-venv.sh
python=$PWD/bench/.venv/bin/python
# --workspace: per-package feature resolution would rebuild Burn.
cargo build --release -q --workspace --bin modsync
bin=$PWD/target/release/modsync
tmp=$(mktemp -d)
coordinator=
cleanup() {
  [ -n "$coordinator" ] && kill "$coordinator" 2>/dev/null && wait "$coordinator" 2>/dev/null
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
seeds=$(seq 0 $((SEEDS - 1)) | tr '\n' ' ')
now_ms() { date +%s%3N; }
"$bin" reference --pde burgers --out "$tmp/ref.csv" >/dev/null

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "WIDTHS=$WIDTHS SEEDS=$SEEDS ITERS=$ITERS PACK=$PACK"

# Each contender appends `contender width method seed rel_l2` to rows.txt and
# `contender width seconds jobs` to times.txt.
torch_jobs() {
  local w=$1 start
  start=$(now_ms)
  for m in $METHODS; do for s in $seeds; do echo "$m $s"; done; done |
    (cd bench && xargs -P 2 -L 1 sh -c 'OMP_NUM_THREADS=1 "$0" sweep_torch.py job --width '"$w"' \
      --method "$1" --seed "$2" --iters '"$ITERS"' --reference '"$tmp/ref.csv"' --threads 1' \
      "$python") | sed 's/^/torch-jobs /' >>"$tmp/rows.txt"
  echo "torch-jobs $w $((($(now_ms) - start))) $((SEEDS * 2))" >>"$tmp/times.txt"
}

torch_func() {
  local w=$1 start
  start=$(now_ms)
  for m in $METHODS; do
    # shellcheck disable=SC2086
    (cd bench && OMP_NUM_THREADS=2 "$python" sweep_torch.py ensemble --width "$w" --method "$m" \
      --seeds $seeds --iters "$ITERS" --reference "$tmp/ref.csv" --threads 2) |
      sed 's/^/torch-func /' >>"$tmp/rows.txt"
  done
  echo "torch-func $w $((($(now_ms) - start))) $((SEEDS * 2))" >>"$tmp/times.txt"
}

start_coordinator() {
  local port
  port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  url=http://127.0.0.1:$port
  "$bin" coordinator --db "$tmp/store.db" --listen "127.0.0.1:$port" >"$tmp/coordinator.log" 2>&1 &
  coordinator=$!
  for _ in $(seq 100); do
    "$bin" status --coordinator "$url" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "the coordinator did not start:" >&2
  cat "$tmp/coordinator.log" >&2
  exit 1
}

# ours NAME WIDTH PACK: submits the width's jobs as sweep NAME-wWIDTH, runs two 1-thread workers.
ours() {
  local name=$1 w=$2 pack=$3 sweep=$1-w$2 start
  cat >"$tmp/$sweep.toml" <<EOF
name = "$sweep"
[grid]
pdes = ["burgers"]
methods = ["adam", "dcgd"]
widths = [$w]
seeds = [${seeds// /, }]
[train]
depth = 5
iters = $ITERS
EOF
  sed -i 's/, ]/]/' "$tmp/$sweep.toml"
  "$bin" submit "$tmp/$sweep.toml" --coordinator "$url" >/dev/null
  start=$(now_ms)
  local workers=()
  for i in 1 2; do
    RAYON_NUM_THREADS=1 "$bin" worker --coordinator "$url" --slots 1 --pack "$pack" \
      --exit-when-idle 2 --worker-id "$sweep-$i" >"$tmp/$sweep-$i.log" 2>&1 &
    workers+=($!)
  done
  wait "${workers[@]}"
  "$bin" sql --coordinator "$url" --csv \
    "SELECT j.width, j.method, j.seed, r.rel_l2_best, r.finished_at_ms FROM results r
     JOIN jobs j ON j.id = r.job_id WHERE j.sweep_id = '$sweep'" | tail -n +2 | tr ',' ' ' \
    >"$tmp/$sweep.csv"
  local done_jobs last
  done_jobs=$(wc -l <"$tmp/$sweep.csv")
  [ "$done_jobs" = $((SEEDS * 2)) ] || { echo "$sweep: $done_jobs results" >&2; exit 1; }
  last=$(cut -d' ' -f5 "$tmp/$sweep.csv" | sort -n | tail -n 1)
  cut -d' ' -f1-4 "$tmp/$sweep.csv" | sed "s/^/$name /" >>"$tmp/rows.txt"
  echo "$name $w $((last - start)) $done_jobs" >>"$tmp/times.txt"
}

for w in ${WIDTHS//,/ }; do
  case ",$CONTENDERS," in *,1,*) torch_jobs "$w" ;; esac
  case ",$CONTENDERS," in *,2,*) torch_func "$w" ;; esac
  case ",$CONTENDERS," in *,3,*|*,4,*) [ -n "$coordinator" ] || start_coordinator ;; esac
  case ",$CONTENDERS," in *,3,*) ours ours "$w" 1 ;; esac
  case ",$CONTENDERS," in *,4,*) ours ours-packs "$w" "$PACK" ;; esac
  echo "width $w done" >&2
done

"$python" - "$tmp/rows.txt" "$tmp/times.txt" <<'PY'
import statistics, sys
from collections import defaultdict
names = ["torch-jobs", "torch-func", "ours", "ours-packs"]
errs = defaultdict(list)
for line in open(sys.argv[1]):
    c, w, m, s, e = line.split()
    errs[c, int(w), m].append(float(e))
rate = {}
for line in open(sys.argv[2]):
    c, w, ms, n = line.split()
    rate[c, int(w)] = int(n) / (int(ms) / 1000) * 3600
widths = sorted({w for _, w in rate})
present = [c for c in names if any((c, w) in rate for w in widths)]
print("jobs/hour (higher is better)")
print("width " + " ".join(f"{c:>11}" for c in present)
      + "  (4)/(1) target  (4)/(3) target  (4)/(2) target")
def ratio(a, b, w):
    return rate[a, w] / rate[b, w] if (a, w) in rate and (b, w) in rate else float("nan")
for w in widths:
    cells = " ".join(f"{rate.get((c, w), float('nan')):>11.0f}" for c in present)
    t1 = 3.0 if w in (20, 50) else 1.5
    t3 = "2.0" if w in (20, 50) else "  -"
    print(f"{w:>5} {cells}  {ratio('ours-packs', 'torch-jobs', w):7.2f} {t1:6.1f}"
          f"  {ratio('ours-packs', 'ours', w):7.2f} {t3:>6}  {ratio('ours-packs', 'torch-func', w):7.2f} {1.0:6.1f}")
print("\nrelative L2 at the best evaluation: median [min-max] over seeds")
methods = sorted({m for _, _, m in errs})
for w in widths:
    for m in methods:
        cells = []
        for c in present:
            v = errs.get((c, w, m))
            cells.append(f"{statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]" if v else "-")
        print(f"{w:>5} {m:<5} " + "  ".join(f"{c}: {x}" for c, x in zip(present, cells)))
PY
