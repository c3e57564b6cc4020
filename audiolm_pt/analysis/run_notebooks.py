"""Executes the notebooks headless and writes executed copies (the stored notebooks carry no
outputs, so executed copies are never stale):

    python -m audiolm_pt.analysis.run_notebooks \\
        --results=notebooks/results/data_scaling_demo.parquet \\
        [--run_dir=RUN_DIR [--step=N]] --out=notebooks/executed/

Parameters go in by rewriting the assignments of the cell tagged `parameters`. The kernel is
the native IPython kernel of the Python running this (ipykernel in the same environment),
whatever kernel specs a machine has installed, with matplotlib's Agg backend and the
repository importable."""

import argparse
import ast
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO_ROOT / "notebooks"


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def inject_parameters(nb: nbformat.NotebookNode, parameters: Mapping[str, Any]) -> None:
    """Replaces the assignment of each given name in the parameters cell by `name = repr`;
    a name the cell does not assign fails, naming it."""
    cell = parameters_cell(nb)
    lines = cell.source.splitlines()
    spans = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    spans[target.id] = (node.lineno - 1, node.end_lineno)
    unknown = sorted(set(parameters) - set(spans))
    if unknown:
        raise ValueError(f"not parameters of this notebook: {unknown}; known: {sorted(spans)}")
    # Bottom-up, so earlier line numbers stay valid.
    for name in sorted(parameters, key=lambda n: spans[n][0], reverse=True):
        start, end = spans[name]
        lines[start:end] = [f"{name} = {parameters[name]!r}"]
    cell.source = "\n".join(lines)


def kernel_manager() -> AsyncKernelManager:
    """The native kernel (`sys.executable -m ipykernel_launcher`): an empty kernel search
    path makes jupyter_client fall back to ipykernel's own spec."""
    specs = KernelSpecManager(kernel_dirs=[])
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)


def execute_notebook(
    path: str | Path,
    parameters: Mapping[str, Any] | None = None,
    output_path: str | Path | None = None,
    cwd: str | Path = REPO_ROOT,
    timeout: int = 600,
) -> nbformat.NotebookNode:
    """Runs `path` top to bottom with `parameters`, in `cwd`; writes the executed notebook to
    `output_path` (also when a cell fails, so the error can be read there)."""
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, dict(parameters or {}))
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    client = NotebookClient(
        nb, km=kernel_manager(), timeout=timeout, resources={"metadata": {"path": str(cwd)}}
    )
    try:
        client.execute(env=env)
    finally:
        if output_path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
            nbformat.write(nb, output_path)
    return nb


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m audiolm_pt.analysis.run_notebooks")
    parser.add_argument("--results", required=True, help="collected table (Parquet or CSV)")
    parser.add_argument("--run_dir", default=None, help="a run to inspect (inspect_run.ipynb)")
    parser.add_argument("--step", type=int, default=None, help="its evaluated step (newest)")
    parser.add_argument("--out", default="notebooks/executed", help="executed notebooks here")
    parser.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of the notebooks")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    jobs = [
        (
            "scaling_curves.ipynb",
            {"RESULTS": str(Path(args.results).resolve()), "FIG_DIR": str(out / "figures")},
        )
    ]
    if args.run_dir:
        inspect = {"RUN_DIR": str(Path(args.run_dir).resolve()), "STEP": args.step}
        jobs.append(("inspect_run.ipynb", {**inspect, "FIG_DIR": str(out / "figures_run")}))
    for name, parameters in jobs:
        execute_notebook(Path(args.notebooks) / name, parameters, out / name, timeout=args.timeout)
        print(f"executed {name} -> {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
