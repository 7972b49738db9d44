#!/usr/bin/env bash
# Differential testing against PyTorch (issue 11): for every PDE x method, trainer-core writes
# the initial parameters and the exact points of the first STEPS steps plus its own trajectory
# (trainer-core/examples/fidelity_dump.rs); bench/fidelity_torch.py, written from SPEC.md with
# nested autograd, trains the same network on the same points in f64 and compares per step
# L_r, L_b, |g_r|, |g_b|, cos(g_r, g_b), the applied update, and at the end theta.
# Targets (relative difference |a - b| / max(|b|, 1e-12), b = PyTorch): <= 1e-9 at step 0,
# <= 1e-8 over all STEPS steps and for the final theta; for discontinuous decisions (ModSync's
# masks and resets, PCGrad's and DCGD proj/avg's branches) up to the first step where the two
# implementations decide differently, which is printed (a golden never stops early: see --golden).
# Prints a table PDE x method -> max relative difference; exits 1 if any case misses a target.
#
# Usage: [PDES=burgers,...] [METHODS=adam,...] [STEPS=50] [WIDTH=32] [DEPTH=3]
#        [READING=paper|spec_v1] [BOUNDARY_LOSS=sum_of_means|pooled_mean|grouped]
#        bench/fidelity.sh [--golden]
#   READING        the benchmarks' reading (docs/readings.md), default paper
#   BOUNDARY_LOSS  overrides the reading's L_b; unset: the reading's (paper: grouped, spec_v1:
#                  sum_of_means)
#   --golden  also rewrites trainer-core/tests/fidelity/*.json.gz, the PyTorch trajectories that
#             `cargo test` replays against trainer-core (CI has no PyTorch); default case only.
#             bench/fidelity_golden.py writes a case's golden only if the case passes over all its
#             steps; where a mask or branch is decided differently from step D > 0 on (a near
#             tie), the case is recorded again over its first D steps, so that the replay still
#             compares every step of every golden.
# Cases and their files go to target/fidelity/PDE-METHOD/ (inputs.json, ours.json, torch.json).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
STEPS=${STEPS:-50}
WIDTH=${WIDTH:-32}
DEPTH=${DEPTH:-3}
READING=${READING:-paper}
BOUNDARY_LOSS=${BOUNDARY_LOSS:-}
PDES=${PDES:-helmholtz2d,klein_gordon2d,burgers,helmholtz3d,klein_gordon3d}
BASE_METHODS="adam lra ntk multiadam pcgrad cagrad dcgd dcgd:proj dcgd:avg config mconfig mconfig:literal"
DEFAULT_METHODS="$BASE_METHODS modsync+dcgd modsync+config modsync+adam modsync+multiadam modsync+mconfig"
METHODS=${METHODS:-${DEFAULT_METHODS// /,}}
GOLDEN=0
[ "${1:-}" = --golden ] && GOLDEN=1
if [ "$GOLDEN" = 1 ] && [ "$STEPS/$WIDTH/$DEPTH/$READING/$BOUNDARY_LOSS" != 50/32/3/paper/ ]; then
  echo "--golden records the default case only (STEPS=50 WIDTH=32 DEPTH=3 READING=paper, BOUNDARY_LOSS unset)" >&2
  exit 2
fi
case_args=(--width "$WIDTH" --depth "$DEPTH" --reading "$READING")
[ -n "$BOUNDARY_LOSS" ] && case_args+=(--boundary-loss "$BOUNDARY_LOSS")

source bench/lib/torch-venv.sh
py=bench/.venv/bin/python
cargo build --release -q --workspace --example fidelity_dump
dump=target/release/examples/fidelity_dump
out=target/fidelity
mkdir -p "$out"
results=$out/results.txt
[ "$GOLDEN" = 1 ] && mkdir -p trainer-core/tests/fidelity
: >"$results"
status=0
# run_case PDE METHOD STEPS DIR: dumps the case, trains it in PyTorch, prints the comparison line
# (with the method's label); fails where the comparison fails (or a program fails: then the line
# says ERROR).
run_case() {
  local pde=$1 method=$2 steps=$3 dir=$4 line rc=0
  rm -rf "$dir"
  # method:variant selects a variant of a DCGD or mconfig (dcgd:proj, mconfig:literal); the
  # PyTorch trainer reads it from the case's config.
  local variant=()
  [ "$method" != "${method#*:}" ] && variant=("--${method%%:*}-variant" "${method#*:}")
  if ! "$dump" --pde "$pde" --method "${method%%:*}" "${variant[@]}" --steps "$steps" \
    "${case_args[@]}" --out "$dir" || ! OMP_NUM_THREADS=1 "$py" bench/fidelity_torch.py run "$dir"; then
    echo "$pde $method nan nan - - ERROR"
    return 1
  fi
  line=$("$py" bench/fidelity_torch.py compare "$dir") || rc=1
  awk -v label="$method" '{ $2 = label; print }' <<<"$line"
  return "$rc"
}
for pde in ${PDES//,/ }; do
  for method in ${METHODS//,/ }; do
    case_dir=$out/$pde-${method//:/-}
    if line=$(run_case "$pde" "$method" "$STEPS" "$case_dir"); then :; else status=1; fi
    echo "$line" | tee -a "$results"
    if [ "$GOLDEN" = 1 ]; then
      golden_case=$case_dir
      diverge=$(awk '{ print $6 }' <<<"$line")
      if [ "$diverge" != - ] && [ "$diverge" -gt 0 ]; then
        golden_case=$case_dir-golden
        echo "$pde $method: a decision differs from step $diverge on; its golden holds steps 0..$((diverge - 1))" >&2
        run_case "$pde" "$method" "$diverge" "$golden_case" >&2 || status=1
      fi
      "$py" bench/fidelity_golden.py "$golden_case" "$method" \
        "trainer-core/tests/fidelity/$pde-${method//:/-}.json.gz" || status=1
    fi
  done
done

echo
echo "fidelity vs PyTorch (f64, width $WIDTH, depth $DEPTH, reading $READING, L_b ${BOUNDARY_LOSS:-as the reading}, $STEPS steps), $(date -u +%Y-%m-%d): max relative difference over all steps"
echo "(in brackets: the step where the two first decide a mask/branch differently; only steps before it count)"
awk '
  { pde = $1; m = $2; key = m SUBSEP pde; v[key] = $4 ($6 != "-" ? " [" $6 "]" : "") ($7 == "PASS" ? "" : " FAIL")
    if (!(m in seen_m)) { seen_m[m] = 1; ms[++nm] = m }
    if (!(pde in seen_p)) { seen_p[pde] = 1; ps[++np] = pde } }
  END {
    printf "| method |"; for (j = 1; j <= np; j++) printf " %s |", ps[j]; print ""
    printf "|---|"; for (j = 1; j <= np; j++) printf "---|"; print ""
    for (i = 1; i <= nm; i++) { printf "| %s |", ms[i]; for (j = 1; j <= np; j++) printf " %s |", v[ms[i], ps[j]]; print "" }
  }' "$results"
[ "$status" = 0 ] && echo "all cases within targets" || echo "SOME CASES MISS THEIR TARGETS"
exit "$status"
