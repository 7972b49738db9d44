#!/usr/bin/env bash
# Builds `modsync` with Burn's LibTorch backend (burn-tch), for `--device cuda:N` / `cpu-tch`.
#
# burn-tch links against libtorch. Instead of downloading a libtorch archive (which needs the
# internet at build time and a version-matched archive), this builds against the libtorch that
# ships inside a pip-installed PyTorch (torch-sys: LIBTORCH_USE_PYTORCH=1). The binary then needs
# that PyTorch's lib directory at run time (LD_LIBRARY_PATH), which this script prints.
#
# Usage: deploy/gpu/build-worker.sh
# Environment (all optional):
#   TORCH_VERSION=2.9.0        PyTorch to build against. burn-tch 0.22 (torch-sys 0.22) expects
#                              2.9.0; any other version also needs BYPASS_VERSION_CHECK=1.
#   BYPASS_VERSION_CHECK=0     1: build against a PyTorch other than 2.9.0
#                              (LIBTORCH_BYPASS_VERSION_CHECK=1). The GPU machines run 2.11.0.
#   VENV=                      Python venv holding that PyTorch (default: bench/.venv for 2.9.0,
#                              target/venv-torch-VERSION otherwise); created if missing, and torch
#                              is installed only if the venv lacks TORCH_VERSION. Point it at an
#                              existing one to skip the multi-GB install.
#   TORCH_INDEX_URL=           pip index for torch (e.g. https://download.pytorch.org/whl/cu130);
#                              default: PyPI (its Linux wheels bring CUDA).
#   CARGO_TARGET_DIR=          default target/tch for 2.9.0, target/tch-VERSION otherwise (one
#                              build directory per PyTorch version: torch-sys does not notice a
#                              changed PyTorch by itself).
#   PYTHON=python3             Python used to create the venv.
#
# Idempotent: a second run with the same settings reinstalls nothing and only rebuilds what
# changed. Builds the `modsync` binary and the `step_time` example (bench/gpu.sh uses both).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

TORCH_VERSION=${TORCH_VERSION:-2.9.0}
BYPASS_VERSION_CHECK=${BYPASS_VERSION_CHECK:-0}
EXPECTED_TORCH=2.9.0 # what torch-sys 0.22 checks for
if [ "$TORCH_VERSION" = "$EXPECTED_TORCH" ]; then
  default_venv=bench/.venv # shared with bench/step-time.sh, which installs 2.9.0 there too
else
  default_venv=target/venv-torch-$TORCH_VERSION # ignored by git, like the build
fi
VENV=${VENV:-$default_venv}
PYTHON=${PYTHON:-python3}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
if [ "$TORCH_VERSION" = "$EXPECTED_TORCH" ]; then
  default_target="$ROOT/target/tch"
else
  default_target="$ROOT/target/tch-$TORCH_VERSION"
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$default_target}
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac

say() { printf '[build-worker] %s\n' "$*" >&2; }
die() { printf '[build-worker] error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (https://rustup.rs)"

if [ "$TORCH_VERSION" != "$EXPECTED_TORCH" ] && [ "$BYPASS_VERSION_CHECK" != 1 ]; then
  die "burn-tch 0.22 expects PyTorch $EXPECTED_TORCH, not $TORCH_VERSION; set BYPASS_VERSION_CHECK=1 to build against $TORCH_VERSION anyway"
fi

# 1. The venv and its PyTorch.
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=...)"
  say "creating venv $VENV"
  "$PYTHON" -m venv "$VENV" || die "cannot create a venv with $PYTHON (Debian/Ubuntu: apt-get install python3-venv)"
fi
installed_torch() {
  "$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true
}
have=$(installed_torch)
if [ "$have" != "$TORCH_VERSION" ]; then
  say "installing torch==$TORCH_VERSION into $VENV (found: ${have:-none}; several GB)"
  pip_args=(install --disable-pip-version-check "torch==$TORCH_VERSION")
  [ -n "$TORCH_INDEX_URL" ] && pip_args+=(--index-url "$TORCH_INDEX_URL")
  "$VENV/bin/python" -m pip "${pip_args[@]}" || die "pip could not install torch==$TORCH_VERSION"
  have=$(installed_torch)
  [ "$have" = "$TORCH_VERSION" ] || die "torch $TORCH_VERSION installed but cannot be imported (python says: ${have:-import failed})"
else
  say "using torch $have from $VENV"
fi
TORCH_DIR=$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)
TORCH_LIB="$TORCH_DIR/lib"
[ -f "$TORCH_LIB/libtorch_cpu.so" ] || die "no libtorch_cpu.so in $TORCH_LIB"
CUDA_BUILD=$("$VENV/bin/python" -c 'import torch; print(torch.version.cuda or "none")' 2>/dev/null)

# 2. One build directory per PyTorch version.
mkdir -p "$TARGET_DIR"
stamp="$TARGET_DIR/torch-version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$TORCH_VERSION" ]; then
  die "$TARGET_DIR was built against torch $(cat "$stamp"), not $TORCH_VERSION: use another CARGO_TARGET_DIR (torch-sys would keep the old build)"
fi

# 3. Build.
build_env=(PATH="$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1 CARGO_TARGET_DIR="$TARGET_DIR")
[ "$BYPASS_VERSION_CHECK" = 1 ] && build_env+=(LIBTORCH_BYPASS_VERSION_CHECK=1)
say "building modsync --features tch against torch $TORCH_VERSION (CUDA $CUDA_BUILD) into $TARGET_DIR"
# --workspace with the feature named by package: per-package feature resolution would rebuild Burn.
env "${build_env[@]}" cargo build --release --workspace --features modsync/tch \
  --bin modsync --example step_time || die "cargo build failed (see above)"
echo "$TORCH_VERSION" >"$stamp"

BIN="$TARGET_DIR/release/modsync"
# Stripped copies to carry to other machines (the release profile keeps line tables: ~290 MB).
mkdir -p "$TARGET_DIR/dist"
if command -v strip >/dev/null; then
  strip -o "$TARGET_DIR/dist/modsync" "$BIN"
  strip -o "$TARGET_DIR/dist/step_time" "$TARGET_DIR/release/examples/step_time"
else
  cp "$BIN" "$TARGET_DIR/dist/modsync"
  cp "$TARGET_DIR/release/examples/step_time" "$TARGET_DIR/dist/step_time"
fi
echo "$TORCH_VERSION" >"$TARGET_DIR/dist/torch-version" # bench/gpu.sh checks it
LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$BIN" --version >/dev/null ||
  die "the built binary does not start with LD_LIBRARY_PATH=$TORCH_LIB"
say "check: cpu-tch trains one step"
LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$BIN" train --device cpu-tch \
  --width 8 --depth 2 --iters 2 --eval-every 1 --test-grid 4 >/dev/null ||
  die "the built binary cannot train on cpu-tch"

cat <<MSG

Built: $BIN
       $TARGET_DIR/release/examples/step_time
       stripped copies to carry: $TARGET_DIR/dist/{modsync,step_time} ($(du -sh "$TARGET_DIR/dist" | cut -f1))
Against: torch $TORCH_VERSION (CUDA $CUDA_BUILD), $TORCH_LIB

Run it with that PyTorch's libraries on the library path:

  export LD_LIBRARY_PATH=$TORCH_LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
  $BIN train --device cuda:0 --width 128 --iters 2000
  $BIN worker --coordinator http://HOST:50051 --device cuda:0 --slots 4

On another machine (no Rust needed), carry dist/ and use that machine's PyTorch $TORCH_VERSION:
  export LD_LIBRARY_PATH=\$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib
  bench/gpu.sh OUT_DIR $TARGET_DIR/dist/modsync     # the GPU benchmark
MSG
