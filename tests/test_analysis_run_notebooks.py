"""Parameter injection into a notebook's `parameters` cell (no kernel needed)."""

import json
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbformat.v4 import new_code_cell, new_notebook

from audiolm_pt.analysis.run_notebooks import inject_parameters, kernel_manager


def _notebook(source: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return new_notebook(cells=[new_code_cell("x = 1"), cell])


def test_injection_replaces_given_assignments_only():
    nb = _notebook('RUN_DIR = "a"\nSTEP = None  # newest\nSIZES = [\n    1,\n    2,\n]\nFIG = "f"')
    inject_parameters(nb, {"SIZES": (3,), "RUN_DIR": "/tmp/run", "FIG": None})
    assert (
        nb.cells[1].source
        == "RUN_DIR = '/tmp/run'\nSTEP = None  # newest\nSIZES = (3,)\nFIG = None"
    )
    assert nb.cells[0].source == "x = 1"
    namespace = {}
    exec(nb.cells[1].source, namespace)
    assert namespace["SIZES"] == (3,)


def test_unknown_parameter_or_missing_cell_fails():
    with pytest.raises(ValueError, match=r"\['RESULT'\]"):
        inject_parameters(_notebook('RESULTS = "x"'), {"RESULT": "y"})
    with pytest.raises(ValueError, match="tagged 'parameters'"):
        inject_parameters(new_notebook(cells=[new_code_cell("A = 1")]), {"A": 2})


def test_kernel_is_this_python(tmp_path, monkeypatch):
    """A stray `python3` kernel spec elsewhere (here on JUPYTER_PATH) is not used: the kernel
    runs the interpreter running us."""
    decoy = tmp_path / "kernels" / "python3"
    decoy.mkdir(parents=True)
    argv = ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (decoy / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "decoy"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == "/nonexistent/python"
    spec = kernel_manager().kernel_spec
    assert spec.argv[0] == sys.executable
    assert spec.argv[1:3] == ["-m", "ipykernel_launcher"]
