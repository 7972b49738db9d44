#!/usr/bin/env bash
# The ablation at width 512 (issue 16; the paper's Table 2 setting): burgers, depth 5, seed 0,
# the capacity-failure sweep's budget (2,000 iterations, lr 1e-3, f32). One row per reading of
# ModSync — its modes and the choices SPEC.md marks as ours — and per reading of L_b, at seed 0;
# the two readings closest to Adam at seed 0 also at seed 1, to see whether the gap is more than
# the seed. Rows whose config equals a job of the capacity-failure sweep (adam, dcgd,
# modsync+dcgd full, seeds 0 and 1) are taken from its store rather than trained again (the CPU
# backend is deterministic on one kind of CPU).
# Two rows train at a time, one thread each; a finished row (its result.json) is not re-run, so
# after a stop the same command continues. Writes ablation/<row>/{result.json,metrics.csv} and
# ablation.csv (row, seed, method, flags, best / min-loss / last relative L2, best iter).
# Usage: [ROWS=name,...] [DB=.modsync/capacity-failure/sweep.db] results/capacity-failure/ablation.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/capacity-failure/ablation
db=${DB:-.modsync/capacity-failure/sweep.db}
cargo build --release -q --workspace --bin modsync
modsync=$PWD/target/release/modsync
# The sweep's [train] for one of its jobs (every flag a plain word).
# --reading spec_v1: these rows were run before readings existed (docs/readings.md).
base="--pde burgers --width 512 --depth 5 --iters 2000 --lr 1e-3 --eval-every 100 --reading spec_v1"

# name | seed | method | extra flags (a row's directory is <name> at seed 0, <name>_seed<N> else)
rows="
pooled_dcgd|0|dcgd|--boundary-loss pooled_mean
pooled_modsync_dcgd|0|modsync+dcgd|--boundary-loss pooled_mean
dual_thresholds|0|modsync+dcgd|--modsync.mode dual_thresholds
sparsity_only|0|modsync+dcgd|--modsync.mode sparsity_only
rw_per_layer|0|modsync+dcgd|--modsync.rw per_layer
no_threshold_routing|0|modsync+dcgd|--modsync.route_thresholds false
detached_rw|0|modsync+dcgd|--modsync.detach_rw true
hidden_layers_only|0|modsync+dcgd|--modsync.mask_first false --modsync.mask_last false
rw_per_layer|1|modsync+dcgd|--modsync.rw per_layer
no_threshold_routing|1|modsync+dcgd|--modsync.route_thresholds false
"
dir_of() { if [ "$2" = 0 ]; then echo "$1"; else echo "$1_seed$2"; fi; }
mkdir -p "$out"
todo=()
while IFS='|' read -r name seed method flags; do
  [ -z "$name" ] && continue
  [ -n "${ROWS:-}" ] && [[ ",$ROWS," != *",$name,"* ]] && continue
  [ -f "$out/$(dir_of "$name" "$seed")/result.json" ] && continue
  todo+=("$name|$seed|$method|$flags")
done <<<"$rows"
train_row() {
  IFS='|' read -r name seed method flags <<<"$1"
  dir=$out/$(dir_of "$name" "$seed")
  rm -rf "$dir.partial"
  # shellcheck disable=SC2086 # base and flags are lists of plain words
  RAYON_NUM_THREADS=1 "$modsync" train $base --seed "$seed" --method "$method" $flags \
    --out "$dir.partial" >"$dir.log" 2>&1
  mv "$dir.partial" "$dir"
}
export -f train_row dir_of
export out modsync base
if [ ${#todo[@]} -gt 0 ]; then
  printf '%s\n' "${todo[@]}" | xargs -d '\n' -P 2 -I{} bash -c 'train_row "$1"' _ {}
fi

# The table: sweep rows from the store, ablation rows from their result.json.
{
  echo "row,seed,method,flags,rel_l2_best,best_iter,rel_l2_min_loss,rel_l2_last"
  "$modsync" sql --db "$db" --csv "
    SELECT CASE j.method WHEN 'modsync+dcgd' THEN 'full' ELSE j.method END, j.seed, j.method, '',
           r.rel_l2_best, r.best_iter, r.rel_l2_min_loss, r.rel_l2_last
    FROM jobs j JOIN results r ON r.job_id = j.id
    WHERE j.sweep_id = 'capacity-failure' AND j.width = 512
    ORDER BY j.method, j.seed" | tail -n +2
  while IFS='|' read -r name seed method flags; do
    result=$out/$(dir_of "$name" "$seed")/result.json
    [ -z "$name" ] || [ ! -f "$result" ] && continue
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(",".join(sys.argv[2:6] + [repr(r["rel_l2_best"]), str(r["best_iter"]), repr(r["rel_l2_min_loss"]), repr(r["rel_l2_last"])]))' \
      "$result" "$name" "$seed" "$method" "$flags"
  done <<<"$rows"
} >results/capacity-failure/ablation.csv
cat results/capacity-failure/ablation.csv
