"""Data flows one way: the trainer knows evaluators only as functions handed to it, and the
evaluators read runs through `audiolm_pt.inference`. Each package is imported alone, every
module of it, in a fresh interpreter, and must load nothing of the other side."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# package -> module prefixes it must never load
FORBIDDEN = {
    "audiolm_pt.train": ("audiolm_pt.evaluate", "audiolm_pt.main", "audiolm_pt.api"),
    "audiolm_pt.evaluate": ("audiolm_pt.train", "audiolm_pt.main"),
    "audiolm_pt.inference": ("audiolm_pt.train", "audiolm_pt.evaluate", "audiolm_pt.main"),
    "audiolm_pt.data": ("audiolm_pt.train", "audiolm_pt.evaluate", "audiolm_pt.main"),
}
_SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    package = importlib.import_module({package!r})
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith(".__main__"):  # command lines run when imported
            importlib.import_module(info.name)
    loaded = sorted(m for m in sys.modules if m.startswith({forbidden!r}))
    print("\\n".join(loaded))
    """
)


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_each_package_loads_nothing_of_the_other_side(package):
    forbidden = FORBIDDEN[package]
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(package=package, forbidden=forbidden)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [], f"{package} loads {result.stdout.split()}"


def test_the_check_catches_a_forbidden_import(tmp_path):
    """A package that imports the trainer is reported (the check can fail)."""
    pkg = tmp_path / "probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text("import audiolm_pt.train.loop\n")
    script = _SCRIPT.format(package="probe_pkg", forbidden=("audiolm_pt.train",))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
    )
    assert "audiolm_pt.train.loop" in result.stdout.split()
