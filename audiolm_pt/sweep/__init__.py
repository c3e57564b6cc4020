"""Sweeps: a grid of training runs, each followed by its evaluation, run here one after another
or emitted as launch commands for a TPU pod or SLURM.

    python -m audiolm_pt.sweep --sweep=configs/sweeps/NAME.py[:ARG] --root=DIR
        [--only=a,b*] [--emit=tpu|slurm] [--dry_run]

A sweep file defines `get_sweep(arg)` returning {"name": ..., "points": [...]}; each point is
a dict with `name`, `config` ("configs/x.py:arg"), `overrides` {dotted config key: value},
`tags` {axis: value}, `after` (points it needs), and `evals`, `eval_options` and
`eval_flags` (the `--evals`, `--options` and other flags of `python -m audiolm_pt.evaluate`).
Override values may hold `{root}` (DIR) and `{point_dir:NAME}` (DIR/NAME). `grid` builds
points over the product of axes, `parse_arg` reads "key=value,..." file arguments.

Modules: `spec` (reading and checking sweep files), `commands` (the command lines of a
point), `local` (running here), `emit` (TPU and SLURM launch scripts).
"""

from audiolm_pt.sweep.spec import Point, Sweep, SweepError, grid, load_sweep, parse_arg

__all__ = ["Point", "Sweep", "SweepError", "grid", "load_sweep", "parse_arg"]
