"""The evaluators as a training-loop hook: `fn(state) -> scalars` evaluates the live
parameters (gathered to the host) with the same code as `python -m audiolm_pt.evaluate`,
merges the full results into `DIR/eval/<step>.json` (process 0) and returns the numbers for
the loop to log under `eval/<name>/`."""

from collections.abc import Callable
from typing import Any

import jax
import ml_collections
from flax import nnx
from jax.experimental import multihost_utils

from audiolm_pt.evaluate import registry
from audiolm_pt.evaluate.checkpoint import Run, tokenizer_of
from audiolm_pt.evaluate.runner import evaluate_run, save_json
from audiolm_pt.train.build import Trainer


def _host(tree: Any) -> Any:
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def make_hook(
    name: str,
    trainer: Trainer,
    run_config: ml_collections.ConfigDict,
    workdir: str,
    batch_size: int = 16,
    **options: Any,
) -> Callable[[dict[str, Any]], dict[str, float]]:
    """A loop evaluator running evaluator `name` with `options` on the live state."""
    registry.get(name)
    tokenizer = tokenizer_of(run_config)

    def evaluate(state: dict[str, Any]) -> dict[str, float]:
        model = nnx.merge(trainer.graphdef, _host(state["params"]), _host(state["rest"]))
        run = Run(workdir, run_config, trainer.model_cfg, model, tokenizer, int(state["step"]))
        results = evaluate_run(run, (name,), {name: options}, batch_size=batch_size)
        if jax.process_index() == 0:
            save_json(workdir, run.step, results)
        return registry.scalars(results["results"][name])

    return evaluate
