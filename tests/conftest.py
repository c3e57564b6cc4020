"""Test-wide setup: 8 simulated CPU devices so sharding is real, TF kept off any GPU, and one
persistent compilation cache per session, so that a step compiled again (another test's
trainer, a subprocess's run of the same config) is read back instead."""

import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="audiolm_pt_jit_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")


def pytest_sessionfinish(session, exitstatus):
    if "_CACHE" in globals():
        shutil.rmtree(_CACHE, ignore_errors=True)
