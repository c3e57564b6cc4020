#!/usr/bin/env bash
# The main job end to end on the embedded demo corpus:
#   1. build the demo corpus from Debian-shipped sounds (speech, music, events, mixtures);
#   2. turn it into TFDS ArrayRecord splits with precomputed fbank features;
#   3. train the demo model on it (configs/demo.py: a locked all-MiniLM-L6-v2 text tower and a
#      tiny audio tower, ~13 minutes on 2 cores);
#   4. evaluate it: retrieval, zero-shot and linear probes beside log-mel and MFCC baselines on
#      the test split, printed as a table (~4 minutes).
# Usage: bash launch/demo.sh [OUT_DIR, default ./demo_out] ; NUM_CLIPS=... overrides the size.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-demo_out}"
NUM_CLIPS="${NUM_CLIPS:-6000}"
WORKERS="${WORKERS:-$(nproc)}"
bash launch/setup_env.sh test,reference
PY=.venv/bin/python
stage() { echo "== demo [$1/4] $2 ($(date +%H:%M:%S))"; }

stage 1 "corpus: $NUM_CLIPS clips from Debian-shipped sounds"
if [ ! -f "$OUT/corpus/corpus_info.json" ]; then  # written last, when the build completed
  $PY -m audiolm_pt.data.demo_corpus --out="$OUT/corpus" --num_clips="$NUM_CLIPS" --seed=0 \
    --workers="$WORKERS"
fi
stage 2 "build: ArrayRecord splits with fbank features"
if [ ! -f "$OUT/tfds/demo/2.0.0/dataset_info.json" ]; then
  $PY -m audiolm_pt.data.builders --format=demo --source_dir="$OUT/corpus" \
    --data_dir="$OUT/tfds" --workers="$WORKERS"
fi
# Resumes from $OUT/train's latest checkpoint when re-run.
stage 3 "train: one line per 20 steps"
$PY -m audiolm_pt.main --config=configs/demo.py:contrastive --workdir="$OUT/train" \
  --config.data.data_dir="$OUT/tfds"
stage 4 "evaluate: retrieval, zero-shot, probes beside log-mel/MFCC (about 4 minutes)"
# Progress lines and the summary table on the console, and all of it in eval.log.
$PY -m audiolm_pt.evaluate --workdir="$OUT/train" --evals=retrieval,zero_shot,linear_probe \
  --options="$($PY -c 'from configs import demo; print(demo.eval_options())')" \
  --summary="$OUT/train/eval_summary.txt" > "$OUT/train/eval_summary.json" \
  2> >(tee "$OUT/train/eval.log" >&2) \
  || { echo "demo: evaluation failed (log: $OUT/train/eval.log)" >&2; exit 1; }
echo "demo: corpus in $OUT/corpus, ArrayRecord splits in $OUT/tfds, run in $OUT/train," \
  "evaluation in $OUT/train/eval/ (numbers: $OUT/train/eval_summary.json)"
