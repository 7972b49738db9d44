#!/usr/bin/env bash
# Differential testing against PyTorch (issue 11): for every PDE x method, trainer-core writes
# the initial parameters and the exact points of the first STEPS steps plus its own trajectory
# (trainer-core/examples/fidelity_dump.rs); bench/fidelity_torch.py, written from SPEC.md with
# nested autograd, trains the same network on the same points in f64 and compares per step
# L_r, L_b, |g_r|, |g_b|, cos(g_r, g_b), the applied update, and at the end theta.
# Targets (relative difference |a - b| / max(|b|, 1e-12), b = PyTorch): <= 1e-9 at step 0,
# <= 1e-6 over all STEPS steps and for the final theta; for discontinuous decisions (ModSync's
# masks and resets, PCGrad's and DCGD proj/avg's branches) up to the first step where the two
# implementations decide differently, which is printed.
# Prints a table PDE x method -> max relative difference; exits 1 if any case misses a target.
#
# Usage: [PDES=burgers,...] [METHODS=adam,...] [STEPS=50] [WIDTH=32] [DEPTH=3]
#        [BOUNDARY_LOSS=sum_of_means|pooled_mean] bench/fidelity.sh [--golden]
#   --golden  also rewrites trainer-core/tests/fidelity/*.json.gz, the PyTorch trajectories that
#             `cargo test` replays against trainer-core (CI has no PyTorch).
# Cases and their files go to target/fidelity/PDE-METHOD/ (inputs.json, ours.json, torch.json).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
STEPS=${STEPS:-50}
WIDTH=${WIDTH:-32}
DEPTH=${DEPTH:-3}
BOUNDARY_LOSS=${BOUNDARY_LOSS:-sum_of_means}
PDES=${PDES:-helmholtz2d,klein_gordon2d,burgers,helmholtz3d,klein_gordon3d}
BASE_METHODS="adam lra ntk multiadam pcgrad cagrad dcgd dcgd:proj dcgd:avg config mconfig mconfig:literal"
DEFAULT_METHODS="$BASE_METHODS modsync+dcgd modsync+config modsync+adam modsync+multiadam modsync+mconfig"
METHODS=${METHODS:-${DEFAULT_METHODS// /,}}
GOLDEN=0
[ "${1:-}" = --golden ] && GOLDEN=1
if [ "$GOLDEN" = 1 ] && [ "$WIDTH/$DEPTH/$BOUNDARY_LOSS" != 32/3/sum_of_means ]; then
  echo "--golden records the default case only (WIDTH=32 DEPTH=3 BOUNDARY_LOSS=sum_of_means)" >&2
  exit 2
fi

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
for pde in ${PDES//,/ }; do
  for method in ${METHODS//,/ }; do
    case_dir=$out/$pde-${method//:/-}
    rm -rf "$case_dir"
    # method:variant selects a variant of a DCGD or mconfig (dcgd:proj, mconfig:literal); the
    # PyTorch trainer reads it from the case's config.
    variant=()
    [ "$method" != "${method#*:}" ] && variant=("--${method%%:*}-variant" "${method#*:}")
    "$dump" --pde "$pde" --method "${method%%:*}" "${variant[@]}" --steps "$STEPS" \
      --width "$WIDTH" --depth "$DEPTH" --boundary-loss "$BOUNDARY_LOSS" --out "$case_dir"
    OMP_NUM_THREADS=1 "$py" bench/fidelity_torch.py run "$case_dir"
    if line=$("$py" bench/fidelity_torch.py compare "$case_dir"); then :; else status=1; fi
    line=$(awk -v label="$method" '{ $2 = label; print }' <<<"$line")
    echo "$line" | tee -a "$results"
    if [ "$GOLDEN" = 1 ]; then
      "$py" bench/fidelity_golden.py "$case_dir" "$line" "trainer-core/tests/fidelity/$pde-${method//:/-}.json.gz"
    fi
  done
done

echo
echo "fidelity vs PyTorch (f64, width $WIDTH, depth $DEPTH, L_b $BOUNDARY_LOSS, $STEPS steps), $(date -u +%Y-%m-%d): max relative difference over all steps"
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
