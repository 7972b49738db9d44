# Sourced by the bench scripts: makes sure bench/.venv has PyTorch (pip, from PyPI; the tests
# never need it). TORCH_VERSION overrides the pinned version.
TORCH_VERSION=${TORCH_VERSION:-2.9.0}
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c "import torch" 2>/dev/null; then
  python3 -m venv bench/.venv
  # --no-cache-dir: the venv is the cache; a second copy of the ~3 GB of wheels filled CI's disk.
  bench/.venv/bin/pip install -q --no-cache-dir "torch==${TORCH_VERSION}" numpy
fi
