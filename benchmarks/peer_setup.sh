#!/usr/bin/env bash
# Installs torchaudio into ./.venv for the PyTorch peers of benchmarks/input_pipeline.py.
# PyPI's torchaudio wheels are built against CUDA torch, and their compiled extension fails
# to load beside the CPU torch pinned here; torchaudio's loader runs without the extension
# when its library files are absent, and what the peer uses (compliance.kaldi.fbank,
# functional.resample) is plain torch code. So the wheel goes in without its dependencies
# and without its compiled libraries. The benchmark's JSON records both versions.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCHAUDIO="torchaudio==2.11.1"
.venv/bin/pip install -q --no-deps "$TORCHAUDIO"
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -f "$site"/torchaudio/lib/*.so
.venv/bin/python -c "import torchaudio.compliance.kaldi, torchaudio.functional; print('torchaudio', torchaudio.__version__, 'ready')"
