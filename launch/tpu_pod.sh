#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: (optionally) create it, copy this checkout to every worker,
# install the pinned stack with libtpu, and start the trainer on all workers at once.
#
#   bash launch/tpu_pod.sh --name=NAME --zone=ZONE --type=v5p-32 [--create] \
#       [--version=v2-alpha-tpuv5] [--project=P] [--dry-run] -- \
#       --config=configs/contrastive.py:large --workdir=gs://BUCKET/runs/clap_large
#
# Everything after `--` goes to `python -m audiolm_pt.main` (the workdir should be on GCS so
# every worker writes its checkpoint shards to one place). --dry-run prints every command
# instead of running it. jax.distributed.initialize() finds the other workers by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME="" ZONE="" TYPE="" VERSION="v2-alpha-tpuv5" PROJECT="" CREATE=0 DRY_RUN=0
while (($#)); do
  case "$1" in
    --name=*) NAME="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --type=*) TYPE="${1#*=}" ;;
    --version=*) VERSION="${1#*=}" ;;
    --project=*) PROJECT="${1#*=}" ;;
    --create) CREATE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --) shift; break ;;
    *) echo "tpu_pod.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
: "${NAME:?--name=NAME is required}" "${ZONE:?--zone=ZONE is required}"
(($#)) || { echo "tpu_pod.sh: pass trainer flags after --" >&2; exit 2; }
if ((CREATE)); then : "${TYPE:?--type is required with --create}"; fi

JAX_VERSION="$(sed -n 's/.*"jax==\([^"]*\)".*/\1/p' setup.py)"
TARBALL="/tmp/audiolm_pt_${NAME}.tar.gz"
REMOTE_DIR="audiolm_pt"
GCLOUD=(gcloud compute tpus tpu-vm)
COMMON=(--zone="$ZONE")
[[ -n "$PROJECT" ]] && COMMON+=(--project="$PROJECT")

run() {
  if ((DRY_RUN)); then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

train_args="$(printf '%q ' "$@")"
train_args="${train_args% }"
install="cd ~/$REMOTE_DIR && python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e . 'jax[tpu]==$JAX_VERSION'"
train="cd ~/$REMOTE_DIR && .venv/bin/python -m audiolm_pt.main --multiprocess $train_args"

if ((CREATE)); then
  run "${GCLOUD[@]}" create "$NAME" "${COMMON[@]}" --accelerator-type="$TYPE" --version="$VERSION"
fi
run tar --exclude=.venv --exclude=.git --exclude=demo_out -czf "$TARBALL" .
run "${GCLOUD[@]}" scp "$TARBALL" "$NAME:~/audiolm_pt.tar.gz" "${COMMON[@]}" --worker=all
run "${GCLOUD[@]}" ssh "$NAME" "${COMMON[@]}" --worker=all \
  --command="mkdir -p ~/$REMOTE_DIR && tar -xzf ~/audiolm_pt.tar.gz -C ~/$REMOTE_DIR"
run "${GCLOUD[@]}" ssh "$NAME" "${COMMON[@]}" --worker=all --command="$install"
run "${GCLOUD[@]}" ssh "$NAME" "${COMMON[@]}" --worker=all --command="$train"
