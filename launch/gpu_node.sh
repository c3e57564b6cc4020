#!/usr/bin/env bash
# One GPU node: one JAX process driving all local GPUs, with XLA GPU flags for overlap.
#   bash launch/gpu_node.sh --config=configs/contrastive.py:base --workdir=DIR [flags...]
# Under SLURM (launch/slurm_gpu.sbatch) it is started once per node with --multiprocess and
# jax.distributed auto-detects the coordinator from the SLURM environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true \
--xla_gpu_all_reduce_combine_threshold_bytes=134217728 \
--xla_gpu_all_gather_combine_threshold_bytes=134217728 \
--xla_gpu_reduce_scatter_combine_threshold_bytes=134217728"
# Let JAX take most of the GPU memory up front; TensorFlow (metrics only) never sees the GPU.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
export TF_CPP_MIN_LOG_LEVEL=2
exec "${PYTHON:-.venv/bin/python}" -m audiolm_pt.main "$@"
