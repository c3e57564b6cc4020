#!/usr/bin/env bash
# The main job end to end on the embedded demo corpus:
#   1. build the demo corpus from Debian-shipped sounds (speech, music, events, mixtures);
#   2. turn it into TFDS ArrayRecord splits with precomputed fbank features.
# Stages that later land (train, evaluate) are appended here.
# Usage: bash launch/demo.sh [OUT_DIR, default ./demo_out] ; NUM_CLIPS=... overrides the size.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-demo_out}"
NUM_CLIPS="${NUM_CLIPS:-2000}"
WORKERS="${WORKERS:-$(nproc)}"
bash launch/setup_env.sh test,reference
PY=.venv/bin/python

if [ ! -f "$OUT/corpus/manifest.jsonl" ]; then
  $PY -m audiolm_pt.data.demo_corpus --out="$OUT/corpus" --num_clips="$NUM_CLIPS" --seed=0 \
    --workers="$WORKERS"
fi
$PY -m audiolm_pt.data.builders --format=demo --source_dir="$OUT/corpus" \
  --data_dir="$OUT/tfds" --workers="$WORKERS"
echo "demo: corpus in $OUT/corpus, ArrayRecord splits in $OUT/tfds"
