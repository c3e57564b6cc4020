#!/usr/bin/env bash
# N JAX processes on this machine, CPU devices, gloo collectives: a multi-host run in miniature.
#   bash launch/local_multiprocess.sh N --config=configs/demo.py --workdir=DIR [flags...]
# Each process gets DEVICES_PER_PROCESS CPU devices (default 1); PORT picks the coordinator
# port (default 12355). Logs go to WORKDIR/process_<i>.log; the script fails if any process does.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:?usage: local_multiprocess.sh N --config=... --workdir=... [flags]}"
shift
PORT="${PORT:-12355}"
DEVICES_PER_PROCESS="${DEVICES_PER_PROCESS:-1}"
PY="${PYTHON:-.venv/bin/python}"
WORKDIR=""
for arg in "$@"; do
  case "$arg" in --workdir=*) WORKDIR="${arg#--workdir=}" ;; esac
done
: "${WORKDIR:?pass --workdir=DIR}"
mkdir -p "$WORKDIR"
pids=()
for ((i = 0; i < N; i++)); do
  JAX_PLATFORMS=cpu XLA_FLAGS="--xla_force_host_platform_device_count=$DEVICES_PER_PROCESS" \
    "$PY" -m audiolm_pt.main "$@" --multiprocess --cpu_collectives=gloo \
    --coordinator_address="127.0.0.1:$PORT" --num_processes="$N" --process_id="$i" \
    >"$WORKDIR/process_$i.log" 2>&1 &
  pids+=("$!")
done
status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "process $i failed; see $WORKDIR/process_$i.log" >&2
    status=1
  fi
done
exit "$status"
