#!/usr/bin/env bash
# Writes this directory's committed results from the store of examples/capacity-failure.toml
# (run it first: `cargo run --release -- sweep run examples/capacity-failure.toml`):
#   burgers.csv, burgers.svg   capacity-scaling curves (best relative L2 vs width, per method)
#   jobs.csv                   every job: best / at-minimum-loss / last relative L2, best iter
#   cos_rb.{csv,svg}           cos(g_r, g_b) over iterations per width, dcgd and modsync+dcgd
#   cos_rb_per_seed.{csv,svg}  the same per seed (the collapse of one seed is not averaged away)
#   rel_l2.{csv,svg}, loss_r.{csv,svg}, loss_b.{csv,svg}   the same for the test error and losses
#   masks.csv                  modsync+dcgd: kept and task-exclusive fraction per layer at the end
# Usage: [DB=.modsync/capacity-failure/sweep.db] results/capacity-failure/export.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
db=${DB:-.modsync/capacity-failure/sweep.db}
out=results/capacity-failure
sweep=capacity-failure
# --workspace: per-package feature resolution would rebuild Burn.
cargo build --release -q --workspace --bin modsync
modsync=target/release/modsync

"$modsync" curves "$sweep" --db "$db" --out "$out"
"$modsync" sql --db "$db" --csv "
  SELECT j.pde, j.method, j.width, j.seed, j.state, r.rel_l2_best, r.best_iter,
         r.rel_l2_min_loss, r.min_loss_iter, r.rel_l2_last, r.iters_done, r.diverged, r.skipped_steps, r.wall_s
  FROM jobs j LEFT JOIN results r ON r.job_id = j.id
  WHERE j.sweep_id = '$sweep'
  ORDER BY j.pde, j.method, j.width, j.seed" >"$out/jobs.csv"
"$modsync" history "$sweep" --db "$db" --metric cos_rb --method dcgd --method modsync+dcgd --out "$out"
"$modsync" history "$sweep" --db "$db" --metric cos_rb --method dcgd --method modsync+dcgd --per-seed --out "$out"
for metric in rel_l2 loss_r loss_b; do
  "$modsync" history "$sweep" --db "$db" --metric "$metric" --out "$out"
done
# The last evaluation of every modsync+dcgd job: kept and exclusive fraction of each masked
# layer (l0 = input layer … l5 = output layer at depth 5).
layers=""
for l in 0 1 2 3 4 5; do
  layers="$layers, json_extract(m.extra, '\$.kept_frac_l$l') AS kept_l$l"
  layers="$layers, json_extract(m.extra, '\$.exclusive_frac_l$l') AS exclusive_l$l"
done
"$modsync" sql --db "$db" --csv "
  SELECT j.width, j.seed, m.iter $layers
  FROM jobs j JOIN metrics m ON m.job_id = j.id
  WHERE j.sweep_id = '$sweep' AND j.method = 'modsync+dcgd'
    AND m.iter = (SELECT max(iter) FROM metrics WHERE job_id = j.id)
  ORDER BY j.width, j.seed" >"$out/masks.csv"
echo "wrote $out/"
