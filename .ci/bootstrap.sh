#!/usr/bin/env bash
# Creates .venv with everything bso-deploy needs, including the optional Lava, lava-dl and ONNX stack.
# Idempotent: the Makefile calls it only when .venv/.bootstrap-stamp is missing or older than this file.
# Facts behind each step: ../shared/reference/environment.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
# pip on these machines warns once per package about an unused local index; keep the log readable.
pip_install() {
  "$VENV/bin/python" -m pip --disable-pip-version-check install --quiet "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi

echo "[bootstrap] torch and torchvision (torchvision decides the torch version)"
pip_install "torch==2.14.1" "torchvision==0.29.1"

# scikit-learn and matplotlib are optional extras of the package (digits, plots); make test and make demo use them.
echo "[bootstrap] numerical, NIR, ONNX and tooling packages"
pip_install \
  "numpy>=1.24,<2" scipy "networkx<=2.8.7" "asteval>=0.9.31,<0.10" \
  scikit-learn h5py matplotlib "opencv-python-headless<4.11" \
  "nir==1.0.8" "nirtorch==2.6" onnx onnxruntime \
  tqdm pytest pytest-timeout hypothesis ruff "import-linter==2.16" "setuptools>=70" wheel

# Third-party SNN frameworks, for the tests that run graphs written by their own NIR exporters (docs/nir.md).
# snnTorch and Norse install normally. Sinabs 3.1.3 and Rockpool 3.1.0 pin nir<=1.0.4 and must sit next to
# nir 1.0.8, so they go in with --no-deps after their real run-time needs (Sinabs: pbr, numpy, torch, nirtorch,
# matplotlib; Rockpool core: numpy, scipy; its torch modules use torch). Sinabs's samna is for its chips only.
echo "[bootstrap] snnTorch 1.0.0, Norse 1.1.0; Sinabs 3.1.3 and Rockpool 3.1.0 (no deps)"
pip_install "snntorch==1.0.0" "norse==1.1.0" pbr
pip_install "tonic==1.7.0"  # the events extra: N-MNIST and DVS Gesture readers and ToFrame (bso_deploy.event_data)
pip_install --no-deps "sinabs==3.1.3" "rockpool==3.1.0"

# lava-nc 0.10.0 and lava-dl 0.6.0 declare Requires-Python <3.11 and pin old torch; their real run-time
# needs are installed above. bso_deploy.hardware carries the one Python 3.11 fix lava needs.
echo "[bootstrap] lava-nc 0.10.0 and lava-dl 0.6.0 (no deps, any Python)"
pip_install --no-deps --ignore-requires-python "lava-nc==0.10.0" "lava-dl==0.6.0"

echo "[bootstrap] bso-deploy (editable)"
pip_install --no-deps --no-build-isolation -e .

touch "$VENV/.bootstrap-stamp"
echo "[bootstrap] done: $VENV"
