"""Launch scripts: syntax, the TPU pod script's dry run, and argument errors."""

import os
import shlex
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("local_multiprocess.sh", "tpu_pod.sh", "slurm_gpu.sbatch", "gpu_node.sh")


def _bash(*args, env=None):
    return subprocess.run(
        ["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse(script):
    result = _bash("-n", os.path.join("launch", script))
    assert result.returncode == 0, result.stderr


def test_tpu_pod_dry_run_prints_every_command():
    result = _bash(
        "launch/tpu_pod.sh",
        "--name=pod1",
        "--zone=us-east5-a",
        "--type=v5p-32",
        "--create",
        "--project=proj",
        "--dry-run",
        "--",
        "--config=configs/contrastive.py:large",
        "--workdir=gs://bucket/runs/x",
        "--config.objective.label_smoothing=0.2",
    )
    assert result.returncode == 0, result.stderr
    lines = [shlex.split(line) for line in result.stdout.strip().splitlines()]
    assert [line[:5] for line in lines if line[0] == "gcloud"] == [
        ["gcloud", "compute", "tpus", "tpu-vm", verb]
        for verb in ("create", "scp", "ssh", "ssh", "ssh")
    ]
    create = lines[0]
    for flag in ("--zone=us-east5-a", "--accelerator-type=v5p-32", "--project=proj"):
        assert flag in create
    assert lines[1][0] == "tar"
    assert "--worker=all" in lines[2]
    assert "--worker=all" in lines[-1]
    install = next(a for a in lines[4] if a.startswith("--command="))
    assert "jax[tpu]==0.10.2" in install
    assert "-c constraints.txt" in install
    train = shlex.split(next(a for a in lines[5] if a.startswith("--command=")).split("=", 1)[1])
    assert train[train.index("-m") + 1 :] == [
        "audiolm_pt.main",
        "--multiprocess",
        "--config=configs/contrastive.py:large",
        "--workdir=gs://bucket/runs/x",
        "--config.objective.label_smoothing=0.2",
    ]


def test_tpu_pod_without_create_skips_creation():
    result = _bash("launch/tpu_pod.sh", "--name=p", "--zone=z", "--dry-run", "--", "--workdir=w")
    assert result.returncode == 0, result.stderr
    assert " create " not in result.stdout
    assert result.stdout.count("gcloud compute tpus tpu-vm ssh") == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--zone=z", "--dry-run", "--", "--workdir=w"], "--name=NAME is required"),
        (["--name=p", "--zone=z", "--dry-run"], "pass trainer flags after --"),
        (["--name=p", "--zone=z", "--create", "--dry-run", "--", "x"], "--type is required"),
        (["--name=p", "--zone=z", "--bogus"], "unknown option --bogus"),
    ],
)
def test_tpu_pod_argument_errors(args, message):
    result = _bash("launch/tpu_pod.sh", *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_local_multiprocess_needs_a_workdir():
    result = _bash("launch/local_multiprocess.sh", "2", "--config=configs/demo.py")
    assert result.returncode != 0
    assert "--workdir" in result.stderr


def test_the_demo_reuses_a_build_of_the_current_dataset_version():
    from audiolm_pt.data.builders.tfds_builder import DATASET_VERSION

    with open(os.path.join(ROOT, "launch", "demo.sh")) as f:
        assert f'"$OUT/tfds/demo/{DATASET_VERSION}/dataset_info.json"' in f.read()
