#!/usr/bin/env bash
# The GPU check in one command: on a machine with one NVIDIA GPU and jax, flax, optax and orbax
# installed (no grain, TFDS, clu, ml_collections or TensorFlow), installs what the train-step
# path lacks from a wheel folder, then measures the base configs' train step in bfloat16 with
# float32 parameters (`benchmarks/train_step.py`: examples/s, TFLOP/s, MFU against the device's
# table peak and a bf16 matmul peak measured in the same run, argument/temporary/peak memory,
# batch halved until it fits) and writes benchmarks/results/gpu_<device>.json.
#
#   bash benchmarks/gpu_check.sh --download   # where pip reaches PyPI: fills .whl/gpu_check
#   bash benchmarks/gpu_check.sh              # on the GPU machine (carry .whl/gpu_check there)
#   bash benchmarks/gpu_check.sh --smoke      # on CPU: the same path at toy sizes (tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=.whl/gpu_check
# What the configs and the train-step path import beyond the GPU image's packages.
NEEDED=(ml_collections sentencepiece tokenizers soundfile soxr safetensors)

mode=run
for arg in "$@"; do
  case "$arg" in
    --smoke) mode=smoke ;;
    --download) mode=download ;;
    *) echo "gpu_check.sh: unknown argument $arg (expected --smoke or --download)" >&2; exit 2 ;;
  esac
done

if [[ $mode == download ]]; then
  for version in 3.11 3.12; do  # the pinned set has no 3.10 wheels
    "$PYTHON" -m pip download --quiet --only-binary=:all: --python-version "$version" \
      --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -c constraints.txt \
      -d "$WHEELS" "${NEEDED[@]}"
  done
  rm -f "$WHEELS"/numpy-*  # jax brings its own; 16 MB a version would crowd what is carried
  echo "wheels for ${NEEDED[*]} in $WHEELS ($(du -sh "$WHEELS" | cut -f1))"
  exit 0
fi

missing=()
for module in "${NEEDED[@]}"; do
  "$PYTHON" -c "import $module" 2>/dev/null || missing+=("$module")
done
if ((${#missing[@]})); then
  if [[ -d $WHEELS ]]; then
    "$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" "${missing[@]}"
  else
    "$PYTHON" -m pip install --quiet -c constraints.txt "${missing[@]}"
  fi
fi

if [[ $mode == smoke ]]; then
  exec "$PYTHON" benchmarks/train_step.py --smoke --dtype=bfloat16 \
    --out="${GPU_CHECK_OUT:-/tmp/gpu_check_smoke.json}"
fi
device=$("$PYTHON" -c "import jax; print(jax.devices()[0].device_kind.replace(' ', '_'))")
exec timeout 480 "$PYTHON" benchmarks/train_step.py --configs=contrastive:base,captioning:base,hybrid:base \
  --dtype=bfloat16 --out="benchmarks/results/gpu_${device}.json"
